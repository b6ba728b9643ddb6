import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBrokerClient } from '../../src/mcp/broker-client';
import { createBulkheadTokenVerifier } from '../../src/mcp/token-verifier';
import { startHarness, TENANTS, type Harness } from '../support/broker-harness';
import { connectMcp, textOf } from '../support/mcp-client';
import { connectMcpV2 } from '../support/mcp-client-v2';
import { createMemoryCrmStore, demoDataset } from '../../examples/crm-mcp/crm-store';
import { startCrmServer, type CrmServer } from '../../examples/crm-mcp/server';

/**
 * The sidecar case: the broker also listens on a unix socket, and the MCP wrapper (both entries)
 * reaches it there. The socket is a transport, never a credential: every route answers over it exactly
 * as over TCP, operator routes included, and the socket file is created 0600.
 */

type Answer = { status: number; body: any };

/** One HTTP request over the unix socket (node:http with socketPath). */
function overSocket(socketPath: string, method: string, path: string, options: { bearer?: string; body?: unknown } = {}): Promise<Answer> {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = {};
  if (options.bearer) headers.authorization = `Bearer ${options.bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const outgoing = request({ socketPath, method, path, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON (metrics, the console page): compared as text
        }
        resolve({ status: response.statusCode ?? 0, body: parsed });
      });
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

async function overTcp(base: string, method: string, path: string, options: { bearer?: string; body?: unknown } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.bearer) headers.authorization = `Bearer ${options.bearer}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(new URL(path, base), { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // as above
  }
  return { status: response.status, body: parsed };
}

/** Every route the broker's HTTP API declares (express routers under src/http, and the server endpoints on node:http), with `:params` filled in. */
function declaredRoutes(): Array<{ method: string; path: string }> {
  const routes: Array<{ method: string; path: string }> = [];
  const visit = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (entry.name.endsWith('.ts')) {
        const source = readFileSync(path, 'utf8');
        for (const match of source.matchAll(/router\.(get|post|delete|put)\(\s*'([^']+)'/g)) routes.push({ method: match[1]!.toUpperCase(), path: match[2]! });
        // The MCP server endpoints (POST, outside express): `const ENDPOINTS = { authorize: '/v1/authorize', ... }`.
        for (const block of source.matchAll(/const ENDPOINTS[^{]*\{([^}]*)\}/g)) for (const match of block[1]!.matchAll(/'(\/v1\/[a-z]+)'/g)) routes.push({ method: 'POST', path: match[1]! });
      }
    }
  };
  visit(join(__dirname, '../../src/http'));
  return routes.map((r) => ({ method: r.method, path: r.path.replace(/:id/g, 'acme').replace(/:[a-z]+/g, 'x') }));
}

/** What must be the same over both transports: the status and the reason (bodies carry ids and times). */
const shape = (a: Answer) => ({ status: a.status, reason: typeof a.body === 'object' && a.body ? (a.body.reason ?? a.body.error ?? null) : null });

describe('the broker on a unix socket (sidecar)', () => {
  let h: Harness;
  let dir: string;
  let socketPath: string;

  beforeAll(async () => {
    h = await startHarness({ overrides: (p) => (p.tenants.globex.principals['globex-agent'].tools = ['query_crm']) });
    dir = await mkdtemp(join(tmpdir(), 'bh-sock-'));
    socketPath = join(dir, 'broker.sock');
    const { url } = await h.broker.listenSocket(socketPath);
    expect(url).toBe(`unix:${socketPath}`);
  });

  afterAll(async () => {
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the socket 0600 by default', () => {
    const stat = lstatSync(socketPath);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);
  });

  it('answers every declared route over the socket as over TCP, unauthenticated and with a server key', async () => {
    const routes = declaredRoutes();
    // The routes this suite knows the broker has: a regex that stopped matching would test nothing.
    expect(routes.length).toBeGreaterThan(20);
    expect(routes).toEqual(expect.arrayContaining([{ method: 'POST', path: '/v1/revoke' }, { method: 'GET', path: '/v1/approvals' }, { method: 'POST', path: '/v1/authorize' }]));
    for (const bearer of [undefined, h.serverKeys['crm-mcp']]) {
      for (const route of routes) {
        if (route.path === '/metrics') continue; // its counters move with the requests themselves
        const body = route.method === 'POST' ? {} : undefined;
        const tcp = await overTcp(h.url, route.method, route.path, { bearer, body });
        const unix = await overSocket(socketPath, route.method, route.path, { bearer, body });
        expect({ route, ...shape(unix) }).toEqual({ route, ...shape(tcp) });
      }
    }
  });

  it('never trusts the socket for operator routes: no token, a server key or a wrong token is 401', async () => {
    const operatorRoutes = [
      { method: 'GET', path: '/v1/tenants/acme' },
      { method: 'GET', path: '/v1/approvals' },
      { method: 'GET', path: '/v1/audit?tenant=acme' },
      { method: 'POST', path: '/v1/revoke', body: { tenant: 'acme', principal: 'acme-agent' } },
      { method: 'POST', path: '/v1/keys/rotate', body: {} },
      { method: 'POST', path: '/v1/policy/reload', body: {} },
    ];
    for (const route of operatorRoutes) {
      for (const bearer of [undefined, h.serverKeys['crm-mcp'], h.clientSecrets['acme-agent'], `${h.operatorToken}x`]) {
        const answer = await overSocket(socketPath, route.method, route.path, { bearer, body: route.body });
        expect({ route: route.path, status: answer.status, reason: answer.body.reason ?? answer.body.error }).toEqual({ route: route.path, status: 401, reason: 'operator_unauthenticated' });
      }
    }
    // With the operator's token the same route works over the socket.
    const tenant = await overSocket(socketPath, 'GET', '/v1/tenants/acme', { bearer: h.operatorToken });
    expect(tenant.status).toBe(200);
    expect(tenant.body.tenant ?? tenant.body.id).toBe('acme');
  });

  it('serves the MCP wrapper, both entries, with the broker URL given as unix:/path or http+unix://', async () => {
    const store = createMemoryCrmStore(TENANTS.map((t) => demoDataset(t, [h.upstream[t]!])));
    const logger = { info: () => undefined, warn: () => undefined };
    const urls = [`unix:${socketPath}`, `http+unix://${encodeURIComponent(socketPath)}`];
    for (const entry of ['v1', 'v2'] as const) {
      for (const brokerUrl of urls) {
        const crm: CrmServer = await startCrmServer({ entry, brokerUrl, serverId: 'crm-mcp', serverKey: h.serverKeys['crm-mcp']!, store, port: 0, logger });
        try {
          const token = await h.token('acme-agent', 'crm-mcp');
          if (entry === 'v1') {
            const c = await connectMcp(crm.url, token);
            expect(await c.toolNames()).toEqual(['export_report', 'query_crm', 'send_email']);
            const own = await c.call('query_crm', { path: 'acme/contacts' });
            expect(own.isError).toBeFalsy();
            expect(JSON.parse(textOf(own)).region).toBe('eu-west-1');
            const foreign = await c.call('query_crm', { path: 'globex/contacts' });
            expect(foreign.isError).toBe(true);
            await c.close();
          } else {
            const c = await connectMcpV2(crm.url, token);
            expect((await c.client.listTools()).tools.map((t) => t.name)).toEqual(['export_report', 'query_crm', 'send_email']);
            const own = (await c.client.callTool({ name: 'query_crm', arguments: { path: 'acme/contacts' } })) as { isError?: boolean };
            expect(own.isError).toBeFalsy();
            await c.close();
          }
        } finally {
          await crm.close();
        }
      }
    }
    expect(store.opened('acme')).toBeGreaterThan(0);
  });

  it('verifies tokens with keys and issuer fetched over the socket', async () => {
    const verifier = createBulkheadTokenVerifier({ brokerUrl: `unix:${socketPath}`, serverId: 'crm-mcp' });
    expect(await verifier.issuer()).toBe('http://bulkhead.test');
    const auth = await verifier.verifyAccessToken(await h.token('globex-agent', 'crm-mcp'));
    expect(auth.extra?.bulkhead).toMatchObject({ tenant: 'globex', principal: 'globex-agent' });
  });

  it('fails closed when nothing listens on the socket', async () => {
    const client = createBrokerClient({ brokerUrl: `unix:${join(dir, 'nobody.sock')}`, serverKey: h.serverKeys['crm-mcp']!, timeoutMs: 1000 });
    const answer = await client.authorize({ token: await h.token('acme-agent', 'crm-mcp'), tool: 'query_crm', arguments: { path: 'acme/x' } });
    expect(answer).toMatchObject({ decision: 'deny', reason: 'broker_unavailable' });
    client.close();
  });

  it('refuses a relative socket path in a broker URL', () => {
    expect(() => createBrokerClient({ brokerUrl: 'unix:broker.sock', serverKey: 'k' })).toThrow(/absolute/);
    expect(() => createBrokerClient({ brokerUrl: 'ftp://broker', serverKey: 'k' })).toThrow(/expected http/);
  });
});

describe('the socket file', () => {
  let h: Harness;
  let dir: string;

  beforeAll(async () => {
    h = await startHarness();
    dir = await mkdtemp(join(tmpdir(), 'bh-sockfile-'));
  });

  afterAll(async () => {
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('takes a wider mode only when asked (0660 for a shared group)', async () => {
    const path = join(dir, 'group.sock');
    const { server } = await h.broker.listenSocket(path, 0o660);
    expect(lstatSync(path).mode & 0o777).toBe(0o660);
    await new Promise((resolve) => server.close(resolve));
  });

  it('refuses a path that is a regular file, a directory, a symlink or a live socket, and leaves it as it was', async () => {
    const file = join(dir, 'file.sock');
    writeFileSync(file, 'not a socket');
    const directory = join(dir, 'dir.sock');
    mkdirSync(directory);
    const link = join(dir, 'link.sock');
    symlinkSync(file, link);
    const live = join(dir, 'live.sock');
    const other = createServer(() => undefined);
    await new Promise<void>((resolve) => other.listen(live, resolve));
    try {
      await expect(h.broker.listenSocket(file)).rejects.toThrow(/exists and is not a socket/);
      await expect(h.broker.listenSocket(directory)).rejects.toThrow(/exists and is not a socket/);
      await expect(h.broker.listenSocket(link)).rejects.toThrow(/exists and is not a socket/);
      await expect(h.broker.listenSocket(live)).rejects.toThrow(/another process is listening/);
      expect(readFileSync(file, 'utf8')).toBe('not a socket');
      expect(lstatSync(directory).isDirectory()).toBe(true);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(lstatSync(live).isSocket()).toBe(true);
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it('replaces a stale socket (nobody listening) and serves on it', async () => {
    const path = join(dir, 'stale.sock');
    // A socket file whose server is gone without unlinking it, as after a crash: a child that listens, then SIGKILL.
    const child = spawn(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => console.log('up'))", path], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(child.stdout!, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect(lstatSync(path).isSocket()).toBe(true);
    await h.broker.listenSocket(path);
    expect((await overSocket(path, 'GET', '/healthz')).status).toBe(200);
  });

  it('refuses a relative path', async () => {
    await expect(h.broker.listenSocket('relative.sock')).rejects.toThrow(/must be absolute/);
  });

  it('removes the socket files at close', async () => {
    const path = join(dir, 'closing.sock');
    await h.broker.listenSocket(path);
    expect(lstatSync(path).isSocket()).toBe(true);
    await h.close();
    h = undefined as unknown as Harness;
    expect(() => lstatSync(path)).toThrow(/ENOENT/);
    expect(() => lstatSync(join(dir, 'stale.sock'))).toThrow(/ENOENT/);
  });
});
