import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { JSONWebKeySet } from 'jose';

/**
 * One bounded GET of a tenant IdP's JWKS document. The IdP is outside our trust boundary, so the fetch
 * is bounded as a whole, not per phase: one deadline covers connecting, the headers and the last byte
 * of the body (a body that trickles one byte a second would beat any idle timeout), and a byte cap
 * counts what arrives (a Content-Length above it is refused before reading, a chunked body is cut off
 * the moment it passes it). No redirects are followed. Nothing from the response is echoed in errors.
 */

export interface JwksFetchLimits {
  /** The whole request, connect to last byte. */
  timeoutMs: number;
  maxBytes: number;
}

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

export const fetchJwks: JwksFetcher = async (url, limits) => parseJwks(await fetchBounded(new URL(url), limits));

function fetchBounded(url: URL, limits: JwksFetchLimits): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: 'GET', agent: false, headers: { accept: 'application/json' } });
    let settled = false;
    const finish = (err: JwksFetchError | null, body?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (err) {
        request.destroy();
        reject(err);
      } else resolve(body!);
    };
    const deadline = setTimeout(() => finish(new JwksFetchError('timeout', `no complete answer within ${limits.timeoutMs} ms`)), limits.timeoutMs);
    request.on('error', (err) => finish(new JwksFetchError('network', 'the request failed', { cause: err })));
    request.on('response', (response: IncomingMessage) => {
      response.on('error', (err) => finish(new JwksFetchError('network', 'the response failed', { cause: err })));
      if (response.statusCode !== 200) return finish(new JwksFetchError('status', `answered HTTP ${response.statusCode}`));
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > limits.maxBytes) return finish(tooLarge(limits));
      const chunks: Buffer[] = [];
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > limits.maxBytes) return finish(tooLarge(limits));
        chunks.push(chunk);
      });
      response.on('end', () => finish(null, Buffer.concat(chunks)));
    });
    request.end();
  });
}

function tooLarge(limits: JwksFetchLimits): JwksFetchError {
  return new JwksFetchError('too_large', `the document is larger than ${limits.maxBytes} bytes`);
}

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
