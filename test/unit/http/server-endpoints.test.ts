import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { startHarness, type Harness } from '../../support/broker-harness';
import { expectCleanJson, raw } from './raw-http';

/**
 * The endpoints an MCP server calls on every tool call are served on node:http directly
 * (src/http/server-endpoints.ts), next to express on the same port. What a client sees must not tell the
 * two stacks apart: the same checks in the same order, the same answers, the same log line, and nothing
 * the express path would have refused gets through because it took the other road.
 */
let h: Harness;
let token = '';

beforeAll(async () => {
  h = await startHarness();
  token = await h.token('acme-agent', 'crm-mcp');
});

afterAll(async () => {
  await h?.close();
});

const serverKey = () => h.serverKeys['crm-mcp']!;
const allowBody = (callId: string) => ({ token, tool: 'query_crm', arguments: { path: 'acme/accounts/1' }, call_id: callId });

/** Sends exact bytes over a socket and returns the raw answer (status line, headers, body). */
function rawSocket(bytes: string | Buffer, { endAfterWrite = true } = {}): Promise<string> {
  const { port, hostname } = new URL(h.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(bytes);
      if (endAfterWrite) socket.end();
    });
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('utf8')));
    socket.on('end', () => resolve(text));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('the node:http endpoints', () => {
  it('allow, then complete, with a request id, no-store and JSON headers', async () => {
    const allowed = await raw(h.url, 'POST', '/v1/authorize', { bearer: serverKey(), body: allowBody('se-allow-1') });
    expect(allowed.status).toBe(200);
    expect(allowed.json).toMatchObject({ decision: 'allow', call_id: 'se-allow-1', tenant: 'acme' });
    expect(allowed.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(allowed.headers.get('cache-control')).toBe('no-store');
    expect(allowed.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const completed = await raw(h.url, 'POST', '/v1/complete', { bearer: serverKey(), body: { call_id: 'se-allow-1', status: 'success' } });
    expect(completed.status).toBe(200);
    expect(completed.json).toMatchObject({ call_id: 'se-allow-1', completed: true });
    expect(completed.headers.get('cache-control')).toBeNull();
  });

  it('answers the same endpoint for the spellings express routes to it (case, trailing slash, a query)', async () => {
    for (const [i, path] of ['/V1/Authorize', '/v1/authorize/', '/v1/authorize?x=1'].entries()) {
      const answer = await raw(h.url, 'POST', path, { bearer: serverKey(), body: allowBody(`se-path-${i}`) });
      expect({ path, status: answer.status, decision: answer.json?.decision }).toEqual({ path, status: 200, decision: 'allow' });
      await raw(h.url, 'POST', '/v1/complete', { bearer: serverKey(), body: { call_id: `se-path-${i}`, status: 'success' } });
    }
  });

  it('refuses a compressed body with 415, and never inflates it', async () => {
    const answer = await raw(h.url, 'POST', '/v1/authorize', { bearer: serverKey(), headers: { 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify(allowBody('se-gzip'))) as unknown as string, contentType: 'application/json' });
    expect(answer.status).toBe(415);
    expect(answer.json).toMatchObject({ decision: 'deny', reason: 'bad_request', message: expect.stringMatching(/compressed/) });
    expectCleanJson(answer, h.secrets());
  });

  it('checks the body before the server key, as express did: a bad body from an unknown caller is a 400', async () => {
    const answer = await raw(h.url, 'POST', '/v1/authorize', { bearer: 'not-a-key', body: '{"token":"a","token":"b"}' });
    expect(answer.status).toBe(400);
    expect(answer.json.message).toMatch(/duplicate key/);
  });

  it('echoes the call_id in a 401 deny before the route ran', async () => {
    const answer = await raw(h.url, 'POST', '/v1/authorize', { bearer: 'not-a-key', body: { ...allowBody('se-echo-1') } });
    expect(answer.status).toBe(401);
    expect(answer.json).toMatchObject({ decision: 'deny', reason: 'server_unauthenticated', call_id: 'se-echo-1' });
    const manifest = await raw(h.url, 'POST', '/v1/manifest', { bearer: 'not-a-key', body: { token } });
    expect(manifest.json).toMatchObject({ decision: 'deny', reason: 'server_unauthenticated', call_id: null });
    const complete = await raw(h.url, 'POST', '/v1/complete', { bearer: 'not-a-key', body: { call_id: 'x', status: 'success' } });
    expect(complete.status).toBe(401);
    expect(complete.json).toMatchObject({ error: 'server_unauthenticated' });
  });

  it('refuses a chunked body past the limit with 413', async () => {
    const limit = 64 * 1024;
    const head = `POST /v1/authorize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${serverKey()}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
    const chunk = 'a'.repeat(limit + 10);
    const answer = await rawSocket(`${head}${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toMatch(/larger than the 65536 byte limit/);
  });

  it('refuses a declared Content-Length past the limit with 413 before the body arrives', async () => {
    const head = `POST /v1/complete HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${serverKey()}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n`;
    const answer = await rawSocket(head, { endAfterWrite: false });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
  });

  it('survives a client that goes away mid-body, and keeps serving', async () => {
    const head = `POST /v1/authorize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${serverKey()}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"token":`;
    await rawSocket(head);
    const answer = await raw(h.url, 'POST', '/v1/authorize', { bearer: serverKey(), body: allowBody('se-after-abort') });
    expect(answer.status).toBe(200);
    await raw(h.url, 'POST', '/v1/complete', { bearer: serverKey(), body: { call_id: 'se-after-abort', status: 'success' } });
  });

  it('leaves other methods on these paths to express (authenticated first, then a JSON 405 naming POST)', async () => {
    expect((await raw(h.url, 'GET', '/v1/authorize')).status).toBe(401);
    const answer = await raw(h.url, 'GET', '/v1/authorize', { bearer: serverKey() });
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe('POST');
    expect(answer.json).toMatchObject({ error: 'method_not_allowed' });
  });

  it('logs one allow-listed line per request, with its request id, and never the body', async () => {
    const answer = await raw(h.url, 'POST', '/v1/authorize', { bearer: serverKey(), body: allowBody('se-log-1') });
    await raw(h.url, 'POST', '/v1/complete', { bearer: serverKey(), body: { call_id: 'se-log-1', status: 'success' } });
    await h.flushLogs();
    const lines = (await readFile(h.logFile, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const line = lines.find((l) => l.requestId === answer.headers.get('x-request-id'));
    expect(line).toMatchObject({ msg: 'request', method: 'POST', path: '/v1/authorize', status: 200, server: 'crm-mcp' });
    expect(Object.keys(line!).sort()).toEqual(['level', 'method', 'ms', 'msg', 'path', 'requestId', 'server', 'service', 'status', 'time'].sort());
    const text = await readFile(h.logFile, 'utf8');
    expect(text).not.toContain(token);
  });
});
