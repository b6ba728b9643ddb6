import { createLocalJWKSet, type JWTVerifyGetKey } from 'jose';
import { systemClock, type Clock } from '../clock';
import { BrokerError } from '../errors';
import type { TenantPolicy } from '../policy/schema';
import { fetchJwks, type JwksFetcher, type JwksFetchLimits } from './jwks-fetch';

/**
 * Where each tenant's IdP signing keys come from: that IdP's JWKS, fetched with `fetchJwks` (one
 * deadline, a byte cap) and kept per tenant. A hostile or broken IdP must cost only its own tenant, so:
 * - one fetch in flight per tenant: concurrent exchanges wait on the same fetch instead of each opening
 *   a connection the IdP can hold open;
 * - a failed fetch is remembered (negative cache) with exponential backoff, capped: until it expires,
 *   that tenant's exchanges answer 503 at once, without touching the network;
 * - keys are used for `cacheMaxAgeMs`, then fetched again (an IdP that dropped a key is followed); an
 *   unknown `kid` refetches at most once per `cooldownMs`.
 * The state is one small entry per tenant in policy, rebuilt when the tenant's `jwks_uri` changes.
 * Every failure is a BrokerError `upstream_unavailable` (the token endpoint's 503 temporarily_unavailable).
 */

export type IdpSettings = NonNullable<TenantPolicy['idp']>;
/**
 * Keys for one source of identity tokens: `owner` is what the cache and its backoff are kept per (a
 * tenant id for a tenant IdP, `workload:NAME` for a workload issuer), so one broken source costs only
 * its own callers.
 */
export type IdpKeyResolver = (owner: string, source: Pick<IdpSettings, 'jwks_uri'>, limits: JwksFetchLimits) => JWTVerifyGetKey;

export interface RemoteIdpKeysOptions {
  clock?: Clock;
  fetch?: JwksFetcher;
  cacheMaxAgeMs?: number;
  cooldownMs?: number;
  /** Backoff after a failed fetch: the first wait, doubled per further failure up to the most. */
  backoff?: { firstMs: number; maxMs: number };
  onFailure?: (tenant: string, err: unknown) => void;
}

interface TenantKeys {
  uri: string;
  keys?: { get: JWTVerifyGetKey; fetchedAt: number };
  inFlight?: Promise<void>;
  failure?: { retryAt: number; waitMs: number };
}

const UNAVAILABLE = 'tenant identity provider keys are unavailable';

export function createRemoteIdpKeys(options: RemoteIdpKeysOptions = {}): IdpKeyResolver {
  const clock = options.clock ?? systemClock;
  const fetch = options.fetch ?? fetchJwks;
  const cacheMaxAgeMs = options.cacheMaxAgeMs ?? 600_000;
  const cooldownMs = options.cooldownMs ?? 30_000;
  const backoff = options.backoff ?? { firstMs: 1000, maxMs: 60_000 };
  const byTenant = new Map<string, TenantKeys>();

  function entryFor(tenant: string, uri: string): TenantKeys {
    let entry = byTenant.get(tenant);
    if (!entry || entry.uri !== uri) byTenant.set(tenant, (entry = { uri }));
    return entry;
  }

  /** Resolves once `entry.keys` is fresh from the IdP; shares the fetch in flight; honours the backoff. */
  function refresh(tenant: string, entry: TenantKeys, limits: JwksFetchLimits): Promise<void> {
    if (entry.inFlight) return entry.inFlight;
    if (entry.failure && clock.now() < entry.failure.retryAt) {
      const seconds = Math.ceil((entry.failure.retryAt - clock.now()) / 1000);
      return Promise.reject(new BrokerError('upstream_unavailable', `${UNAVAILABLE} (last fetch failed; retrying in ${seconds}s)`));
    }
    const fetching = fetch(entry.uri, limits).then(
      (jwks) => {
        entry.keys = { get: createLocalJWKSet(jwks), fetchedAt: clock.now() };
        entry.failure = undefined;
      },
      (err: unknown) => {
        const waitMs = entry.failure ? Math.min(entry.failure.waitMs * 2, backoff.maxMs) : backoff.firstMs;
        entry.failure = { retryAt: clock.now() + waitMs, waitMs };
        options.onFailure?.(tenant, err);
        throw new BrokerError('upstream_unavailable', UNAVAILABLE, { cause: err });
      },
    );
    entry.inFlight = fetching.finally(() => {
      if (entry.inFlight === guarded) entry.inFlight = undefined;
    });
    const guarded = entry.inFlight;
    return guarded;
  }

  return (tenant, idp, limits) => async (header, token) => {
    const entry = entryFor(tenant, idp.jwks_uri);
    if (!entry.keys || clock.now() - entry.keys.fetchedAt >= cacheMaxAgeMs) await refresh(tenant, entry, limits);
    try {
      return await entry.keys!.get(header, token);
    } catch (err) {
      // A kid we do not know may be a key the IdP just rotated in: look again, but not more than once per cooldown.
      const unknownKid = (err as { code?: unknown }).code === 'ERR_JWKS_NO_MATCHING_KEY';
      if (!unknownKid || clock.now() - entry.keys!.fetchedAt < cooldownMs) throw err;
      await refresh(tenant, entry, limits);
      return entry.keys!.get(header, token);
    }
  };
}
