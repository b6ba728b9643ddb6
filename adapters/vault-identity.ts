import { readFile } from 'node:fs/promises';
import type NodeVault from 'node-vault';
import type { Logger } from 'pino';
import type { Clock } from '../src/clock';
import { settleBy } from '../src/deadline';
import { vaultFailure, vaultStatus } from './vault-error';
import { UpstreamFailure } from './upstream-failure';

/**
 * One tenant's Vault identity: an AppRole login whose token carries only that tenant's policy, kept
 * alive by renewal. The adapter holds one of these per tenant and picks it by the tenant from the
 * verified token, so even a bug that asked Vault for another tenant's path would be asked with a token
 * Vault refuses for it.
 *
 * Why renewal matters beyond "the next call": Vault revokes every lease a token created when that token
 * expires, so a database credential handed out under an unrenewed token dies with the token, not at its
 * own TTL. Hence: renew at two thirds of the TTL, and as soon as Vault stops extending the token (its
 * max TTL is near), log in afresh so new leases hang off a token with a long life ahead.
 */
export interface VaultIdentity {
  /** A valid token for this tenant; logs in when there is none or it is about to expire. */
  token(signal?: AbortSignal): Promise<string>;
  /**
   * Vault answered 403 to a request made with `token`. Returns true when a retry with a fresh login is
   * worth one attempt, because Vault no longer knows the token (it restarted, or the token was revoked
   * or expired); false when the token is alive, so the 403 was Vault's policy speaking.
   */
  refused(token: string, signal?: AbortSignal): Promise<boolean>;
  close(): void;
}

export interface VaultIdentityOptions {
  tenant: string;
  /** This tenant's own node-vault client (never shared with another tenant). */
  client: NodeVault.client;
  roleIdFile: string;
  secretIdFile: string;
  /** AppRole auth mount, without slashes ("approle"). */
  mount: string;
  clock: Clock;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

interface HeldToken {
  value: string;
  obtainedAt: number;
  expiresAt: number;
  /** The TTL Vault granted at login; a renewal granting clearly less means the max TTL is near. */
  grantedMs: number;
}

export function createVaultIdentity(options: VaultIdentityOptions): VaultIdentity {
  const { client, clock, tenant } = options;
  let current: HeldToken | undefined;
  let pending: Promise<HeldToken> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  async function readId(path: string, what: string): Promise<string> {
    const text = (await readFile(path, 'utf8')).trim();
    if (!text) throw new UpstreamFailure(`the ${what} file for tenant ${tenant} is empty (${path})`);
    return text;
  }

  async function login(): Promise<HeldToken> {
    // Read the files on every login, so a deployment that rotates the secret_id file is picked up.
    const [roleId, secretId] = await Promise.all([readId(options.roleIdFile, 'AppRole role_id'), readId(options.secretIdFile, 'AppRole secret_id')]);
    const answer = await client.approleLogin({ role_id: roleId, secret_id: secretId, mount_point: options.mount }).catch((err: unknown) => {
      throw vaultFailure('AppRole login', `auth/${options.mount} (tenant ${tenant})`, err);
    });
    const auth = answer?.auth;
    if (!auth || typeof auth.client_token !== 'string') throw new UpstreamFailure(`AppRole login for tenant ${tenant} returned no token`);
    const grantedMs = Math.max(0, Number(auth.lease_duration) || 0) * 1000;
    const now = clock.now();
    // A zero TTL is a root-like token that never expires; treat it as good for a day between checks.
    const held = { value: auth.client_token as string, obtainedAt: now, expiresAt: now + (grantedMs || 86_400_000), grantedMs };
    if (closed) return held;
    current = held;
    scheduleRenewal(held, auth.renewable === true ? grantedMs : 0);
    options.logger?.info({ tenant, ttl_s: grantedMs / 1000 }, 'vault: logged in with the tenant AppRole');
    return held;
  }

  function loginOnce(): Promise<HeldToken> {
    // Concurrent calls share one login; a caller's abort does not cancel it for the others.
    pending ??= login().finally(() => {
      pending = undefined;
    });
    return pending;
  }

  function scheduleRenewal(held: HeldToken, ttlMs: number) {
    clearTimeout(timer);
    timer = undefined;
    if (ttlMs <= 0 || closed) return;
    timer = setTimeout(() => void renew(held), Math.max(500, Math.floor((ttlMs * 2) / 3)));
    timer.unref();
  }

  async function renew(held: HeldToken) {
    if (closed || current !== held) return;
    try {
      const answer = await client.tokenRenewSelf({ requestOptions: { headers: { 'X-Vault-Token': held.value } } });
      const ttlMs = Math.max(0, Number(answer?.auth?.lease_duration) || 0) * 1000;
      if (current !== held) return;
      held.expiresAt = clock.now() + ttlMs;
      if (ttlMs >= held.grantedMs * 0.9 && answer?.auth?.renewable !== false) {
        scheduleRenewal(held, ttlMs);
        return;
      }
      // Vault capped the renewal: the token is near its max TTL. Switch to a fresh one now, before
      // new leases get attached to a token that is about to take them down with it.
      void loginOnce().catch((err) => options.logger?.warn({ tenant, err }, 'vault: fresh AppRole login failed; will retry on the next call'));
    } catch (err) {
      // Keep the token until it expires; the next call logs in again if it must.
      options.logger?.warn({ tenant, err: vaultFailure('token renewal', `(tenant ${tenant})`, err) }, 'vault: token renewal failed');
    }
  }

  function usable(held: HeldToken | undefined): held is HeldToken {
    if (!held) return false;
    const margin = Math.min(Math.max(1000, held.grantedMs / 10), held.grantedMs / 2);
    return held.expiresAt - clock.now() > margin;
  }

  return {
    async token(signal) {
      if (closed) throw new UpstreamFailure('the Vault adapter is closed');
      if (usable(current)) return current.value;
      const held = await settleBy(loginOnce(), signal);
      return held.value;
    },

    async refused(token, signal) {
      if (!current || current.value !== token) return true; // already replaced since: retry with the new one
      if (!(await tokenIsLost(client, token, signal))) return false;
      if (current?.value === token) {
        current = undefined;
        clearTimeout(timer);
      }
      return true;
    },

    close() {
      closed = true;
      clearTimeout(timer);
      current = undefined;
    },
  };
}

/**
 * Whether Vault has forgotten a token it just refused. lookup-self is allowed to every live token (the
 * `default` policy), so a 403 there means the token itself is gone; an answer means it is alive and the
 * earlier 403 was a real denial, which must not be retried under a fresh login.
 */
async function tokenIsLost(client: NodeVault.client, token: string, signal?: AbortSignal): Promise<boolean> {
  try {
    await settleBy(client.tokenLookupSelf({ requestOptions: { headers: { 'X-Vault-Token': token } } }), signal);
    return false;
  } catch (err) {
    return vaultStatus(err) === 403;
  }
}

/**
 * The broker's shared Vault identity from a token file (written by Vault Agent or an operator, who
 * also renews it). The file is read on first use and again whenever Vault refuses the token, so a
 * rotated file is picked up without a restart. Used only for tenants without their own AppRole.
 */
export function createTokenFileIdentity(options: { tokenFile: string; client: NodeVault.client }): VaultIdentity {
  let current: { value: string } | undefined;
  let closed = false;
  return {
    async token() {
      if (closed) throw new UpstreamFailure('the Vault adapter is closed');
      if (current) return current.value;
      const value = (await readFile(options.tokenFile, 'utf8')).trim();
      if (!value) throw new UpstreamFailure(`the Vault token file is empty (${options.tokenFile})`);
      current = { value };
      return value;
    },
    async refused(token, signal) {
      if (!current || current.value !== token) return true;
      if (!(await tokenIsLost(options.client, token, signal))) return false;
      if (current?.value === token) current = undefined;
      return true;
    },
    close() {
      closed = true;
      current = undefined;
    },
  };
}
