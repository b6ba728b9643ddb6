import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createKeepAliveTransport, type KeepAliveTransport } from '../../../src/net/keep-alive-http';

/** The pooled transport under the MCP wrapper's broker calls and the Vault adapter: real HTTP on loopback. */
describe('keep-alive HTTP transport', () => {
  let server: Server;
  let base: URL;
  let connections = 0;
  let handler: (req: IncomingMessage, res: ServerResponse, body: string) => void;
  let transport: KeepAliveTransport;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    connections = 0;
    transport = createKeepAliveTransport({ maxBodyBytes: 1024 });
  });
  afterEach(() => transport.close());

  const signal = () => AbortSignal.timeout(5000);

  it('sends the method, path, query, headers and body, and returns status, headers and text', async () => {
    handler = (req, res, body) => {
      res.setHeader('x-seen', `${req.method} ${req.url} ${req.headers['content-type']} ${req.headers['content-length']}`);
      res.statusCode = 201;
      res.end(`echo:${body}`);
    };
    const answer = await transport.request({ method: 'POST', url: new URL('/v1/x?a=1', base), headers: { 'content-type': 'application/json' }, body: '{"é":1}', signal: signal() });
    expect(answer.status).toBe(201);
    expect(answer.text).toBe('echo:{"é":1}');
    expect(answer.headers['x-seen']).toBe('POST /v1/x?a=1 application/json 8');
  });

  it('reuses one connection for calls in turn (no handshake per tool call)', async () => {
    handler = (_req, res) => res.end('{}');
    for (let i = 0; i < 20; i++) await transport.request({ method: 'GET', url: new URL('/', base), signal: signal() });
    // undici hands a connection back to the pool just after the body ends, so the next call may open a
    // second one; after that they alternate. Without keep-alive this would be 20.
    expect(connections).toBeLessThanOrEqual(2);
  });

  it('refuses an answer larger than maxBodyBytes instead of buffering it', async () => {
    handler = (_req, res) => res.end('x'.repeat(4096));
    await expect(transport.request({ method: 'GET', url: new URL('/', base), signal: signal() })).rejects.toThrow('the answer is too large');
    // An answer within the bound still works afterwards.
    handler = (_req, res) => res.end('ok');
    await expect(transport.request({ method: 'GET', url: new URL('/', base), signal: signal() })).resolves.toMatchObject({ text: 'ok' });
  });

  it("rejects with the signal's own reason when the caller's deadline passes (before or during the body)", async () => {
    handler = () => undefined; // never answers
    const reason = new Error('deadline: broker request');
    const controller = new AbortController();
    const pending = transport.request({ method: 'GET', url: new URL('/', base), signal: controller.signal });
    setTimeout(() => controller.abort(reason), 50);
    await expect(pending).rejects.toBe(reason);

    handler = (_req, res) => res.write('partial'); // headers and part of a body, then silence
    const second = new AbortController();
    const slowBody = transport.request({ method: 'GET', url: new URL('/', base), signal: second.signal });
    setTimeout(() => second.abort(reason), 50);
    await expect(slowBody).rejects.toBe(reason);
  });

  it('rejects when the server drops the connection mid-answer, and recovers on a new connection', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('short');
      res.socket?.destroy();
    };
    await expect(transport.request({ method: 'GET', url: new URL('/', base), signal: signal() })).rejects.toThrow();
    handler = (_req, res) => res.end('back');
    await expect(transport.request({ method: 'GET', url: new URL('/', base), signal: signal() })).resolves.toMatchObject({ status: 200, text: 'back' });
  });

  it('rejects at once when nothing listens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const url = new URL(`http://127.0.0.1:${(closed.address() as AddressInfo).port}/`);
    await new Promise((resolve) => closed.close(resolve));
    await expect(transport.request({ method: 'GET', url, signal: signal() })).rejects.toThrow();
  });
});
