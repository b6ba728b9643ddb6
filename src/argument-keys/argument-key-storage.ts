/**
 * Where each tenant's argument key (the HMAC key of `arguments_mac`, argument-macs.ts) is kept: only
 * ever wrapped by the tenant's key-encryption key, so this storage never sees a key in the clear. The
 * embedded broker keeps one small file per tenant under --data-dir; scaled out, every replica reads the
 * same row in PostgreSQL, so equal arguments get the same MAC whichever replica decided the call.
 *
 * A shred leaves a tombstone instead of nothing: a tenant whose key was shredded must fail closed
 * (`tenant_shredded`), not get a fresh key and carry on as if its history still meant anything.
 */

export interface WrappedArgumentKey {
  /** The KEK that wrapped it, as KeyEncryptionKey.id names it ("master", "vault_transit:…", "aws_kms:…"). */
  kek: string;
  wrapped: string;
}

export type StoredArgumentKey = WrappedArgumentKey | { shredded_at: string };

export const isShredded = (stored: StoredArgumentKey): stored is { shredded_at: string } => 'shredded_at' in stored;

export interface ArgumentKeyStorage {
  /** The tenant's key or tombstone; undefined when it never had one. */
  read(tenant: string): Promise<StoredArgumentKey | undefined>;
  /**
   * Stores `key` unless the tenant already has a key or a tombstone, and answers what is stored now:
   * when two replicas race to create the first key, both end up using the winner's.
   */
  create(tenant: string, key: WrappedArgumentKey): Promise<StoredArgumentKey>;
  /** Replaces `from` by `to` (the same key wrapped under the tenant's new root); a no-op if `from` is no longer stored. */
  rewrap(tenant: string, from: WrappedArgumentKey, to: WrappedArgumentKey): Promise<void>;
  /** Replaces the wrapped key with a tombstone (also for a tenant that never had a key). Idempotent. */
  shred(tenant: string, at: Date): Promise<void>;
}

/** The AAD / encryption context a tenant's argument key is wrapped under: it opens as nothing else, and for no other tenant. */
export const argumentKeyContext = (tenant: string) => `argument-key:${tenant}`;

/** Parses a stored record (a file, a row) strictly: anything else is damage, never "no key yet". */
export function parseStoredArgumentKey(value: unknown, where: string): StoredArgumentKey {
  const v = value as Record<string, unknown> | null;
  if (v && typeof v === 'object' && typeof v.shredded_at === 'string') return { shredded_at: v.shredded_at };
  if (v && typeof v === 'object' && typeof v.kek === 'string' && typeof v.wrapped === 'string') return { kek: v.kek, wrapped: v.wrapped };
  throw new Error(`${where}: not an argument key record`);
}
