import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBrokerClient } from '../../../src/mcp/broker-client';

/**
 * The wrapper's broker client fails closed: whatever keeps a contract answer from arriving — nobody
 * listening, a broker that never answers, a proxy's HTML error page — is a deny with
 * `broker_unavailable`, and no deny quotes the server key or the token. Real HTTP on loopback.
 */

const SERVER_KEY = 'server-key-that-must-never-be-quoted';
const TOKEN = 'token-that-must-never-be-quoted';

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function stop(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function expectNoSecrets(value: unknown): void {
  const text = JSON.stringify(value);
  expect(text).not.toContain(SERVER_KEY);
  expect(text).not.toContain(TOKEN);
}

describe('broker client (the MCP server side of /v1/authorize, /v1/complete, /v1/manifest)', () => {
  it('denies broker_unavailable when nothing listens at the broker URL', async () => {
    const { url, server } = await serve(() => undefined);
    await stop(server); // the port is now closed
    const broker = createBrokerClient({ brokerUrl: url, serverKey: SERVER_KEY });
    const denied = await broker.authorize({ token: TOKEN, tool: 'query_crm', arguments: {} });
    expect(denied).toMatchObject({ decision: 'deny', reason: 'broker_unavailable' });
    expectNoSecrets(denied);
    expect(await broker.manifest(TOKEN)).toMatchObject({ decision: 'deny', reason: 'broker_unavailable' });
    expect(await broker.complete({ call_id: 'c1', status: 'success' })).toMatchObject({ decision: 'deny', reason: 'broker_unavailable' });
  });

  it('denies broker_unavailable when the broker accepts the request but never answers (timeout)', async () => {
    const { url, server } = await serve(() => undefined); // holds every request open
    try {
      const broker = createBrokerClient({ brokerUrl: url, serverKey: SERVER_KEY, timeoutMs: 100 });
      const denied = await broker.authorize({ token: TOKEN, tool: 'query_crm', arguments: {} });
      expect(denied).toMatchObject({ decision: 'deny', reason: 'broker_unavailable' });
      expectNoSecrets(denied);
    } finally {
      await stop(server);
    }
  });

  it('denies broker_unavailable for an answer that is not the contract (a proxy error page, an allow without a credential)', async () => {
    let answer: { status: number; type: string; body: string } = { status: 502, type: 'text/html', body: '<html>bad gateway</html>' };
    const { url, server } = await serve((_req, res) => res.writeHead(answer.status, { 'content-type': answer.type }).end(answer.body));
    try {
      const broker = createBrokerClient({ brokerUrl: url, serverKey: SERVER_KEY });
      expect(await broker.authorize({ token: TOKEN, tool: 'query_crm', arguments: {} })).toMatchObject({ reason: 'broker_unavailable' });
      answer = { status: 200, type: 'application/json', body: JSON.stringify({ decision: 'allow', call_id: 'c', arguments: {} }) };
      expect(await broker.authorize({ token: TOKEN, tool: 'query_crm', arguments: {} })).toMatchObject({ reason: 'broker_unavailable' });
    } finally {
      await stop(server);
    }
  });

  it("passes the broker's deny through: reason, message, approval id and Retry-After", async () => {
    const { url, server } = await serve((req, res) => {
      expect(req.headers.authorization).toBe(`Bearer ${SERVER_KEY}`);
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' }).end(JSON.stringify({ decision: 'deny', reason: 'quota_exceeded', message: 'used up', call_id: null }));
    });
    try {
      const broker = createBrokerClient({ brokerUrl: url, serverKey: SERVER_KEY });
      expect(await broker.authorize({ token: TOKEN, tool: 'query_crm', arguments: {} })).toEqual({ decision: 'deny', reason: 'quota_exceeded', message: 'used up', retry_after: 7 });
    } finally {
      await stop(server);
    }
  });
});
