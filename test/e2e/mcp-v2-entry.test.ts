import { startHarness, TENANTS, type Harness } from '../support/broker-harness';
import { claimsOf, denyOf, textOf } from '../support/mcp-client';
import { connectMcpV2, REVISION, type McpV2Connection } from '../support/mcp-client-v2';
import { createMemoryCrmStore, demoDataset, type MemoryCrmStore } from '../../examples/crm-mcp/crm-store';
import { startCrmServer, type CrmServer } from '../../examples/crm-mcp/server';

/**
 * bulkhead/mcp/v2 (SDK 2.x, protocol 2026-07-28) protecting the example CRM, driven by the SDK 2.x
 * Client over real HTTP against a real broker. No protocol sessions: every request carries the token
 * and is authorized on its own. `store.opened(ns)` counts how often each tenant's data was reached,
 * which is how a test proves a handler never ran.
 */

type Result = { content: Array<{ type: string; text?: string }>; isError?: boolean; _meta?: Record<string, unknown> };

describe('bulkhead/mcp/v2 with the MCP SDK 2.x client (2026-07-28)', () => {
  let h: Harness;
  let store: MemoryCrmStore;
  let crm: CrmServer;
  const open: McpV2Connection[] = [];

  async function connect(principal: string, options: Parameters<typeof connectMcpV2>[2] & { scope?: string } = {}): Promise<McpV2Connection> {
    const token = await h.token(principal, 'crm-mcp', options.scope ? { scope: options.scope } : {});
    const connection = await connectMcpV2(crm.url, token, options);
    open.push(connection);
    return connection;
  }
  const call = async (c: McpV2Connection, name: string, args: Record<string, unknown>, extra: Record<string, unknown> = {}) => (await c.client.callTool({ name, arguments: args, ...extra })) as Result;
  const names = async (c: McpV2Connection) => (await c.client.listTools()).tools.map((t) => t.name);
  const sent = () => store.outbox('acme').length;

  /** One raw 2026-07-28 tools/call POST, to see the HTTP answer itself (status, challenge header). */
  async function rawCall(token: string, tool: string, args: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(crm.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': REVISION, 'mcp-method': 'tools/call', 'mcp-name': tool, ...headers },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: args, _meta: { 'io.modelcontextprotocol/protocolVersion': REVISION, 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' } } } }),
    });
  }

  beforeAll(async () => {
    h = await startHarness({
      overrides: (p) => {
        p.tenants.globex.principals['globex-agent'].tools = ['query_crm', 'export_report'];
      },
    });
    store = createMemoryCrmStore(TENANTS.map((t) => demoDataset(t, [h.upstream[t]!])));
    crm = await startCrmServer({ entry: 'v2', brokerUrl: h.url, serverId: 'crm-mcp', serverKey: h.serverKeys['crm-mcp']!, store, port: 0, logger: { info: () => undefined, warn: () => undefined } });
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await crm?.close();
    await h?.close();
  });

  it('lists per caller, sorted, from /v1/manifest: two tenants and a narrower principal see different lists', async () => {
    expect(await names(await connect('acme-agent'))).toEqual(['export_report', 'query_crm', 'send_email']);
    expect(await names(await connect('globex-agent'))).toEqual(['export_report', 'query_crm']);
    expect(await names(await connect('acme-reader'))).toEqual(['query_crm']);
  });

  it('marks tools/list cacheScope "private", so no shared cache serves one caller\'s list to another', async () => {
    const token = await h.token('globex-agent', 'crm-mcp');
    const response = await fetch(crm.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': REVISION, 'mcp-method': 'tools/list' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': REVISION, 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' } } } }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { result: { cacheScope: string; tools: Array<{ name: string }> } };
    expect(body.result.cacheScope).toBe('private');
    expect(body.result.tools.map((t: { name: string }) => t.name)).toEqual(['export_report', 'query_crm']);
  });

  it("runs a tenant's call with its own credential, and refuses reaches into another tenant (path, argument, header)", async () => {
    const acme = await connect('acme-agent');
    const own = await call(acme, 'query_crm', { path: 'acme/contacts' });
    expect(own.isError).toBeFalsy();
    expect(JSON.parse(textOf(own as never)).region).toBe('eu-west-1');
    const before = { acme: store.opened('acme'), globex: store.opened('globex') };

    expect(denyOf((await call(acme, 'query_crm', { path: 'globex/contacts' })) as never)?.reason).toBe('resource_out_of_scope');
    expect(denyOf((await call(acme, 'query_crm', { path: 'acme/contacts', tenant_id: 'globex' })) as never)?.reason).toBe('tenant_override');
    // A tenant mirrored into a header is a claim, never an identity.
    for (const header of ['x-tenant-id', 'X-Bulkhead-Tenant', 'tenant']) {
      const viaHeader = await connect('acme-agent', { headers: { [header]: 'globex' } });
      expect(denyOf((await call(viaHeader, 'query_crm', { path: 'acme/contacts' })) as never)?.reason).toBe('tenant_override');
    }
    expect({ acme: store.opened('acme'), globex: store.opened('globex') }).toEqual(before);
  });

  it('refuses a token for another server, and a request whose Mcp-Name header disagrees with its body', async () => {
    const forMail = await h.token('acme-agent', 'mail-mcp');
    const wrongAudience = await rawCall(forMail, 'query_crm', { path: 'acme/contacts' });
    expect(wrongAudience.status).toBe(401);
    expect(wrongAudience.headers.get('www-authenticate')).toContain('resource_metadata=');

    const before = store.opened('acme');
    const token = await h.token('acme-agent', 'crm-mcp');
    const mismatched = await rawCall(token, 'query_crm', { path: 'acme/contacts' }, { 'mcp-name': 'export_report' });
    expect(mismatched.status).toBe(400);
    expect(store.opened('acme')).toBe(before);
  });

  it('answers a tool the policy grants but the token scope lacks with a 403 insufficient_scope challenge naming every scope', async () => {
    const narrow = await h.token('acme-agent', 'crm-mcp', { scope: 'query_crm' });
    const before = store.opened('acme');
    const challenged = await rawCall(narrow, 'export_report', { table: 'contacts' });
    expect(challenged.status).toBe(403);
    const challenge = challenged.headers.get('www-authenticate') ?? '';
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="export_report query_crm"');
    expect(challenge).toContain('resource_metadata="http://127.0.0.1:');
    // The SDK client surfaces the 403; the handler never ran.
    const client = await connectMcpV2(crm.url, narrow);
    open.push(client);
    await expect(client.client.callTool({ name: 'export_report', arguments: { table: 'contacts' } })).rejects.toThrow(/403|insufficient_scope|scope/i);
    expect(store.opened('acme')).toBe(before);
  });

  it('keeps tool_not_allowed (no challenge) for a tool the policy forbids this principal', async () => {
    const reader = await connect('acme-reader');
    const denied = await call(reader, 'send_email', { to: 'ceo@acme.example', subject: 's', body: 'b' });
    expect(denyOf(denied as never)?.reason).toBe('tool_not_allowed');
    const token = await h.token('globex-agent', 'crm-mcp');
    const raw = await rawCall(token, 'send_email', { to: 'ceo@globex.example', subject: 's', body: 'b' });
    expect(raw.status).toBe(200);
  });

  it('turns approval_required into an MRTR round: the client asks its user, the operator approves, the call runs once', async () => {
    const seen: string[] = [];
    const acme = await connect('acme-agent', {
      onElicit: async (message) => {
        seen.push(message);
        const approvalId = /approval_id (\S+?)\)/.exec(message)?.[1];
        expect(approvalId).toBeDefined();
        expect((await h.post(`/v1/approvals/${approvalId}/approve`, {}, h.operatorToken)).status).toBe(200);
        return { action: 'accept', content: { decided: true } };
      },
    });
    const before = sent();
    const result = await call(acme, 'send_email', { to: 'ceo@acme.example', subject: 'Q3', body: 'hi' });
    expect(result.isError).toBeFalsy();
    expect(JSON.parse(textOf(result as never)).queued).toBe(true);
    expect(seen).toHaveLength(1);
    expect(sent()).toBe(before + 1);
  });

  it('refuses a replayed requestState (single use at the broker) and a forged, altered or foreign one', async () => {
    const manual = await connect('acme-agent', { autoFulfill: false, onElicit: async () => ({ action: 'cancel' }) });
    const args = { to: 'cfo@acme.example', subject: 'replay', body: 'x' };
    const round = (await manual.client.callTool({ name: 'send_email', arguments: args }, { allowInputRequired: true } as never)) as unknown as { resultType: string; requestState: string; inputRequests: Record<string, { params: { message: string } }> };
    expect(round.resultType).toBe('input_required');
    const approvalId = /approval_id (\S+?)\)/.exec(round.inputRequests.bulkhead_approval!.params.message)![1];
    expect((await h.post(`/v1/approvals/${approvalId}/approve`, {}, h.operatorToken)).status).toBe(200);
    const answer = { bulkhead_approval: { action: 'accept', content: { decided: true } } };

    const before = sent();
    const first = await call(manual, 'send_email', args, { requestState: round.requestState, inputResponses: answer });
    expect(first.isError).toBeFalsy();
    expect(sent()).toBe(before + 1);

    const replay = await call(manual, 'send_email', args, { requestState: round.requestState, inputResponses: answer });
    expect(denyOf(replay as never)?.reason).toBe('approval_required');
    expect(textOf(replay as never)).toContain('already used');
    // The same state for other arguments: refused by the guard (arguments MAC).
    const otherArgs = await call(manual, 'send_email', { ...args, to: 'attacker@evil.example' }, { requestState: round.requestState, inputResponses: answer });
    expect(denyOf(otherArgs as never)?.reason).toBe('approval_required');

    // Forged or altered: the SDK runs the seal check before the handler (-32602).
    const [v, body, mac] = round.requestState.split('.');
    const altered = `${v}.${Buffer.from(Buffer.from(body!, 'base64url').toString().replace(approvalId!, 'other-approval')).toString('base64url')}.${mac}`;
    for (const forged of ['forged', altered, `${v}.${body}.${Buffer.alloc(32).toString('base64url')}`]) {
      await expect(call(manual, 'send_email', args, { requestState: forged, inputResponses: answer })).rejects.toThrow(/requestState/);
    }
    // Another caller (globex, or another acme session) presenting acme's state: the binding refuses it.
    const globex = await connect('globex-agent');
    await expect(call(globex, 'send_email', args, { requestState: round.requestState, inputResponses: answer })).rejects.toThrow(/requestState/);
    const otherSession = await connect('acme-agent');
    await expect(call(otherSession, 'send_email', args, { requestState: round.requestState, inputResponses: answer })).rejects.toThrow(/requestState/);
    expect(sent()).toBe(before + 1);
  });

  it('denies the next request of a session an operator revoked mid-conversation (list and call)', async () => {
    const acme = await connect('acme-agent');
    expect((await call(acme, 'query_crm', { path: 'acme/contacts' })).isError).toBeFalsy();
    const before = store.opened('acme');
    expect((await h.post('/v1/revoke', { session: claimsOf(acme.token).sid, reason: 'e2e v2' }, h.operatorToken)).status).toBe(200);
    expect(denyOf((await call(acme, 'query_crm', { path: 'acme/contacts' })) as never)?.reason).toBe('session_revoked');
    await expect(names(acme)).rejects.toThrow(/session_revoked/);
    expect(store.opened('acme')).toBe(before);
  });
});
