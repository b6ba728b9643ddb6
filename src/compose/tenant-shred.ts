import type { LocalSecretStore } from '../../adapters/local';
import { MASTER_KEK_ID, type KeyEncryptionKeys } from '../crypto/key-encryption-key';

/**
 * The one path that shreds a tenant's keys at rest, for `bulkhead tenant shred` and tenant delete
 * alike: anything tenant-scoped that is sealed under the tenant's data keys (local secrets today) is
 * shredded here, so a new per-tenant key is added in one place and both verbs shred it.
 *
 * Why the order: the external root (transit key, KMS key) is destroyed first, so from then on no copy
 * of the tenant's sealed data opens, a restored backup included; only then are the local data key and
 * secrets deleted. A root that cannot be destroyed stops the shred before anything local is deleted
 * (RootNotDestroyed), so the operator can destroy it in the tenant's KMS and run it again.
 */
export interface ShredOutcome {
  /** What destroyed the root, or null when the root is the master key (shared by every tenant). */
  root_destroyed: string | null;
  /** The root the tenant's data keys were under ("master", "vault_transit:…", "aws_kms:…"). */
  root: string;
  secrets_deleted: number;
}

export class RootNotDestroyed extends Error {
  constructor(
    readonly root: string,
    cause: unknown,
  ) {
    super(`could not destroy ${root} (${(cause as Error)?.message ?? String(cause)}); nothing local was deleted`, { cause });
  }
}

export async function shredTenantKeys(deps: { store: Pick<LocalSecretStore, 'list' | 'shredTenant'>; keks: KeyEncryptionKeys }, tenant: string): Promise<ShredOutcome> {
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
  await deps.store.shredTenant(tenant);
  return { root_destroyed: destroyed, root: kek.id === MASTER_KEK_ID ? MASTER_KEK_ID : kek.id, secrets_deleted: names.length };
}
