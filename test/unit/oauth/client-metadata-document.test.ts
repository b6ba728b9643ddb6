import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { manualClock } from '../../../src/clock';
import { boundedRequest } from '../../../src/net/bounded-request';
import { isInternalAddress, publicOnlyLookup } from '../../../src/net/public-address';
import { clientIdUrlProblem, ClientMetadataError, createClientMetadataResolver, type ClientMetadataSettings } from '../../../src/oauth/client-metadata-document';

/**
 * Client ID Metadata Documents: the URL is the attacker's choice, so every fetch is bounded in time,
 * size, place and rate, and a document is taken only when it describes exactly itself. Served by a
 * real HTTP server on 127.0.0.1 (allowed here by `allowHttpLoopback`, as in tests and development).
 */

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describe('Client ID Metadata Documents', () => {
  let server: Server;
  let base: string;
  let handler: Handler;
  let fetches = 0;
  const settings: ClientMetadataSettings = { timeoutMs: 300, maxBytes: 2048, fetchesPerMinute: 1000, cacheMs: 60_000, allowHttpLoopback: true };

  beforeAll(async () => {
    server = createServer((req, res) => {
      fetches++;
      handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    fetches = 0;
  });

  const serve = (doc: (url: string) => unknown): Handler => (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(doc(`${base}${req.url}`)));
  };
  const good = (url: string) => ({ client_id: url, client_name: 'Agent', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none' });
  const resolver = (overrides: Partial<ClientMetadataSettings> = {}, clock = manualClock(0)) => createClientMetadataResolver({ settings: () => ({ ...settings, ...overrides }), clock });
  async function failure(promise: Promise<unknown>): Promise<string> {
    try {
      await promise;
    } catch (err) {
      if (err instanceof ClientMetadataError) return err.failure;
      throw err;
    }
    throw new Error('expected a refusal');
  }

  it('accepts a document that names itself and lists redirect URIs', async () => {
    handler = serve(good);
    const client = await resolver().resolve(`${base}/client.json`);
    expect(client).toEqual({ clientId: `${base}/client.json`, redirectUris: ['http://127.0.0.1/callback'], kind: 'metadata_document', name: 'Agent' });
  });

  it('refuses documents that describe another client, carry a secret, or list unusable redirect URIs', async () => {
    const bad: Array<(url: string) => unknown> = [
      (url) => ({ ...good(url), client_id: 'https://other.example/client.json' }),
      (url) => ({ ...good(url), client_id: `${url}/` }),
      (url) => ({ ...good(url), client_secret: 's3cret' }),
      (url) => ({ ...good(url), token_endpoint_auth_method: 'client_secret_basic' }),
      (url) => ({ ...good(url), token_endpoint_auth_method: 'private_key_jwt' }),
      (url) => ({ ...good(url), redirect_uris: [] }),
      (url) => ({ ...good(url), redirect_uris: ['http://evil.example/cb'] }),
      (url) => ({ ...good(url), redirect_uris: ['https://ok.example/cb#frag'] }),
      (url) => ({ ...good(url), redirect_uris: 'http://127.0.0.1/callback' }),
      () => ['not', 'an', 'object'],
    ];
    for (const [i, doc] of bad.entries()) {
      handler = serve(doc);
      expect([i, await failure(resolver().resolve(`${base}/client-${i}.json`))]).toEqual([i, 'invalid_document']);
    }
    handler = (_req, res) => res.end('{"client_id": "a", "client_id": "b"}');
    expect(await failure(resolver().resolve(`${base}/duplicate.json`))).toBe('invalid_document');
  });

  it('bounds each fetch: a slow body, a body over the cap, a redirect and an error status are unavailable', async () => {
    handler = (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.write('{"client_id":');
      // Never finishes: only the whole-request deadline ends this.
    };
    expect(await failure(resolver().resolve(`${base}/slow.json`))).toBe('unavailable');
    handler = (req, res) => res.end(JSON.stringify({ ...good(`${base}${req.url}`), pad: 'x'.repeat(4096) }));
    expect(await failure(resolver().resolve(`${base}/large.json`))).toBe('unavailable');
    handler = (_req, res) => {
      res.writeHead(302, { location: `${base}/client.json` });
      res.end();
    };
    expect(await failure(resolver().resolve(`${base}/moved.json`))).toBe('unavailable');
    handler = (_req, res) => {
      res.writeHead(500);
      res.end();
    };
    expect(await failure(resolver().resolve(`${base}/broken.json`))).toBe('unavailable');
  });

  it('caches documents and failures, shares one fetch between concurrent lookups, and rations cache misses', async () => {
    handler = serve(good);
    const clock = manualClock(0);
    const r = resolver({ fetchesPerMinute: 2 }, clock);
    await Promise.all([r.resolve(`${base}/a.json`), r.resolve(`${base}/a.json`), r.resolve(`${base}/a.json`)]);
    await r.resolve(`${base}/a.json`);
    expect(fetches).toBe(1);
    await r.resolve(`${base}/b.json`);
    // A flood of made-up URLs gets the rest of the minute's fetches, then refusals without any fetch.
    expect(await failure(r.resolve(`${base}/c.json`))).toBe('rate_limited');
    expect(await failure(r.resolve(`${base}/d.json`))).toBe('rate_limited');
    expect(fetches).toBe(2);
    await r.resolve(`${base}/a.json`); // cached documents still work while rationed
    clock.advance(30_000);
    await r.resolve(`${base}/c.json`);
    expect(fetches).toBe(3);

    handler = (_req, res) => {
      res.writeHead(404);
      res.end();
    };
    const fresh = resolver({}, clock);
    expect(await failure(fresh.resolve(`${base}/gone.json`))).toBe('unavailable');
    expect(await failure(fresh.resolve(`${base}/gone.json`))).toBe('unavailable');
    expect(fetches).toBe(4);
  });

  it('takes only https URLs with a path, in normal form, that name no internal address', () => {
    const strict = false;
    expect(clientIdUrlProblem('https://agent.example/client.json', strict)).toBeNull();
    for (const id of [
      'http://agent.example/client.json',
      'https://agent.example/',
      'https://agent.example',
      'https://agent.example/client.json#x',
      'https://user:pw@agent.example/client.json',
      'https://agent.example/a/../client.json',
      'https://agent.example/a/%2e%2e/client.json',
      'https://AGENT.example/client.json',
      'https://127.0.0.1/client.json',
      'https://[::1]/client.json',
      'https://10.1.2.3/client.json',
      'https://169.254.169.254/latest/meta-data',
      'https://192.168.0.1/client.json',
      'https://[fd00::1]/client.json',
      'https://[::ffff:127.0.0.1]/client.json',
      'https://localhost/client.json',
      'http://127.0.0.1:8080/client.json',
    ]) {
      expect([id, clientIdUrlProblem(id, strict)]).toEqual([id, expect.any(String)]);
    }
    expect(clientIdUrlProblem('http://127.0.0.1:8080/client.json', true)).toBeNull();
  });

  it('refuses to connect where a name resolves to an internal address (checked on the address used)', async () => {
    expect(isInternalAddress('127.0.0.1', false)).toBe(true);
    expect(isInternalAddress('127.0.0.1', true)).toBe(false);
    expect(isInternalAddress('100.64.0.1', false)).toBe(true);
    expect(isInternalAddress('93.184.215.14', false)).toBe(false);
    expect(isInternalAddress('2606:2800:21f:cb07:6820:80da:af6b:8b2c', false)).toBe(false);
    handler = serve(good);
    const port = new URL(base).port;
    // "localhost" resolves to loopback: refused by the lookup itself, before any connection.
    await expect(boundedRequest(new URL(`http://localhost:${port}/client.json`), { lookup: publicOnlyLookup(false) }, { timeoutMs: 1000, maxBytes: 2048 })).rejects.toMatchObject({ failure: 'network' });
    expect(fetches).toBe(0);
    const allowed = await boundedRequest(new URL(`http://localhost:${port}/client.json`), { lookup: publicOnlyLookup(true) }, { timeoutMs: 1000, maxBytes: 2048 });
    expect(allowed.status).toBe(200);
  });
});
