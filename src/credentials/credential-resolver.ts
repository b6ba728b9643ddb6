import type { Clock } from '../clock';
import { isDeadlineExceeded, withDeadline } from '../deadline';
import { BrokerError, isBrokerError } from '../errors';
import { canonicalJson } from '../crypto/hash';
import type { CredentialSpec, Policy } from '../policy/schema';
import type { CredentialSource, ResolvedCredential } from './credential-source';

/**
 * Resolves a tenant's credential at call time through the adapter for its `source`, bounded by a
 * timeout. Nothing is cached across calls unless the credential sets `cache_ttl`; then the cache key
 * starts with the tenant, so one tenant's entry can never answer another's lookup. Concurrent misses
 * for the same key share one upstream request.
 */
export interface CredentialResolver {
  resolve(input: { tenant: string; name: string; spec: CredentialSpec; session: string; callId: string }): Promise<ResolvedCredential>;
  revokeLease(tenant: string, leaseId: string): Promise<void>;
  /**
   * Whether resolving `spec` may wait on an upstream (its source can hang): the authorizer then writes
   * the call's intent record while it resolves, instead of the allow record after it.
   */
  waitsOnUpstream(spec: CredentialSpec): boolean;
  ready(): Promise<Record<string, boolean>>;
  /** Hands a reloaded policy to every source that follows policy; a throw refuses the reload. */
  reconfigure(policy: Policy): void;
  close(): Promise<void>;
}

export interface CredentialResolverOptions {
  sources: CredentialSource[];
  clock: Clock;
  timeoutMs: number;
  /** Called with the private cause of an upstream failure (for the log), never sent to clients. */
  onUpstreamError?: (source: string, err: unknown) => void;
}

/** The name of the broker's overall bound per resolution (each adapter's own client timeout sits inside it). */
export const UPSTREAM_BUDGET = 'upstream budget';

/** The signal of a call to a source that cannot hang: nothing ever aborts it. */
const NEVER_ABORTED = new AbortController().signal;

interface CacheEntry {
  value: ResolvedCredential;
  expiresAt: number;
}

export function createCredentialResolver(options: CredentialResolverOptions): CredentialResolver {
  const bySource = new Map<string, CredentialSource>();
  for (const source of options.sources) for (const kind of source.sources) bySource.set(kind, source);
  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<ResolvedCredential>>();

  async function fetchNow(input: Parameters<CredentialResolver['resolve']>[0]): Promise<ResolvedCredential> {
    const source = bySource.get(input.spec.source);
    if (!source) throw new BrokerError('upstream_unavailable', `no adapter is configured for source "${input.spec.source}"`);
    try {
      // The adapter gets the signal (to cancel its I/O) and the caller is released at the budget either way.
      const resolved = source.cannotHang
        ? await source.resolve({ ...input, signal: NEVER_ABORTED })
        : await withDeadline(options.timeoutMs, UPSTREAM_BUDGET, undefined, (signal) => source.resolve({ ...input, signal }));
      if (typeof resolved?.value !== 'string' || resolved.value.length === 0) {
        throw new BrokerError('upstream_unavailable', `credential "${input.name}" resolved to no value`);
      }
      return resolved;
    } catch (err) {
      options.onUpstreamError?.(input.spec.source, err);
      if (isDeadlineExceeded(err, UPSTREAM_BUDGET)) throw new BrokerError('upstream_unavailable', `credential source "${input.spec.source}" did not answer in time`, { cause: err });
      if (isBrokerError(err) && err.reason === 'upstream_unavailable') throw err;
      // Whatever the adapter threw, the client learns only which credential failed, not why.
      throw new BrokerError('upstream_unavailable', `credential "${input.name}" could not be resolved from ${input.spec.source}`, { cause: err });
    }
  }

  return {
    async resolve(input) {
      const ttl = 'cache_ttl' in input.spec ? input.spec.cache_ttl : undefined;
      if (!ttl) return fetchNow(input);
      // The spec is part of the key: after a policy reload moves a credential, the old value is never served.
      const key = `${input.tenant}\u0000${input.name}\u0000${canonicalJson(input.spec)}`;
      const hit = cache.get(key);
      if (hit && hit.expiresAt > options.clock.now()) return hit.value;
      const pending = inFlight.get(key);
      if (pending) return pending;
      const request = fetchNow(input)
        .then((value) => {
          cache.set(key, { value, expiresAt: options.clock.now() + ttl });
          return value;
        })
        .finally(() => inFlight.delete(key));
      inFlight.set(key, request);
      return request;
    },

    waitsOnUpstream(spec) {
      return bySource.get(spec.source)?.cannotHang !== true;
    },

    async revokeLease(tenant, leaseId) {
      const revokers = [...new Set(bySource.values())].filter((s) => s.revokeLease);
      await Promise.all(revokers.map((s) => s.revokeLease!(tenant, leaseId)));
    },

    async ready() {
      const out: Record<string, boolean> = {};
      for (const [kind, source] of bySource) out[kind] = source.ready ? await source.ready().catch(() => false) : true;
      return out;
    },

    reconfigure(policy) {
      for (const source of new Set(bySource.values())) source.reconfigure?.(policy);
    },

    async close() {
      cache.clear();
      await Promise.all([...new Set(bySource.values())].map((s) => s.close?.()));
    },
  };
}
