import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a real upstream (OpenBao) that can hold requests: the shape of an upstream
 * that is slow for as long as a test needs, without a timer. While a pattern is held, a request whose
 * request line matches it is kept (with everything after it on that connection) until `release()`;
 * other requests pass. `held()` resolves once such a request has arrived, so a test knows the broker is
 * waiting on the upstream. Everything the upstream answered is kept in `responses()` (to find a lease id
 * the broker never showed anyone). Registers its own beforeAll/afterAll; `url` is valid inside tests.
 */
export interface GatedProxy {
  readonly url: string;
  /** Holds requests whose first line (e.g. `GET /v1/secret/data/…`) matches, from now until release. */
  hold(requestLine: RegExp): void;
  /** Resolves once a held request has arrived (at once if one already has). */
  held(): Promise<void>;
  /** Lets every held request through and stops holding. */
  release(): void;
  /** The upstream's answers so far, as text. */
  responses(): string;
}

interface Link {
  client: Socket;
  upstream: Socket;
  /** Bytes kept while this connection is held. */
  kept: Buffer[] | null;
}

export function gatedProxy(target: () => string): GatedProxy {
  let server: Server;
  const links = new Set<Link>();
  let pattern: RegExp | null = null;
  let arrived = false;
  let waiters: Array<() => void> = [];
  let answered = '';
  const proxy = { url: '' };

  function onClientData(link: Link, chunk: Buffer): void {
    if (!link.kept && pattern && pattern.test(chunk.toString('latin1').split('\r\n', 1)[0]!)) {
      link.kept = [];
      arrived = true;
      waiters.forEach((w) => w());
      waiters = [];
    }
    if (link.kept) link.kept.push(chunk);
    else link.upstream.write(chunk);
  }

  beforeAll(async () => {
    server = createServer((client) => {
      const { hostname, port } = new URL(target());
      const upstream = connect({ host: hostname, port: Number(port) });
      const link: Link = { client, upstream, kept: null };
      links.add(link);
      client.on('data', (chunk: Buffer) => onClientData(link, chunk));
      upstream.on('data', (chunk: Buffer) => {
        answered += chunk.toString('utf8');
        client.write(chunk);
      });
      const end = () => {
        links.delete(link);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    proxy.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    for (const link of links) {
      link.client.destroy();
      link.upstream.destroy();
    }
    await new Promise((resolve) => server.close(resolve));
  });

  return {
    get url() {
      return proxy.url;
    },
    hold(requestLine) {
      pattern = requestLine;
      arrived = false;
    },
    held: () => (arrived ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
    release() {
      pattern = null;
      for (const link of links) {
        const kept = link.kept;
        link.kept = null;
        for (const chunk of kept ?? []) link.upstream.write(chunk);
      }
    },
    responses: () => answered,
  };
}
