import { z } from 'zod';
import { bulkheadCall } from '../../src/mcp';
import { startHarness, type Harness } from '../support/broker-harness';
import { gatedProxy } from '../support/gated-proxy';
import { auditEvents } from '../support/isolation-assertions';
import { connectCaller, type McpCaller } from '../support/mcp-caller';
import { startToolServer, type ToolServer } from '../support/tool-server';
import { until } from '../support/until';

/**
 * A tool call that reports no record count gets its result before /v1/complete is answered (one broker
 * round trip less); nothing of what the broker enforces moves with it. Each entry's real SDK client, a
 * real broker, and a TCP proxy between the wrapper and the broker that can hold /v1/complete: held, the
 * result still arrives and the complete record follows once it is let through; a call that reports
 * records still waits (max_records decides its result); closing the wrapper drains what is on its way;
 * and with a concurrency of 1 the next call is not refused for a slot our own completion still holds.
 */


let h: Harness;
const broker = gatedProxy(() => h.url);

beforeAll(async () => {
  h = await startHarness({ overrides: (p) => (p.tenants.acme.quotas.concurrency = 1) });
});
afterAll(async () => h?.close());

const completes = async () => (await auditEvents(h, 'acme')).filter((e) => e.type === 'complete').length;

describe.each(['v2', 'v1'] as const)('completions on the %s entry', (entry) => {
  let server: ToolServer;
  const callers: McpCaller[] = [];

  const start = () =>
    startToolServer({
      entry,
      brokerUrl: broker.url,
      serverKey: h.serverKeys['crm-mcp']!,
      register(mcp) {
        mcp.registerTool('query_crm', { inputSchema: { path: z.string(), region: z.string().optional() } }, async ({ path }: { path: string }) => ({ content: [{ type: 'text', text: `rows of ${path}` }] }));
        mcp.registerTool('export_report', { inputSchema: { table: z.string() } }, async (_args: object, extra: object) => {
          bulkheadCall(extra).reportRecords(3);
          return { content: [{ type: 'text', text: 'three records' }] };
        });
      },
    });

  beforeEach(async () => {
    server = await start();
  });
  afterEach(async () => {
    broker.release();
    await Promise.all(callers.splice(0).map((c) => c.close()));
    await server.close();
  });

  async function caller(): Promise<McpCaller> {
    const bearer = await h.token('acme-agent', 'crm-mcp');
    const c = await connectCaller(entry, server.url, bearer);
    callers.push(c);
    return c;
  }

  it('hands the result over while /v1/complete is held, records the completion once it passes, and keeps a call that reports records waiting', async () => {
    const acme = await caller();
    const before = await completes();
    broker.hold(/^POST \/v1\/complete /);
    const result = await acme.call('query_crm', { path: 'acme/contacts' });
    expect(result.isError).toBeFalsy();
    expect(result.content[0]?.text).toBe('rows of acme/contacts');
    await broker.held();
    expect(await completes()).toBe(before);
    broker.release();
    await until(async () => (await completes()) === before + 1, 'the held completion was never recorded');

    // A result whose record count the broker must check does not leave before the broker answered.
    broker.hold(/^POST \/v1\/complete /);
    let settled = false;
    const counted = acme.call('export_report', { table: 'contacts' }).finally(() => (settled = true));
    await broker.held();
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    broker.release();
    expect((await counted).isError).toBeFalsy();
    expect(await completes()).toBe(before + 2);
  });

  it('close() waits for a completion still on its way, so its record is there once the wrapper has closed', async () => {
    const acme = await caller();
    const before = await completes();
    broker.hold(/^POST \/v1\/complete /);
    expect((await acme.call('query_crm', { path: 'acme/contacts' })).isError).toBeFalsy();
    await broker.held();
    await acme.close();
    const closing = server.close();
    server = { url: server.url, close: async () => undefined };
    broker.release();
    await closing;
    expect(await completes()).toBe(before + 1);
  });

  it('with a concurrency of 1, back-to-back calls are not refused for a slot only our own completion holds; a held completion keeps the slot taken', async () => {
    const acme = await caller();
    const before = await completes();
    for (let i = 0; i < 20; i++) {
      const result = await acme.call('query_crm', { path: `acme/contacts/${i}` });
      expect(result.isError ? result.content[0]?.text : 'ok').toBe('ok');
    }
    // The slot is really held until the broker records the completion: a second caller that is not
    // this wrapper (straight to the broker) is refused while it is held.
    await until(async () => (await completes()) === before + 20, 'not every completion was recorded');
    broker.hold(/^POST \/v1\/complete /);
    expect((await acme.call('query_crm', { path: 'acme/contacts' })).isError).toBeFalsy();
    await broker.held();
    const direct = await h.authorize('crm-mcp', { token: await h.token('acme-agent', 'crm-mcp'), tool: 'query_crm', arguments: { path: 'acme/x' } });
    expect(direct.body).toMatchObject({ decision: 'deny', reason: 'concurrency_exceeded' });
    broker.release();
    let allowed: { call_id: string } | undefined;
    await until(async () => {
      const again = await h.authorize('crm-mcp', { token: await h.token('acme-agent', 'crm-mcp'), tool: 'query_crm', arguments: { path: 'acme/x' } });
      if (again.body.decision === 'allow') allowed = again.body;
      return allowed !== undefined;
    }, 'the slot was never released');
    expect((await h.post('/v1/complete', { call_id: allowed!.call_id, status: 'success' }, h.serverKeys['crm-mcp'])).status).toBe(200);
  });
});
