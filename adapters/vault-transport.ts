import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

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
  const agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };

  const request: VaultRequestFn = (req) => {
    const url = new URL(req.uri);
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    let body: string | undefined;
    if (req.json !== undefined && typeof req.json === 'object') {
      body = JSON.stringify(req.json);
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const https = url.protocol === 'https:';
    const send = https ? httpsRequest : httpRequest;
    return new Promise<NodeVaultResponse>((resolve, reject) => {
      const outgoing = send(url, { method: req.method, headers, signal, agent: https ? agents.https : agents.http }, (response: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) response.destroy(new Error('Vault answer is too large'));
          else chunks.push(chunk);
        });
        response.on('error', (err) => reject(signal.aborted ? signal.reason : err));
        response.on('end', () => {
          let parsed: unknown;
          const text = Buffer.concat(chunks).toString('utf8');
          if (text.length > 0) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = undefined; // A proxy's HTML error page: the status code says enough.
            }
          }
          resolve({ statusCode: response.statusCode ?? 0, body: parsed, request: { path: url.pathname } });
        });
      });
      // An abort surfaces as the signal's own reason (TimeoutError or the caller's), as fetch does.
      outgoing.on('error', (err) => reject(signal.aborted ? signal.reason : err));
      outgoing.end(body);
    });
  };

  return {
    defaults: () => request,
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
