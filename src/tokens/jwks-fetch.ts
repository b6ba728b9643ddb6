import type { JSONWebKeySet } from 'jose';
import { boundedRequest, BoundedRequestError, type BoundedFetch, type RequestLimits } from '../net/bounded-request';

/**
 * One bounded GET of a tenant IdP's JWKS document. The IdP is outside our trust boundary, so the fetch
 * is `boundedRequest`'s: one deadline for the whole request, connect to last byte (a body that trickles
 * one byte a second would beat any idle timeout), a byte cap on what arrives, no redirects. Nothing
 * from the response is echoed in errors.
 */

export type JwksFetchLimits = RequestLimits;

export type JwksFetchFailure = 'timeout' | 'too_large' | 'status' | 'invalid_json' | 'invalid_jwks' | 'network';

export class JwksFetchError extends Error {
  readonly failure: JwksFetchFailure;

  constructor(failure: JwksFetchFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JwksFetchError';
    this.failure = failure;
  }
}

export type JwksFetcher = (url: string, limits: JwksFetchLimits) => Promise<JSONWebKeySet>;

export function createJwksFetcher(fetch: BoundedFetch = boundedRequest): JwksFetcher {
  return async (url, limits) => {
    let response;
    try {
      response = await fetch(new URL(url), { headers: { accept: 'application/json' } }, limits);
    } catch (err) {
      if (err instanceof BoundedRequestError) throw new JwksFetchError(err.failure, err.message, { cause: err });
      throw new JwksFetchError('network', 'the request failed', { cause: err });
    }
    if (response.status !== 200) throw new JwksFetchError('status', `answered HTTP ${response.status}`);
    return parseJwks(response.body);
  };
}

export const fetchJwks: JwksFetcher = createJwksFetcher();

function parseJwks(body: Buffer): JSONWebKeySet {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new JwksFetchError('invalid_json', 'the document is not JSON', { cause: err });
  }
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || !keys.every((k) => k !== null && typeof k === 'object' && !Array.isArray(k))) {
    throw new JwksFetchError('invalid_jwks', 'the document is not a JWKS ({"keys": [...]})');
  }
  return value as JSONWebKeySet;
}
