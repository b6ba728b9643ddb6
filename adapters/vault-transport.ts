import { startDeadline } from '../src/deadline';
import { createKeepAliveTransport } from '../src/net/keep-alive-http';

/**
 * The HTTP transport node-vault calls through (its `request-promise` hook), on node:http with a
 * keep-alive agent: every Vault request can be cancelled, and ends at the earliest of the adapter's own
 * client timeout and the caller's AbortSignal (the broker's per-call budget). node-vault's default
 * transport drops `signal`, so a timed-out call would otherwise keep a socket busy. (fetch would do the
 * same job at about half again the CPU per request, which is the hot path of authorize + resolve.)
 *
 * Responses come back in the shape node-vault expects (`{statusCode, body, request: {path}}`); it
 * turns non-2xx answers into errors, which the adapter then replaces with body-free ones.
 */

export interface VaultTransportOptions {
  /** Per-request client timeout, in milliseconds. */
  timeoutMs: number;
}

/** What node-vault passes for one request (after merging its requestOptions). */
interface NodeVaultRequest {
  method: string;
  uri: string;
  headers?: Record<string, string>;
  json?: unknown;
  signal?: AbortSignal;
}

interface NodeVaultResponse {
  statusCode: number;
  body: unknown;
  request: { path: string };
}

export type VaultRequestFn = (options: NodeVaultRequest) => Promise<NodeVaultResponse>;

/** Vault answers are small JSON documents; anything larger is not one. */
const MAX_BODY_BYTES = 1 << 20;

/** The object node-vault's `request-promise` option wants: `defaults()` returns the request function. */
export function createVaultTransport(options: VaultTransportOptions): { defaults(): VaultRequestFn; close(): void } {
  const transport = createKeepAliveTransport({ maxBodyBytes: MAX_BODY_BYTES });

  const request: VaultRequestFn = async (req) => {
    const url = new URL(req.uri);
    // One deadline joins the client timeout and the caller's signal (src/deadline.ts: a strongly held
    // timer; AbortSignal.any() over AbortSignal.timeout() lost the timeout after a garbage collection).
    const deadline = startDeadline(options.timeoutMs, 'vault client timeout', req.signal);
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    let body: string | undefined;
    if (req.json !== undefined && typeof req.json === 'object') {
      body = JSON.stringify(req.json);
      headers['content-type'] ??= 'application/json';
    }
    let response;
    try {
      response = await transport.request({ method: req.method, url, headers, body, signal: deadline.signal });
    } finally {
      deadline.cancel();
    }
    let parsed: unknown;
    if (response.text.length > 0) {
      try {
        parsed = JSON.parse(response.text);
      } catch {
        parsed = undefined; // A proxy's HTML error page: the status code says enough.
      }
    }
    return { statusCode: response.status, body: parsed, request: { path: url.pathname } };
  };

  return { defaults: () => request, close: () => transport.close() };
}
