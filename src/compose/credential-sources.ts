import type { Logger } from 'pino';
import { createLocalSource } from '../../adapters/local';
import type { VaultSource, VaultTenantAuth } from '../../adapters/vault';
import { systemClock, type Clock } from '../clock';
import type { CredentialSource } from '../credentials/credential-source';
import type { KeyEncryptionKeys } from '../crypto/key-encryption-key';
import type { Policy } from '../policy/schema';
import { createTenantSecretStore, type TenantSecrets } from './secret-store';

/**
 * Builds the credential sources the policy needs: the embedded local store always, Vault and AWS when
 * `broker.upstreams` configures them. This is composition, so it may import adapters; src/ logic may not.
 * The Vault and AWS adapters are required only when configured: their SDKs are most of a cold start.
 * Also returns each tenant's key-encryption key (as the live policy names it), for whatever else the
 * broker seals under a tenant's own root (approval arguments).
 */
export async function createCredentialSources(options: {
  policy: Policy;
  dataDir: string;
  masterKey: Buffer;
  logger: Logger;
  clock?: Clock;
}): Promise<{ sources: CredentialSource[]; keks: KeyEncryptionKeys; secrets: TenantSecrets }> {
  const { aws } = options.policy.broker.upstreams;
  const clock = options.clock ?? systemClock;
  const sources: CredentialSource[] = [];
  const vault = createVaultSourceFor(options.policy, options.logger, clock);
  if (vault) {
    const shared = hasSharedVaultIdentity(options.policy);
    sources.push({
      ...vault,
      reconfigure(policy) {
        vault.setTenants(tenantAppRoles(policy));
        if (shared) warnAboutSharedIdentity(policy, options.logger);
      },
    });
  }
  if (aws) {
    const { createAwsSource } = require('../../adapters/aws') as typeof import('../../adapters/aws');
    sources.push(createAwsSource({ region: aws.region, endpoint: aws.endpoint, timeoutMs: aws.timeout, clock }));
  }
  // The embedded store wraps each tenant's data key under the root the live policy names.
  let current = options.policy;
  const secrets = createTenantSecretStore({ policy: () => current, dataDir: options.dataDir, masterKey: options.masterKey, vault });
  const local = createLocalSource(secrets.store);
  sources.unshift({
    ...local,
    reconfigure(policy) {
      current = policy;
    },
    async close() {
      secrets.close();
    },
  });
  return { sources, keks: secrets.keks, secrets: { store: secrets.store, keks: secrets.keks } };
}

/**
 * The Vault source for a policy with `broker.upstreams.vault` (each tenant's own AppRole identity, or
 * the shared broker identity), or undefined without one.
 */
export function createVaultSourceFor(policy: Policy, logger: Logger, clock: Clock = systemClock): VaultSource | undefined {
  const vault = policy.broker.upstreams.vault;
  if (!vault) return undefined;
  const auth = vault.auth;
  const shared = auth?.approle
    ? { approle: { roleIdFile: auth.approle.role_id_file, secretIdFile: auth.approle.secret_id_file, mount: auth.approle.mount } }
    : auth?.token_file
      ? { tokenFile: auth.token_file }
      : undefined;
  const { createVaultSource } = require('../../adapters/vault') as typeof import('../../adapters/vault');
  const source = createVaultSource({ address: vault.address, namespace: vault.namespace, timeoutMs: vault.timeout, tenants: tenantAppRoles(policy), shared, clock, logger: logger.child({ upstream: 'vault' }) });
  if (shared) warnAboutSharedIdentity(policy, logger);
  return source;
}

const hasSharedVaultIdentity = (policy: Policy) => Boolean(policy.broker.upstreams.vault?.auth?.approle ?? policy.broker.upstreams.vault?.auth?.token_file);

/** Each tenant's own AppRole; its mount defaults to the broker-level AppRole mount, then "approle". */
function tenantAppRoles(policy: Policy): Record<string, VaultTenantAuth> {
  const brokerMount = policy.broker.upstreams.vault?.auth?.approle?.mount;
  const tenants: Record<string, VaultTenantAuth> = {};
  for (const [id, t] of Object.entries(policy.tenants)) {
    const a = t.vault?.approle;
    if (a) tenants[id] = { roleIdFile: a.role_id_file, secretIdFile: a.secret_id_file, mount: a.mount ?? brokerMount ?? 'approle' };
  }
  return tenants;
}

function warnAboutSharedIdentity(policy: Policy, logger: Logger): void {
  const onShared = Object.entries(policy.tenants)
    .filter(([, t]) => !t.vault?.approle && Object.values(t.credentials).some((c) => c.source === 'vault' || c.source === 'vault-database'))
    .map(([id]) => id);
  if (onShared.length) {
    logger.warn(
      { tenants: onShared.slice(0, 20), count: onShared.length },
      'vault: these tenants have no AppRole of their own and read Vault with the shared broker identity; Vault cannot keep them apart (set tenants.<t>.vault.approle)',
    );
  }
}
