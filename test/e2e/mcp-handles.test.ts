import { z } from 'zod';
import { bulkheadCall, createHandleCodec } from '../../src/mcp';
import { startHarness, type Harness } from '../support/broker-harness';
import { denyOf, textOf } from '../support/mcp-client';
import { connectCaller, type McpCaller, type ToolResult } from '../support/mcp-caller';
import { startToolServer, type ToolServer } from '../support/tool-server';

/**
 * Handles a tool mints (`bulkheadCall(ctx).handles`) are validated against (handle, tenant, principal)
 * on every use, on both entries, with each SDK's real client over HTTP against a real broker. The
 * resolving tool counts what it opened, which is how a test proves a refused handle reached nothing.
 */


describe.each(['v2', 'v1'] as const)('handles a tool mints, on the %s entry', (entry) => {
  let h: Harness;
  let server: ToolServer;
  const opened: unknown[] = [];
  const callers: McpCaller[] = [];

  beforeAll(async () => {
    h = await startHarness({
      overrides: (p) => {
        // A second acme principal that may call the resolving tool too.
        p.tenants.acme.principals['acme-reader'].tools = ['query_crm', 'export_report'];
      },
    });
    server = await startToolServer({
      entry,
      brokerUrl: h.url,
      serverKey: h.serverKeys['crm-mcp']!,
      register(mcp) {
        // Mints: a cursor over the path the broker allowed (principal scope), or bound to the session too.
        mcp.registerTool('query_crm', { inputSchema: { path: z.string(), region: z.string().optional() } }, async ({ path }: { path: string }, extra: object) => {
          const { handles } = bulkheadCall(extra);
          const scope = path.endsWith('/session') ? 'session' : 'principal';
          return { content: [{ type: 'text', text: handles.mint({ path, offset: 100 }, { kind: 'cursor', scope }) }] };
        });
        // Resolves: `table` carries the handle; `kind` lets a test present it as something else.
        mcp.registerTool('export_report', { inputSchema: { table: z.string(), kind: z.string().optional() } }, async ({ table, kind }: { table: string; kind?: string }, extra: object) => {
          const value = bulkheadCall(extra).handles.resolve(table, { kind: kind ?? 'cursor' });
          opened.push(value);
          return { content: [{ type: 'text', text: JSON.stringify(value) }] };
        });
      },
    });
  });

  afterAll(async () => {
    await Promise.all(callers.map((c) => c.close()));
    await server?.close();
    await h?.close();
  });

  async function caller(principal: string, token?: string): Promise<McpCaller> {
    const bearer = token ?? (await h.token(principal, 'crm-mcp'));
    const c = await connectCaller(entry, server.url, bearer);
    callers.push(c);
    return c;
  }
  const mint = async (c: McpCaller, path: string) => {
    const result = await c.call('query_crm', { path });
    expect(result.isError).toBeFalsy();
    return textOf(result as never);
  };
  const expectRefused = (result: ToolResult) => {
    expect(result.isError).toBe(true);
    expect(denyOf(result as never)?.reason).toBe('handle_invalid');
    expect(JSON.stringify(result)).not.toContain('acme/contacts');
  };

  it("gives the value back to the principal it was minted for, on a later call with another token (another session)", async () => {
    const handle = await mint(await caller('acme-agent'), 'acme/contacts');
    const result = await (await caller('acme-agent')).call('export_report', { table: handle });
    expect(result.isError).toBeFalsy();
    expect(JSON.parse(textOf(result as never))).toEqual({ path: 'acme/contacts', offset: 100 });
  });

  it('is opaque: the handle does not carry the value in clear, not even base64-decoded', async () => {
    const handle = await mint(await caller('acme-agent'), 'acme/contacts');
    expect(handle).not.toContain('acme');
    expect(Buffer.from(handle.slice(4), 'base64url').toString('latin1')).not.toContain('acme/contacts');
  });

  it("refuses acme's handle presented by globex: handle_invalid, nothing opened", async () => {
    const handle = await mint(await caller('acme-agent'), 'acme/contacts');
    const before = opened.length;
    expectRefused(await (await caller('globex-agent')).call('export_report', { table: handle }));
    expect(opened.length).toBe(before);
  });

  it("refuses acme-agent's handle presented by another acme principal (acme-reader)", async () => {
    const handle = await mint(await caller('acme-agent'), 'acme/contacts');
    const before = opened.length;
    expectRefused(await (await caller('acme-reader')).call('export_report', { table: handle }));
    expect(opened.length).toBe(before);
  });

  it('binds a session-scoped handle to its Bulkhead session: the same principal with a new token is refused, the same token is not', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const handle = await mint(await caller('acme-agent', token), 'acme/contacts/session');
    expectRefused(await (await caller('acme-agent')).call('export_report', { table: handle }));
    const same = await (await caller('acme-agent', token)).call('export_report', { table: handle });
    expect(same.isError).toBeFalsy();
  });

  it('refuses an altered handle, one presented as another kind, one sealed by another server key, and things that are not handles', async () => {
    const acme = await caller('acme-agent');
    const handle = await mint(acme, 'acme/contacts');
    const before = opened.length;
    const flipped = handle.slice(0, 20) + (handle[20] === 'A' ? 'B' : 'A') + handle.slice(21);
    expectRefused(await acme.call('export_report', { table: flipped }));
    expectRefused(await acme.call('export_report', { table: handle.slice(0, -2) }));
    expectRefused(await acme.call('export_report', { table: handle, kind: 'file' }));
    // A handle minted for the very same identity by another server (another key) means nothing here.
    const foreign = createHandleCodec({ serverKey: 'another server key, long enough to be one' }).for({ tenant: 'acme', principal: 'acme-agent', session: 'x' }).mint({ path: 'acme/contacts' }, { kind: 'cursor' });
    expectRefused(await acme.call('export_report', { table: foreign }));
    for (const junk of ['', 'bh1.', 'bh1.AAAA', 'acme/contacts', 'x'.repeat(20_000)]) expectRefused(await acme.call('export_report', { table: junk }));
    expect(opened.length).toBe(before);
  });
});
