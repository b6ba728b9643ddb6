import type { Clock } from '../clock';
import { boundedRequest, jsonObjectOf, type BoundedFetch } from '../net/bounded-request';
import { literalRefused, publicOnlyLookup } from '../net/public-address';
import { redirectUriProblem, type Policy } from '../policy/schema';
import type { OAuthClient } from './clients';

/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, the MCP spec's preferred
 * registration): a client_id that is an https URL is fetched, and the JSON there is the client's
 * registration. The URL is chosen by whoever calls /authorize, so every fetch is bounded:
 * - time and size: one deadline for the whole request, a byte cap, no redirects;
 * - where: https only, and never an internal address (checked on the address connected to);
 *   `allowHttpLoopback` admits http://127.0.0.1 for tests and local development only;
 * - how often: documents are cached (successes and failures), concurrent lookups of one URL share one
 *   fetch, and cache misses across all clients draw from one bucket of `fetchesPerMinute`, so a flood
 *   of made-up URLs costs the broker a fixed number of fetches and everyone else a refusal.
 * A document is accepted only if its `client_id` is exactly its URL, it lists redirect URIs that pass
 * the same rules as static clients, and it asks for no client secret (public clients, PKCE).
 */

export interface ClientMetadataSettings {
  timeoutMs: number;
  maxBytes: number;
  fetchesPerMinute: number;
  cacheMs: number;
  allowHttpLoopback: boolean;
}

/** The policy's `broker.authorization.client_metadata`, in the resolver's terms. */
export function clientMetadataSettings(policy: Policy): ClientMetadataSettings {
  const c = policy.broker.authorization.client_metadata;
  return { timeoutMs: c.timeout, maxBytes: c.max_bytes, fetchesPerMinute: c.fetches_per_minute, cacheMs: c.cache, allowHttpLoopback: c.allow_http_loopback };
}

export type MetadataFailure = 'invalid_client_id' | 'unavailable' | 'invalid_document' | 'rate_limited';

export class ClientMetadataError extends Error {
  constructor(
    readonly failure: MetadataFailure,
    message: string,
  ) {
    super(message);
    this.name = 'ClientMetadataError';
  }
}

interface Cached {
  until: number;
  client?: OAuthClient;
  error?: ClientMetadataError;
}

const MAX_CACHED = 1000;
const FAILURE_CACHE_MS = 30_000;

export function isUrlClientId(clientId: string): boolean {
  return clientId.startsWith('https://') || clientId.startsWith('http://');
}

/** The URL rules of the draft (§3): https, a path, no fragment, no user info, no dot segments. */
export function clientIdUrlProblem(clientId: string, allowHttpLoopback: boolean): string | null {
  let url: URL;
  try {
    url = new URL(clientId);
  } catch {
    return 'is not a URL';
  }
  const loopbackHost = url.hostname === '127.0.0.1' || url.hostname === '[::1]' || url.hostname === 'localhost';
  if (url.protocol !== 'https:' && !(allowHttpLoopback && url.protocol === 'http:' && loopbackHost)) return 'must be an https URL';
  if (url.href !== clientId) return 'must be in normal form';
  if (url.pathname === '/' || url.hash !== '' || url.username !== '' || url.password !== '') return 'must have a path and no fragment or user information';
  if (/\/\.\.?(\/|$)/.test(new URL(clientId).pathname) || /%2e/i.test(clientId)) return 'must not contain dot segments';
  if (literalRefused(url.hostname, allowHttpLoopback) || (url.hostname === 'localhost' && !allowHttpLoopback)) return 'must not name an internal address';
  return null;
}

export function createClientMetadataResolver(deps: { settings: () => ClientMetadataSettings; clock: Clock; fetch?: BoundedFetch }) {
  const fetchFn = deps.fetch ?? boundedRequest;
  const cache = new Map<string, Cached>();
  const inFlight = new Map<string, Promise<OAuthClient>>();
  let bucket = { tokens: Number.NaN, at: 0 };

  /** One token per fetch, refilled continuously up to a minute's worth. */
  function takeFetchToken(perMinute: number): boolean {
    const now = deps.clock.now();
    if (Number.isNaN(bucket.tokens)) bucket = { tokens: perMinute, at: now };
    bucket.tokens = Math.min(perMinute, bucket.tokens + ((now - bucket.at) * perMinute) / 60_000);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  function remember(url: string, entry: Cached): void {
    cache.delete(url);
    cache.set(url, entry);
    while (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value as string);
  }

  async function fetchDocument(url: string, settings: ClientMetadataSettings): Promise<OAuthClient> {
    let response;
    try {
      response = await fetchFn(new URL(url), { headers: { accept: 'application/json' }, lookup: publicOnlyLookup(settings.allowHttpLoopback) }, { timeoutMs: settings.timeoutMs, maxBytes: settings.maxBytes });
    } catch {
      throw new ClientMetadataError('unavailable', 'the client metadata document could not be fetched');
    }
    if (response.status !== 200) throw new ClientMetadataError('unavailable', `the client metadata document answered HTTP ${response.status}`);
    const doc = jsonObjectOf(response.body);
    if (!doc) throw new ClientMetadataError('invalid_document', 'the client metadata document is not a JSON object');
    return clientOfDocument(url, doc);
  }

  return {
    async resolve(clientId: string): Promise<OAuthClient> {
      const settings = deps.settings();
      const problem = clientIdUrlProblem(clientId, settings.allowHttpLoopback);
      if (problem) throw new ClientMetadataError('invalid_client_id', `client_id ${problem}`);
      const cached = cache.get(clientId);
      if (cached && cached.until > deps.clock.now()) {
        if (cached.client) return cached.client;
        throw cached.error!;
      }
      const pending = inFlight.get(clientId);
      if (pending) return pending;
      if (!takeFetchToken(settings.fetchesPerMinute)) throw new ClientMetadataError('rate_limited', 'too many client metadata documents are being fetched; try again shortly');
      const fetching = fetchDocument(clientId, settings).then(
        (client) => {
          remember(clientId, { until: deps.clock.now() + settings.cacheMs, client });
          return client;
        },
        (err: unknown) => {
          const error = err instanceof ClientMetadataError ? err : new ClientMetadataError('unavailable', 'the client metadata document could not be fetched');
          remember(clientId, { until: deps.clock.now() + Math.min(FAILURE_CACHE_MS, settings.cacheMs), error });
          throw error;
        },
      );
      inFlight.set(clientId, fetching);
      try {
        return await fetching;
      } finally {
        inFlight.delete(clientId);
      }
    },
  };
}

export type ClientMetadataResolver = ReturnType<typeof createClientMetadataResolver>;

function clientOfDocument(url: string, doc: Record<string, unknown>): OAuthClient {
  const invalid = (why: string) => new ClientMetadataError('invalid_document', `the client metadata document ${why}`);
  if (doc.client_id !== url) throw invalid('names a different client_id than its own URL');
  if ('client_secret' in doc || 'client_secret_expires_at' in doc) throw invalid('must not carry a client secret');
  const method = doc.token_endpoint_auth_method;
  if (method !== undefined && method !== 'none') throw invalid('must use token_endpoint_auth_method "none" (a public client with PKCE)');
  const uris = doc.redirect_uris;
  if (!Array.isArray(uris) || uris.length === 0 || uris.length > 20 || !uris.every((u): u is string => typeof u === 'string' && u.length <= 2048 && redirectUriProblem(u) === null)) {
    throw invalid('needs redirect_uris: 1-20 absolute https, loopback or private-use URIs without fragments');
  }
  const name = typeof doc.client_name === 'string' ? doc.client_name.slice(0, 128) : undefined;
  return Object.freeze({ clientId: url, redirectUris: Object.freeze([...uris]), kind: 'metadata_document' as const, ...(name !== undefined ? { name } : {}) });
}
