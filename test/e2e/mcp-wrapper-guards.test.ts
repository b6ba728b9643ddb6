import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { bulkheadCall, createBulkheadMcp, createSessionRouter, protect, type BulkheadCall, type BulkheadMcp } from '../../src/mcp';
import { startHarness, type Harness } from '../support/broker-harness';
import { connectMcp, denyOf, textOf, type McpConnection } from '../support/mcp-client';

/**
 * What the wrapper promises a tool author, tested with deliberately careless handlers against a real
 * broker: the credential does not reach the client even when a handler echoes it or throws it, the
 * client's token does not reach the handler, the credential is gone once the call ends, and a server
 * is never served with unguarded tools.
 */

describe('bulkhead/mcp guards around careless tool handlers', () => {
  let h: Harness;
  let bulkhead: BulkheadMcp;
  let http: Server;
  let url: string;
  const connections: McpConnection[] = [];
  const seen: Array<{ token: string; authorization: unknown; call: BulkheadCall }> = [];

  beforeAll(async () => {
    h = await startHarness();
    const app = express();
    http = createServer(app);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
    const quiet = { info: () => undefined, warn: () => undefined };
    bulkhead = createBulkheadMcp({ brokerUrl: h.url, serverId: 'crm-mcp', serverKey: h.serverKeys['crm-mcp']!, resourceUrl: url, logger: quiet, approval: { waitMs: 0 }, jwksCooldownMs: 0 });
    app.use(
      bulkhead.router({
        info: { name: 'careless', version: '0.0.1' },
        setup(server) {
          server.registerTool('query_crm', { inputSchema: { path: z.string(), region: z.string().optional() } }, async ({ path }, extra) => {
            const call = bulkheadCall(extra);
            seen.push({ token: extra.authInfo?.token ?? '', authorization: extra.requestInfo?.headers.authorization, call });
            const secret = call.credential.value;
            if (path.endsWith('/throw')) throw new Error(`upstream login failed for ${secret}`);
            return { content: [{ type: 'text', text: `connected with ${secret}` }], structuredContent: { [secret]: { nested: [secret] } } };
          });
        },
      }),
    );
  });

  afterAll(async () => {
    await Promise.all(connections.map((c) => c.close()));
    await bulkhead?.close();
    await new Promise<void>((resolve) => {
      http?.close(() => resolve());
      http?.closeAllConnections();
    });
    await h?.close();
  });

  async function connect(principal: string): Promise<McpConnection> {
    const c = await connectMcp(url, await h.token(principal, 'crm-mcp'));
    connections.push(c);
    return c;
  }

  it('redacts the credential from a result that echoes it (text, structured content, keys)', async () => {
    const acme = await connect('acme-agent');
    const result = await acme.call('query_crm', { path: 'acme/echo' });
    const text = JSON.stringify(result);
    expect(text).not.toContain(h.upstream.acme);
    expect(textOf(result)).toBe('connected with [redacted by bulkhead]');
    // The handler did get the right tenant's credential: only the client copy was cleaned.
    expect(seen.at(-1)!.call.tenant).toBe('acme');
  });

  it('redacts the credential from the error of a handler that throws it', async () => {
    const acme = await connect('acme-agent');
    const result = await acme.call('query_crm', { path: 'acme/throw' });
    expect(result.isError).toBe(true);
    expect(JSON.stringify(result)).not.toContain(h.upstream.acme);
    expect(textOf(result)).toContain('[redacted by bulkhead]');
  });

  it("never shows the handler the client's bearer token, in authInfo or in the raw headers", async () => {
    const acme = await connect('acme-agent');
    await acme.call('query_crm', { path: 'acme/echo' });
    const last = seen.at(-1)!;
    expect(last.token).toBe('');
    expect(last.authorization).toBeUndefined();
    expect(JSON.stringify(last.call)).not.toContain(acme.token);
    // Serialising the grant (a careless log line) shows neither the credential nor the token.
    expect(JSON.stringify(last.call)).not.toContain(h.upstream.acme);
  });

  it('releases the credential when the call ends: a handler that kept the grant cannot read it later', async () => {
    const acme = await connect('acme-agent');
    await acme.call('query_crm', { path: 'acme/echo' });
    const kept = seen.at(-1)!.call;
    expect(() => kept.credential).toThrow(/released when the call ended/);
    expect(kept.arguments).toEqual({ path: 'acme/echo', region: 'eu-west-1' });
  });

  it('answers approval_required at once, with the approval id, when the server does not wait', async () => {
    const acme = await connect('acme-agent');
    const denied = await acme.call('send_email', { to: 'a@acme.example' });
    expect(denyOf(denied)).toMatchObject({ reason: 'approval_required', approval_id: expect.any(String) });
    expect(textOf(denied)).toContain(`approval_id=${denyOf(denied)!.approval_id}`);
  });

  it("keeps accepting the broker's tokens across signing-key rotations (JWKS refetched on an unknown kid)", async () => {
    for (let i = 0; i < 3; i++) expect((await h.post('/v1/keys/rotate', {}, h.operatorToken)).status).toBe(200);
    const acme = await connect('acme-agent');
    expect((await acme.call('query_crm', { path: 'acme/echo' })).isError).toBeFalsy();
  });

  it('refuses to protect a server after a tool was registered (it could not guard that tool)', () => {
    const server = new McpServer({ name: 'late', version: '0.0.1' });
    server.registerTool('query_crm', {}, async () => ({ content: [] }));
    expect(() => protect(server, bulkhead.guard)).toThrow(/before any tool is registered/);
  });

  it("caps one tenant's open sessions without taking sessions away from another tenant", async () => {
    const capped = createBulkheadMcp({ brokerUrl: h.url, serverId: 'crm-mcp', serverKey: h.serverKeys['crm-mcp']!, resourceUrl: url, logger: { info: () => undefined, warn: () => undefined } });
    const server = createServer(express().use(capped.router({ info: { name: 'capped', version: '0.0.1' }, maxSessionsPerTenant: 2, setup: (s) => void s.registerTool('query_crm', {}, async () => ({ content: [] })) })));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const cappedUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
    const mine: McpConnection[] = [];
    try {
      for (let i = 0; i < 2; i++) mine.push(await connectMcp(cappedUrl, await h.token('acme-agent', 'crm-mcp')));
      await expect(connectMcp(cappedUrl, await h.token('acme-reader', 'crm-mcp'))).rejects.toThrow(/503|Too many open sessions/);
      mine.push(await connectMcp(cappedUrl, await h.token('globex-agent', 'crm-mcp')));
      expect(await mine[2]!.toolNames()).toEqual(['query_crm']);
    } finally {
      await Promise.all(mine.map((c) => c.close()));
      await capped.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('never serves a session whose server was not protected', async () => {
    const unguarded = createBulkheadMcp({ brokerUrl: h.url, serverId: 'crm-mcp', serverKey: h.serverKeys['crm-mcp']!, resourceUrl: url, logger: { info: () => undefined, warn: () => undefined } });
    const sessions = createSessionRouter({ verifier: unguarded.verifier, createServer: () => new McpServer({ name: 'raw', version: '0.0.1' }) });
    const app = express().use(sessions.router);
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    try {
      const rawUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
      await expect(connectMcp(rawUrl, await h.token('acme-agent', 'crm-mcp'))).rejects.toThrow();
      expect(sessions.size()).toBe(0);
    } finally {
      await sessions.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
