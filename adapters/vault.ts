import NodeVault from 'node-vault';
import type { Logger } from 'pino';
import type { Clock } from '../src/clock';
import type { KeyEncryptionKey } from '../src/crypto/key-encryption-key';
import type { CredentialRequest, CredentialSource, ResolvedCredential } from '../src/credentials/credential-source';
import { BrokerError, isBrokerError } from '../src/errors';
import { selectField } from './secret-field';
import { UpstreamFailure } from './upstream-failure';
import { vaultFailure, vaultStatus } from './vault-error';
import { createTokenFileIdentity, createVaultIdentity, type VaultIdentity } from './vault-identity';
import { encodeVaultPath, isDynamicSecretLease, isSimpleName, leasePrefix } from './vault-path';
import { createVaultTransitKek, type VaultCallAsTenant } from './vault-transit';
import { createVaultTransport } from './vault-transport';

/**
 * `source: vault` (KV v1/v2) and `source: vault-database` (leased database credentials) from HashiCorp
 * Vault or OpenBao, through node-vault.
 *
 * Isolation design: one AppRole per tenant (`tenants.<t>.vault.approle`), each bound to a Vault policy
 * that allows only that tenant's paths, its database role and revoking its own leases. The adapter
 * keeps one node-vault client + token per tenant and chooses it by `request.tenant` — the tenant from
 * the verified JWT — so if broker logic or a policy edit ever pointed tenant A's call at tenant B's
 * path, Vault itself would answer 403. (The alternative, one broker token minting a child token with
 * the tenant's policy per call, needs a parent token that can read every tenant's paths, which is
 * exactly the identity we do not want a bug to be able to use.)
 *
 * A deployment may also configure a shared broker identity (`broker.upstreams.vault.auth`: an AppRole
 * or a token file). Tenants without their own AppRole then read Vault with it, and Vault can no
 * longer tell them apart; the composition root warns about every such tenant at startup. A tenant
 * with neither gets nothing from Vault.
 *
 * Nothing is cached here; the credential resolver caches only when a credential sets `cache_ttl`.
 */
export interface VaultTenantAuth {
  roleIdFile: string;
  secretIdFile: string;
  /** AppRole auth mount (default "approle"). */
  mount?: string;
}

export interface VaultSourceOptions {
  address: string;
  namespace?: string;
  /** Client timeout for each Vault request (login, read, renew, revoke), in milliseconds. */
  timeoutMs: number;
  tenants: Record<string, VaultTenantAuth>;
  /** The broker's shared identity, for tenants without their own AppRole (see above). */
  shared?: { approle?: VaultTenantAuth; tokenFile?: string };
  clock: Clock;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

interface TenantVault {
  client: NodeVault.client;
  identity: VaultIdentity;
}

export interface VaultSource extends CredentialSource {
  setTenants(tenants: Record<string, VaultTenantAuth>): void;
  /** The tenant's data-key root in Vault transit, used with the tenant's own identity. */
  transitKek(tenant: string, mount: string, key: string): KeyEncryptionKey;
}

export function createVaultSource(options: VaultSourceOptions): VaultSource {
  const transport = createVaultTransport({ timeoutMs: options.timeoutMs });
  const newClient = () => {
    const client = NodeVault({ endpoint: options.address, namespace: options.namespace, 'request-promise': transport });
    // node-vault falls back to VAULT_TOKEN / VAULT_NAMESPACE from the environment; a broker must never
    // send an ambient token (it may be a root token in a developer's shell). Tokens go per request.
    client.token = '';
    (client as { namespace?: string }).namespace = options.namespace ?? '';
    return client;
  };
  const tenants = new Map<string, TenantVault & { auth: VaultTenantAuth }>();
  const sameAuth = (a: VaultTenantAuth, b: VaultTenantAuth) => a.roleIdFile === b.roleIdFile && a.secretIdFile === b.secretIdFile && (a.mount ?? 'approle') === (b.mount ?? 'approle');
  /** Each tenant's own AppRole identity; one whose settings are unchanged keeps its login. */
  function setTenants(wanted: Record<string, VaultTenantAuth>): void {
    for (const [tenant, current] of tenants) {
      if (Object.hasOwn(wanted, tenant) && sameAuth(current.auth, wanted[tenant]!)) continue;
      current.identity.close();
      tenants.delete(tenant);
    }
    for (const [tenant, auth] of Object.entries(wanted)) {
      if (tenants.has(tenant)) continue;
      const client = newClient();
      const identity = createVaultIdentity({ tenant, client, roleIdFile: auth.roleIdFile, secretIdFile: auth.secretIdFile, mount: auth.mount ?? 'approle', clock: options.clock, logger: options.logger });
      tenants.set(tenant, { client, identity, auth });
    }
  }
  setTenants(options.tenants);
  let shared: TenantVault | undefined;
  if (options.shared?.approle || options.shared?.tokenFile) {
    const client = newClient();
    const a = options.shared.approle;
    const identity = a
      ? createVaultIdentity({ tenant: '(shared broker identity)', client, roleIdFile: a.roleIdFile, secretIdFile: a.secretIdFile, mount: a.mount ?? 'approle', clock: options.clock, logger: options.logger })
      : createTokenFileIdentity({ tokenFile: options.shared.tokenFile!, client });
    shared = { client, identity };
  }
  const identityOf = (tenant: string) => tenants.get(tenant) ?? shared;
  const healthClient = newClient();

  /**
   * Calls Vault as the tenant. A 403 on a token Vault no longer knows (OpenBao restarted, token
   * revoked) gets one retry after a fresh login; a 403 on a live token is Vault's policy answering.
   */
  async function asTenant<T>(tenant: TenantVault, signal: AbortSignal | undefined, call: (headers: Record<string, string>) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const token = await tenant.identity.token(signal);
      try {
        return await call({ 'X-Vault-Token': token });
      } catch (err) {
        if (attempt === 0 && vaultStatus(err) === 403 && (await tenant.identity.refused(token, signal))) continue;
        throw err;
      }
    }
  }

  async function resolve(request: CredentialRequest): Promise<ResolvedCredential> {
    const { spec, signal } = request;
    const tenant = identityOf(request.tenant);
    if (!tenant) throw new UpstreamFailure(`tenant ${request.tenant} has no Vault identity (tenants.${request.tenant}.vault.approle)`);

    if (spec.source === 'vault') {
      const path = encodeVaultPath(spec.path);
      if (!path) throw new UpstreamFailure(`vault path of credential ${request.name} is not a safe path`);
      const answer = await asTenant(tenant, signal, (headers) => tenant.client.read(path, { headers, signal })).catch((err: unknown) => {
        throw vaultFailure('read', spec.path, err);
      });
      // KV v2 wraps the secret in data.data next to data.metadata; KV v1 answers the secret as data.
      const data = answer?.data;
      const kv2 = data && typeof data === 'object' && 'metadata' in data && 'data' in data;
      const document = kv2 ? data.data : data;
      const value = selectField(document, spec.field);
      if (value === undefined) throw new UpstreamFailure(`vault read ${spec.path}: ${spec.field ? `no field "${spec.field}"` : 'no data'}`);
      const version = kv2 && typeof data.metadata?.version === 'number' ? `@v${data.metadata.version}` : '';
      return { source: 'vault', ref: `${spec.path}${spec.field ? `#${spec.field}` : ''}${version}`, value };
    }

    if (spec.source === 'vault-database') {
      const mount = encodeVaultPath(spec.mount);
      if (!mount || !isSimpleName(spec.role)) throw new UpstreamFailure(`database mount or role of credential ${request.name} is not a safe name`);
      const ref = `${spec.mount}/creds/${spec.role}`;
      const answer = await asTenant(tenant, signal, (headers) => tenant.client.read(`${mount}/creds/${spec.role}`, { headers, signal })).catch((err: unknown) => {
        throw vaultFailure('read', ref, err);
      });
      const leaseId = typeof answer?.lease_id === 'string' ? answer.lease_id : '';
      const username = answer?.data?.username;
      const password = answer?.data?.password;
      if (typeof username !== 'string' || typeof password !== 'string' || !leaseId) {
        if (leaseId) void revoke(request.tenant, leaseId);
        throw new UpstreamFailure(`vault read ${ref}: the answer had no username, password or lease`);
      }
      // The broker gave up on this call while Vault was answering: nobody will ever use or give back
      // this credential, so give it back now rather than leave a live database login behind.
      if (signal.aborted) {
        void revoke(request.tenant, leaseId);
        throw new UpstreamFailure(`vault read ${ref}: answered after the call timed out; lease revoked`);
      }
      const ttlSeconds = Number(answer.lease_duration) || 0;
      return {
        source: 'vault-database',
        ref,
        value: JSON.stringify({ username, password }),
        lease_id: leaseId,
        ...(ttlSeconds > 0 ? { expires_at: new Date(options.clock.now() + ttlSeconds * 1000).toISOString() } : {}),
      };
    }

    throw new UpstreamFailure(`the Vault adapter cannot serve source "${spec.source}"`);
  }

  async function revoke(tenantId: string, leaseId: string): Promise<void> {
    const tenant = identityOf(tenantId);
    if (!tenant || !isDynamicSecretLease(leaseId)) return; // not a lease this adapter could have issued
    // The URL form (sys/leases/revoke/<id>) lets the tenant's Vault policy allow revoking only its own
    // role's leases; the body form would need a grant on every lease in Vault.
    const encoded = encodeVaultPath(leaseId)!;
    try {
      await asTenant(tenant, undefined, (headers) => tenant.client.write(`sys/leases/revoke/${encoded}`, { sync: true }, { headers }));
    } catch (err) {
      const failure = vaultFailure('revoke lease', leasePrefix(leaseId), err);
      options.logger?.warn({ tenant: tenantId, err: failure }, 'vault: lease revocation failed');
      throw failure;
    }
  }

  /** A call as the tenant's own Vault identity, for the tenant's transit key-encryption key. */
  const callAsTenant = (tenantId: string): VaultCallAsTenant => async (method, path, body) => {
    const tenant = identityOf(tenantId);
    if (!tenant) throw new UpstreamFailure(`tenant ${tenantId} has no Vault identity (tenants.${tenantId}.vault.approle)`);
    try {
      return await asTenant(tenant, undefined, (headers) => (method === 'write' ? tenant.client.write(path, body ?? {}, { headers }) : tenant.client.delete(path, { headers })));
    } catch (err) {
      throw vaultFailure(method, path.split('/').slice(0, 2).join('/'), err);
    }
  };

  return {
    sources: ['vault', 'vault-database'],
    setTenants,
    transitKek: (tenantId: string, mount: string, key: string) => createVaultTransitKek({ mount, key, call: callAsTenant(tenantId) }),

    async resolve(request) {
      try {
        return await resolve(request);
      } catch (err) {
        if (isBrokerError(err)) throw err;
        // The client learns which credential is unavailable, never Vault's answer or the path.
        throw new BrokerError('upstream_unavailable', `credential "${request.name}" is not available from Vault`, {
          cause: err instanceof UpstreamFailure ? err : vaultFailure('request', request.name, err),
        });
      }
    },

    revokeLease: revoke,

    async ready() {
      try {
        const health = await healthClient.health();
        return health?.initialized === true && health?.sealed === false;
      } catch {
        return false;
      }
    },

    async close() {
      for (const tenant of tenants.values()) tenant.identity.close();
      shared?.identity.close();
      transport.close();
    },
  };
}
