/**
 * The HTTP transport node-vault calls through (its `request-promise` hook), built on fetch so every
 * Vault request can be cancelled: each one ends at the earliest of the adapter's own client timeout
 * and the caller's AbortSignal (the broker's per-call budget). node-vault's default axios transport
 * drops `signal`, so a timed-out call would otherwise keep a socket busy until axios gave up.
 *
 * Responses come back in the shape node-vault expects (`{statusCode, body, request: {path}}`); it
 * turns non-2xx answers into errors, which the adapter then replaces with body-free ones.
 */

export interface VaultTransportOptions {
  /** Per-request client timeout, in milliseconds. */
  timeoutMs: number;
  fetch?: typeof fetch;
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

/** The object node-vault's `request-promise` option wants: `defaults()` returns the request function. */
export function createVaultTransport(options: VaultTransportOptions): { defaults(): VaultRequestFn } {
  const doFetch = options.fetch ?? fetch;
  const request: VaultRequestFn = async (req) => {
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    let body: string | undefined;
    if (req.json !== undefined && typeof req.json === 'object') {
      body = JSON.stringify(req.json);
      headers['content-type'] ??= 'application/json';
    }
    const response = await doFetch(req.uri, { method: req.method, headers, body, signal, redirect: 'error' });
    // Read the body under the same signal budget; Vault answers are small JSON documents.
    const text = await response.text();
    let parsed: unknown;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined; // A proxy's HTML error page: the status code says enough.
      }
    }
    return { statusCode: response.status, body: parsed, request: { path: new URL(req.uri).pathname } };
  };
  return { defaults: () => request };
}
