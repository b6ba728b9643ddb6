import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { decodeUtf8, parseStrictJson } from '../http/strict-json';

/**
 * One HTTP request to a party outside our trust boundary (a tenant IdP, a client's metadata document),
 * bounded as a whole rather than per phase: one deadline covers connecting, the headers and the last
 * byte of the body (a body that trickles one byte a second would beat any idle timeout), and a byte cap
 * counts what arrives (a Content-Length above it is refused before reading, a chunked body is cut off
 * the moment it passes it). No redirects are followed: a 3xx is an answer like any other status.
 * Nothing from the response is echoed in errors.
 */

export interface RequestLimits {
  /** The whole request, connect to last byte. */
  timeoutMs: number;
  maxBytes: number;
}

export interface BoundedRequest {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** Replaces DNS resolution (publicOnlyLookup refuses internal addresses). */
  lookup?: LookupFunction;
}

export interface BoundedResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export type BoundedRequestFailure = 'timeout' | 'too_large' | 'network';

export class BoundedRequestError extends Error {
  readonly failure: BoundedRequestFailure;

  constructor(failure: BoundedRequestFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BoundedRequestError';
    this.failure = failure;
  }
}

export type BoundedFetch = (url: URL, init: BoundedRequest, limits: RequestLimits) => Promise<BoundedResponse>;

export const boundedRequest: BoundedFetch = (url, init, limits) =>
  new Promise<BoundedResponse>((resolve, reject) => {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      reject(new BoundedRequestError('network', 'only http and https URLs can be fetched'));
      return;
    }
    const headers = { ...(init.headers ?? {}), ...(init.body !== undefined ? { 'content-length': String(Buffer.byteLength(init.body)) } : {}) };
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: init.method ?? 'GET', agent: false, headers, ...(init.lookup ? { lookup: init.lookup } : {}) });
    let settled = false;
    const finish = (err: BoundedRequestError | null, answer?: BoundedResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (err) {
        request.destroy();
        reject(err);
      } else resolve(answer!);
    };
    const deadline = setTimeout(() => finish(new BoundedRequestError('timeout', `no complete answer within ${limits.timeoutMs} ms`)), limits.timeoutMs);
    request.on('error', (err) => finish(new BoundedRequestError('network', 'the request failed', { cause: err })));
    request.on('response', (response: IncomingMessage) => {
      response.on('error', (err) => finish(new BoundedRequestError('network', 'the response failed', { cause: err })));
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > limits.maxBytes) return finish(tooLarge(limits));
      const chunks: Buffer[] = [];
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > limits.maxBytes) return finish(tooLarge(limits));
        chunks.push(chunk);
      });
      response.on('end', () => finish(null, { status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
    });
    request.end(init.body);
  });

function tooLarge(limits: RequestLimits): BoundedRequestError {
  return new BoundedRequestError('too_large', `the answer is larger than ${limits.maxBytes} bytes`);
}

/**
 * The body as a JSON object read by the broker's one strict reader (UTF-8, no duplicate or reserved
 * keys), or null. Never throws, never echoes the body.
 */
export function jsonObjectOf(body: Buffer): Record<string, unknown> | null {
  try {
    const value = parseStrictJson(decodeUtf8(body));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
