import { createLocalSecretStore, type LocalSecretStore } from '../../adapters/local';
import type { AwsKms } from '../../adapters/aws-kms';
import type { VaultSource } from '../../adapters/vault';
import type { KeyEncryptionKeys } from '../crypto/key-encryption-key';
import type { Policy } from '../policy/schema';
import { tenantKeks } from './tenant-keys';

/** The embedded secret store and each tenant's root, as tenant export and delete use them. */
export interface TenantSecrets {
  store: LocalSecretStore;
  keks: KeyEncryptionKeys;
}

/**
 * The embedded secret store with each tenant's data keys under the root the policy names: the broker
 * (credential-sources.ts) and the `secret`/`tenant` CLI verbs open it the same way. The KMS client is
 * made on first use, so a policy without `aws_kms` tenants never loads its SDK.
 */
export function createTenantSecretStore(options: { policy: () => Policy; dataDir: string; masterKey: Buffer; vault?: Pick<VaultSource, 'transitKek'> }): { store: LocalSecretStore; keks: KeyEncryptionKeys; close(): void } {
  let kms: AwsKms | undefined;
  const kmsFor = () => {
    const aws = options.policy().broker.upstreams.aws;
    if (!aws) return undefined;
    const { createAwsKms } = require('../../adapters/aws-kms') as typeof import('../../adapters/aws-kms');
    return (kms ??= createAwsKms({ region: aws.region, endpoint: aws.endpoint, timeoutMs: aws.timeout }));
  };
  const keks = tenantKeks({
    policy: options.policy,
    masterKey: options.masterKey,
    vault: options.vault,
    kms: options.policy().broker.upstreams.aws ? { kek: (tenant, keyId) => kmsFor()!.kek(tenant, keyId) } : undefined,
  });
  const store = createLocalSecretStore({ dataDir: options.dataDir, masterKey: options.masterKey, keks, dataKeyCacheMs: options.policy().broker.data_key_cache });
  return { store, keks, close: () => kms?.close() };
}
