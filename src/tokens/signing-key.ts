import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { KeyRecord, KeyState, PrivateJwk, PublicJwk } from './key-store';

/** A fresh Ed25519 signing key, as a record the key ring persists (sealed by its store). */

export const SIGNING_ALG = 'EdDSA';

export async function createSigningKey(state: KeyState, now: number): Promise<KeyRecord> {
  const pair = await generateKeyPair(SIGNING_ALG, { crv: 'Ed25519', extractable: true });
  const exported = await exportJWK(pair.privateKey);
  if (exported.kty !== 'OKP' || exported.crv !== 'Ed25519' || !exported.x || !exported.d) throw new Error('unexpected Ed25519 key export');
  const publicJwk: PublicJwk = { kty: 'OKP', crv: 'Ed25519', x: exported.x };
  const privateJwk: PrivateJwk = { ...publicJwk, d: exported.d };
  return {
    kid: await calculateJwkThumbprint(publicJwk, 'sha256'),
    state,
    created_at: now,
    ...(state === 'current' ? { activated_at: now } : {}),
    public_jwk: publicJwk,
    private_jwk: privateJwk,
  };
}
