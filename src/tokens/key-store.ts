import { join } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import { z } from 'zod';
import { open, seal } from '../crypto/envelope';
import { readOptional, replaceFile } from '../storage/atomic-file';

/**
 * Where the signing key ring is persisted, encrypted at rest.
 *
 * Two layers, so a storage backend can never write a plaintext private key:
 * - `KeyStore` (what the key ring uses) trades in opened keys;
 * - `createSealedKeyStore(masterKey, storage)` is the only place that seals and opens them
 *   (AES-256-GCM, associated data `signing-key:<kid>`), and hands the backend a `StoredKeyRing` whose
 *   private JWKs are ciphertext. File (below) and PostgreSQL backends implement `SealedKeyStorage` only.
 */

export type KeyState = 'next' | 'current' | 'previous' | 'retired';

/** A public Ed25519 JWK: exactly these members, never `d`. */
export interface PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
}

export interface PrivateJwk extends PublicJwk {
  d: string;
}

interface KeyMeta {
  /** RFC 7638 JWK thumbprint (SHA-256) of the public key. */
  kid: string;
  state: KeyState;
  /** Epoch ms. */
  created_at: number;
  /** When it became `current` (started signing). */
  activated_at?: number;
  /** When it became `retired` (left the JWKS); it still verifies for one token lifetime after. */
  retired_at?: number;
  public_jwk: PublicJwk;
}

/** An opened key, in memory only. */
export interface KeyRecord extends KeyMeta {
  private_jwk: PrivateJwk;
}

export interface OpenedKeyRing {
  keys: KeyRecord[];
}

export interface KeyStore {
  /** The last saved ring, or null when none was ever saved. */
  load(): Promise<OpenedKeyRing | null>;
  /** Durable before it resolves: a crash after this never loses the ring. */
  save(ring: OpenedKeyRing): Promise<void>;
}

/** A key as persisted: the private JWK is `seal(masterKey, JSON, 'signing-key:' + kid)`. */
export interface StoredKey extends KeyMeta {
  private_jwk_sealed: string;
}

export interface StoredKeyRing {
  version: 1;
  keys: StoredKey[];
}

/** What a storage backend implements: persist and return one sealed ring, as a whole. */
export interface SealedKeyStorage {
  read(): Promise<StoredKeyRing | null>;
  write(ring: StoredKeyRing): Promise<void>;
}

/**
 * What a ring's keys sign. It is part of every sealed blob's associated data, so a token-signing key
 * copied into the audit key store (or the other way round) fails to open instead of signing there.
 */
export type KeyPurpose = 'signing-key' | 'audit-key';

export function sealAssociatedData(kid: string, purpose: KeyPurpose = 'signing-key'): string {
  return `${purpose}:${kid}`;
}

export function createSealedKeyStore(masterKey: Buffer, storage: SealedKeyStorage, purpose: KeyPurpose = 'signing-key'): KeyStore {
  return {
    async load() {
      const stored = await storage.read();
      return stored ? { keys: await Promise.all(stored.keys.map((key) => openKey(masterKey, key, purpose))) } : null;
    },
    async save(ring) {
      await storage.write({ version: 1, keys: ring.keys.map((key) => sealKey(masterKey, key, purpose)) });
    },
  };
}

function sealKey(masterKey: Buffer, key: KeyRecord, purpose: KeyPurpose): StoredKey {
  const { private_jwk, ...meta } = key;
  const plaintext = JSON.stringify({ kty: private_jwk.kty, crv: private_jwk.crv, x: private_jwk.x, d: private_jwk.d });
  return { ...meta, private_jwk_sealed: seal(masterKey, Buffer.from(plaintext, 'utf8'), sealAssociatedData(key.kid, purpose)) };
}

/**
 * The sealed private JWK is the only trusted copy: the public key and kid are re-derived from it, so a
 * store edited to swap in another public key, or to move a blob under another kid, fails to open
 * instead of verifying tokens someone else signed.
 */
async function openKey(masterKey: Buffer, stored: StoredKey, purpose: KeyPurpose): Promise<KeyRecord> {
  const { private_jwk_sealed, ...meta } = stored;
  let jwk: PrivateJwk;
  try {
    const parsed = privateJwkSchema.parse(JSON.parse(open(masterKey, private_jwk_sealed, sealAssociatedData(stored.kid, purpose)).toString('utf8')));
    jwk = { kty: parsed.kty, crv: parsed.crv, x: parsed.x, d: parsed.d };
  } catch (err) {
    throw new Error(`${purpose} ${stored.kid} cannot be opened: wrong master key or a tampered key store`, { cause: err });
  }
  const kid = await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }, 'sha256');
  if (kid !== stored.kid || stored.public_jwk.x !== jwk.x) {
    throw new Error(`${purpose} ${stored.kid}: stored public key or kid does not match the sealed private key`);
  }
  return { ...meta, private_jwk: jwk };
}

const publicJwkSchema = z.object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string().min(1) }).strict();
const privateJwkSchema = publicJwkSchema.extend({ d: z.string().min(1) });
const storedKeyRingSchema = z
  .object({
    version: z.literal(1),
    keys: z.array(
      z
        .object({
          kid: z.string().min(1),
          state: z.enum(['next', 'current', 'previous', 'retired']),
          created_at: z.number(),
          activated_at: z.number().optional(),
          retired_at: z.number().optional(),
          public_jwk: publicJwkSchema,
          private_jwk_sealed: z.string().min(1),
        })
        .strict(),
    ),
  })
  .strict();

/** Validates a ring read from any backend; errors name the path, never the content. */
export function parseStoredKeyRing(raw: unknown, source: string): StoredKeyRing {
  const parsed = storedKeyRingSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${source}: invalid key ring at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown error'}`);
  }
  return parsed.data;
}

export const KEYS_FILE = 'keys.json';

/** The embedded store: `<dataDir>/keys.json`, sealed, replaced atomically on every save. */
export function createFileKeyStore(dataDir: string, masterKey: Buffer): KeyStore {
  return createSealedKeyStore(masterKey, createFileKeyStorage(dataDir));
}

export function createFileKeyStorage(dataDir: string, file = KEYS_FILE): SealedKeyStorage {
  const path = join(dataDir, file);
  return {
    async read() {
      const text = await readOptional(path);
      if (text === null) return null;
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        // JSON.parse messages quote the input; keep file content out of errors.
        throw new Error(`${path}: not valid JSON`);
      }
      return parseStoredKeyRing(raw, path);
    },

    async write(ring) {
      // Readers see the old ring or the new one, never half of either (temp file, fsync, rename, dir fsync).
      await replaceFile(path, JSON.stringify(ring, null, 2) + '\n');
    },
  };
}
