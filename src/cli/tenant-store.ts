import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalSecretStore } from '../../adapters/local';
import { createTenantSecretStore } from '../compose/secret-store';
import { createVaultSourceFor } from '../compose/credential-sources';
import { loadOrCreateMasterKey, MASTER_KEY_FILE } from '../crypto/master-key';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key';
import { createLogger } from '../observability/logger';
import { DEMO_TENANTS } from '../policy/demo';
import { parsePolicy } from '../policy/load';
import type { Policy } from '../policy/schema';
import { loadConfig } from './load-config';
import { UsageError } from './usage-error';

export interface OpenedStore {
  store: LocalSecretStore;
  dataDir: string;
  policy: Policy;
  /** Where the tenant list came from, for messages: the --config file or the demo policy. */
  policyName: string;
  /** The tenant's key-encryption key as this policy names it. */
  kekOf(tenant: string): KeyEncryptionKey;
  close(): Promise<void>;
}

/**
 * The embedded store as the broker opens it, with each tenant's data keys under the root --config
 * names (so a tenant on Vault transit or AWS KMS is read and written through that root here too).
 * Without --config, the demo policy's tenants with the master key. `create` lets only `secret set`
 * make a new master key: a mistyped --data-dir must say so, not start a new, empty store.
 */
export async function openTenantStore(values: { config?: string; 'data-dir'?: string }, options: { create: boolean; knownTenant?: { verb: string; tenant: string } }): Promise<OpenedStore> {
  const loaded = loadConfig(values);
  const { dataDir } = loaded;
  if (!options.create && !process.env.BULKHEAD_MASTER_KEY && !existsSync(join(dataDir, MASTER_KEY_FILE))) {
    throw new UsageError(`${dataDir}: no embedded store here (no ${MASTER_KEY_FILE}); check --data-dir`);
  }
  const policy = loaded.policy ?? parsePolicy({ tenants: Object.fromEntries(DEMO_TENANTS.map((t) => [t, {}])) }, 'demo policy');
  const policyName = values.config ?? 'the demo policy (no --config)';
  // Before anything is created: a typo must not leave a new master key behind.
  if (options.knownTenant) requireKnownTenant(options.knownTenant.verb, policy, policyName, options.knownTenant.tenant);
  const masterKey = await loadOrCreateMasterKey(dataDir);
  const needsVault = Object.values(policy.tenants).some((t) => t.encryption && 'vault_transit' in t.encryption);
  const vault = needsVault ? createVaultSourceFor(policy, createLogger({ level: 'warn', destination: process.stderr })) : undefined;
  const secrets = createTenantSecretStore({ policy: () => policy, dataDir, masterKey, vault });
  return {
    store: secrets.store,
    dataDir,
    policy,
    policyName,
    kekOf: secrets.keks,
    async close() {
      secrets.close();
      await vault?.close?.();
    },
  };
}

/** A tenant the policy does not have is a typo until proven otherwise. */
function requireKnownTenant(verb: string, policy: Policy, policyName: string, tenant: string): void {
  if (Object.hasOwn(policy.tenants, tenant)) return;
  const known = Object.keys(policy.tenants);
  throw new UsageError(`bulkhead ${verb}: tenant "${tenant}" is not in ${policyName} (tenants: ${known.slice(0, 10).join(', ') || 'none'}${known.length > 10 ? ', …' : ''})`);
}
