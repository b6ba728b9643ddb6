import { createHash, createPrivateKey, createPublicKey, KeyObject, sign, verify } from 'node:crypto';
import type { Clock } from '../clock';
import { canonicalize } from '../crypto/canonical-json';
import { createKeyRing, type KeyRing } from '../tokens/key-ring';
import type { KeyState, KeyStore, OpenedKeyRing } from '../tokens/key-store';

/**
 * The audit signing keys: Ed25519 keys, sealed under the master key like the token keys (purpose
 * `audit-key`, so neither ring's blobs open as the other's), that sign checkpoints and export manifests.
 *
 * The life cycle is the token ring's (next → current → previous → retired, persisted before use, a
 * `next` key published a whole period before it signs), with one difference: an audit key never stops
 * verifying. A checkpoint signed years ago must still verify, so retired keys are kept and published
 * for good (the ring is built with an unbounded verification window).
 */

export const AUDIT_KEY_ALG = 'EdDSA';

export interface AuditPublicKey {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  /** RFC 7638 thumbprint (SHA-256, base64url) of {crv, kty, x}. */
  kid: string;
  alg: typeof AUDIT_KEY_ALG;
  use: 'sig';
  status: KeyState;
  created_at: string;
}

/** What /.well-known/bulkhead-audit-keys.json serves and a bundle carries: every key that ever signed. */
export interface AuditKeySet {
  keys: AuditPublicKey[];
}

export interface AuditSigner {
  kid: string;
  /** base64url Ed25519 signature of `data`. */
  sign(data: string): string;
}

export interface AuditKeys {
  /** The underlying ring, for the rotation timer (rotate, reload, status). */
  ring: KeyRing;
  init(): Promise<void>;
  signer(): AuditSigner;
  published(): AuditKeySet;
}

export function createAuditKeys(deps: { store: KeyStore; clock: Clock }): AuditKeys {
  const ring = createKeyRing({ store: deps.store, clock: deps.clock, maxTokenTtlMs: Number.POSITIVE_INFINITY, clockSkewMs: 0 });
  return {
    ring,
    init: () => ring.init(),
    signer() {
      const { kid, privateKey } = ring.signingKey();
      const key = asKeyObject(privateKey);
      return { kid, sign: (data) => sign(null, Buffer.from(data, 'utf8'), key).toString('base64url') };
    },
    published() {
      const keys: AuditPublicKey[] = [];
      for (const status of ring.status()) {
        const publicKey = ring.verificationKey(status.kid);
        if (!publicKey) continue;
        const { x } = asKeyObject(publicKey).export({ format: 'jwk' });
        keys.push({ kty: 'OKP', crv: 'Ed25519', x: x!, kid: status.kid, alg: AUDIT_KEY_ALG, use: 'sig', status: status.state, created_at: new Date(status.createdAt).toISOString() });
      }
      return { keys };
    },
  };
}

/** The published form of a stored ring, read without initialising it (a verifier never creates keys). */
export function publishedFrom(ring: OpenedKeyRing): AuditKeySet {
  return {
    keys: ring.keys.map((key) => ({ ...key.public_jwk, kid: key.kid, alg: AUDIT_KEY_ALG, use: 'sig' as const, status: key.state, created_at: new Date(key.created_at).toISOString() })),
  };
}

/** A signer with a stored ring's current key (`bulkhead audit export` offline). */
export function signerFrom(ring: OpenedKeyRing): AuditSigner {
  const current = ring.keys.find((key) => key.state === 'current');
  if (!current) throw new Error('the audit key ring has no current key');
  const key = createPrivateKey({ key: { ...current.private_jwk }, format: 'jwk' });
  return { kid: current.kid, sign: (data) => sign(null, Buffer.from(data, 'utf8'), key).toString('base64url') };
}

/** jose hands out KeyObjects on Node (v5) or CryptoKeys (v6); node:crypto signs with either as a KeyObject. */
function asKeyObject(key: unknown): KeyObject {
  return key instanceof KeyObject ? key : KeyObject.from(key as Parameters<typeof KeyObject.from>[0]);
}

/** RFC 7638 thumbprint of an Ed25519 public key, computed with node:crypto only. */
export function ed25519Thumbprint(x: string): string {
  return createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url');
}

/**
 * Verifies a signature against a published key set: the key must be there, be Ed25519, and its kid
 * must be its thumbprint (so a key set edited to put another key under a trusted kid proves nothing).
 */
export function verifyAuditSignature(keys: AuditKeySet, kid: unknown, data: string, signature: unknown): 'ok' | 'unknown_key' | 'bad_signature' {
  const key = keys.keys.find((k) => k.kid === kid);
  if (!key || key.kty !== 'OKP' || key.crv !== 'Ed25519' || typeof key.x !== 'string' || ed25519Thumbprint(key.x) !== key.kid) return 'unknown_key';
  if (typeof signature !== 'string') return 'bad_signature';
  try {
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key.x }, format: 'jwk' });
    return verify(null, Buffer.from(data, 'utf8'), publicKey, Buffer.from(signature, 'base64url')) ? 'ok' : 'bad_signature';
  } catch {
    return 'bad_signature';
  }
}

/**
 * Why `payload`, as signed by `kid` with `signature` over its canonical JSON (RFC 8785), is not a
 * signature of one of the audit keys, in the words every verifier of signed audit statements uses
 * (checkpoints, seals, purges); null when it is one.
 */
export function auditSignatureProblem(keys: AuditKeySet, kid: unknown, payload: unknown, signature: unknown): string | null {
  let data: string;
  try {
    data = canonicalize(payload);
  } catch {
    return 'is not canonical JSON';
  }
  const verdict = verifyAuditSignature(keys, kid, data, signature);
  if (verdict === 'unknown_key') return `is signed by a key that is not an audit key of this broker (kid ${String(kid)})`;
  if (verdict === 'bad_signature') return 'has a signature that does not verify (forged or edited)';
  return null;
}
