import { Agent as HttpAgent, type AgentOptions } from 'node:http';
import { createConnection } from 'node:net';
import { isAbsolute } from 'node:path';

/**
 * Where a client reaches the broker: a TCP URL (`http://127.0.0.1:8700`, `https://bulkhead.internal`)
 * or a unix socket, for a broker running as a sidecar next to the MCP server (`bulkhead serve --listen
 * unix:/run/bulkhead/broker.sock`). Two spellings name a socket:
 *
 *   unix:/run/bulkhead/broker.sock
 *   http+unix://%2Frun%2Fbulkhead%2Fbroker.sock      (the socket path percent-encoded as the host)
 *
 * Requests to a socket are plain HTTP with `localhost` as the Host; request paths are built against
 * `base` as for TCP. The socket path must be absolute: a relative one would depend on the caller's
 * working directory.
 */
export interface BrokerAddress {
  /** What request URLs are built against (`http://localhost/` for a socket). */
  base: URL;
  /** The unix socket to connect to, or undefined for TCP. */
  socketPath?: string;
}

export function brokerAddress(url: string | URL): BrokerAddress {
  const text = String(url);
  const parsed = new URL(text);
  if (parsed.protocol === 'unix:') return socket(decodeURIComponent(parsed.pathname), text);
  if (parsed.protocol === 'http+unix:') return socket(decodeURIComponent(parsed.hostname), text);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError(`broker URL ${text}: expected http:, https:, unix: or http+unix:`);
  return { base: parsed };
}

function socket(path: string, text: string): BrokerAddress {
  if (!isAbsolute(path)) throw new TypeError(`broker URL ${text}: the socket path must be absolute`);
  return { base: new URL('http://localhost/'), socketPath: path };
}

/**
 * An http.Agent whose every connection goes to one unix socket, whatever host the URL names: for
 * clients (jose's remote JWKS) that take an agent but not a socket path.
 */
export function unixSocketAgent(socketPath: string, options: AgentOptions = {}): HttpAgent {
  const agent = new HttpAgent(options);
  // Node's Agent uses the socket createConnection returns; `path` makes net connect to the unix socket.
  agent.createConnection = () => createConnection({ path: socketPath });
  return agent;
}
