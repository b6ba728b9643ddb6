import type { LocalSecretStore } from '../../adapters/local';
import type { ArgumentKeyStorage } from '../argument-keys/argument-key-storage';
import { MASTER_KEK_ID, type KeyEncryptionKeys } from '../crypto/key-encryption-key';

/**
 * The one path that shreds a tenant's keys at rest, for `bulkhead tenant shred` and tenant delete
 * alike: anything tenant-scoped that is sealed under the tenant's root — the argument-MAC key and the
 * local secrets' data key — is shredded here, so a new per-tenant key is added in one place and both
 * verbs shred it.
 *
 * Why the order: the external root (transit key, KMS key) is destroyed first, so from then on no copy
 * of the tenant's sealed data opens, a restored backup included; then the argument key is tombstoned
 * where brokers read it (its calls are refused `tenant_shredded` from then on, never given a fresh
 * key); only then are the local data key and secrets deleted. A root that cannot be destroyed stops the shred before anything local is deleted
 * (RootNotDestroyed), so the operator can destroy it in the tenant's KMS and run it again.
 */
export interface ShredOutcome {
  /** What destroyed the root, or null when the root is the master key (shared by every tenant). */
  root_destroyed: string | null;
  /** The root the tenant's data keys were under ("master", "vault_transit:…", "aws_kms:…"). */
  root: string;
  secrets_deleted: number;
  /** Where the argument key was tombstoned (the data dir; PostgreSQL when scaled out). */
  argument_key_shredded: string[];
}

export class RootNotDestroyed extends Error {
  constructor(
    readonly root: string,
    cause: unknown,
  ) {
    super(`could not destroy ${root} (${(cause as Error)?.message ?? String(cause)}); nothing local was deleted`, { cause });
  }
}

export interface ShredDeps {
  store: Pick<LocalSecretStore, 'list' | 'shredTenant'>;
  keks: KeyEncryptionKeys;
  /** Every place brokers read the tenant's argument key from, each with where it is (for the report). */
  argumentKeys: Array<Pick<ArgumentKeyStorage, 'shred'> & { where: string }>;
}

export async function shredTenantKeys(deps: ShredDeps, tenant: string): Promise<ShredOutcome> {
  const kek = deps.keks(tenant);
  const names = await deps.store.list(tenant);
  let destroyed: string | null = null;
  if (kek.destroy) {
    try {
      destroyed = await kek.destroy();
    } catch (err) {
      throw new RootNotDestroyed(kek.id, err);
    }
  }
  const at = new Date();
  const shredded: string[] = [];
  for (const storage of deps.argumentKeys) {
    await storage.shred(tenant, at);
    shredded.push(storage.where);
  }
  await deps.store.shredTenant(tenant);
  return { root_destroyed: destroyed, root: kek.id === MASTER_KEK_ID ? MASTER_KEK_ID : kek.id, secrets_deleted: names.length, argument_key_shredded: shredded };
}
