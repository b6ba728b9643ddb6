import type { VaultSource } from '../../adapters/vault';
import { masterKeyKek, type KeyEncryptionKey, type KeyEncryptionKeys } from '../crypto/key-encryption-key';
import type { Policy } from '../policy/schema';

/** What builds KEKs in external roots; each is present only when its upstream is configured. */
export interface KekProviders {
  vault?: Pick<VaultSource, 'transitKek'>;
  kms?: { kek(tenant: string, keyId: string): KeyEncryptionKey };
}

/**
 * Each tenant's key-encryption key, as the live policy names it (`tenants.T.encryption`), else the
 * master key. A root whose upstream is not configured (the policy schema refuses that) fails on use,
 * so a tenant's data is never wrapped under a root other than its own.
 */
export function tenantKeks(options: { policy: () => Policy; masterKey: Buffer } & KekProviders): KeyEncryptionKeys {
  const master = masterKeyKek(options.masterKey);
  const built = new Map<string, KeyEncryptionKey>();
  return (tenant) => {
    const policy = options.policy();
    const encryption = Object.hasOwn(policy.tenants, tenant) ? policy.tenants[tenant]!.encryption : undefined;
    if (!encryption) return master;
    const id = 'vault_transit' in encryption ? `vault_transit:${encryption.vault_transit.mount}/${encryption.vault_transit.key}` : `aws_kms:${encryption.aws_kms.key_id}`;
    const cacheKey = `${tenant}\u0000${id}`;
    let kek = built.get(cacheKey);
    if (!kek) {
      kek = 'vault_transit' in encryption ? viaVault(options, tenant, encryption.vault_transit) : viaKms(options, tenant, encryption.aws_kms.key_id);
      built.set(cacheKey, kek);
    }
    return kek;
  };
}

function viaVault(providers: KekProviders, tenant: string, transit: { mount: string; key: string }): KeyEncryptionKey {
  if (!providers.vault) return unavailable(`vault_transit:${transit.mount}/${transit.key}`, 'broker.upstreams.vault is not configured');
  return providers.vault.transitKek(tenant, transit.mount, transit.key);
}

function viaKms(providers: KekProviders, tenant: string, keyId: string): KeyEncryptionKey {
  if (!providers.kms) return unavailable(`aws_kms:${keyId}`, 'broker.upstreams.aws is not configured');
  return providers.kms.kek(tenant, keyId);
}

function unavailable(id: string, why: string): KeyEncryptionKey {
  const fail = async (): Promise<never> => {
    throw new Error(`${id}: ${why}`);
  };
  return { id, wrap: fail, unwrap: fail };
}
