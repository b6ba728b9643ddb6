import { startHarness, TENANTS, type Harness } from '../support/broker-harness';
import { findLeaks } from '../support/leak-scan';
import { claimsOf, connectMcp, denyOf, received, textOf, type McpConnection } from '../support/mcp-client';
import { createMemoryCrmStore, demoDataset, type MemoryCrmStore } from '../../examples/crm-mcp/crm-store';
import { startCrmServer, type CrmServer } from '../../examples/crm-mcp/server';

/**
 * The example CRM MCP server, protected by bulkhead/mcp, driven by the MCP SDK's own Client over
 * Streamable HTTP against a real broker. Tenants: acme and globex (policy below). Every tool handler
 * opens the CRM store with the credential Bulkhead resolved, so "which rows came back" is "whose
 * credential was used"; `store.opened(ns)` counts how often each tenant's data was actually reached,
 * which is how the tests prove a handler never ran.
 */

const logLines: string[] = [];
const logger = {
  info: (obj: Record<string, unknown>, msg: string) => void logLines.push(JSON.stringify({ ...obj, msg })),
  warn: (obj: Record<string, unknown>, msg: string) => void logLines.push(JSON.stringify({ ...obj, msg })),
};

describe('bulkhead/mcp protecting the example CRM server, with the MCP SDK client', () => {
  let h: Harness;
  let store: MemoryCrmStore;
  let crm: CrmServer;
  const open: McpConnection[] = [];
  const pendingApprovals: string[] = [];

  async function connect(principal: string, sessionId?: string): Promise<McpConnection> {
    const token = await h.token(principal, 'crm-mcp');
    const connection = await connectMcp(crm.url, token, { sessionId });
    open.push(connection);
    return connection;
  }

  beforeAll(async () => {
    h = await startHarness({
      overrides: (p) => {
        // Two tenants with different tool sets: globex's agent has no send_email.
        p.tenants.globex.principals['globex-agent'].tools = ['query_crm', 'export_report'];
      },
    });
    store = createMemoryCrmStore(TENANTS.map((t) => demoDataset(t, [h.upstream[t]!])));
    crm = await startCrmServer({
      entry: 'v1',
      brokerUrl: h.url,
      serverId: 'crm-mcp',
      serverKey: h.serverKeys['crm-mcp']!,
      store,
      port: 0,
      logger,
      approval: { waitMs: 20_000, pollMs: 50, maxPollMs: 200, onPending: (p) => void pendingApprovals.push(p.approvalId) },
    });
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await crm?.close();
    await h?.close();
  });

  it('publishes RFC 9728 metadata naming Bulkhead, and answers a tokenless request 401 pointing at it', async () => {
    const metadataUrl = new URL('/.well-known/oauth-protected-resource/mcp', crm.url);
    const metadata = await (await fetch(metadataUrl)).json();
    expect(metadata).toMatchObject({ resource: crm.url, authorization_servers: ['http://bulkhead.test'], bearer_methods_supported: ['header'] });

    const anonymous = await fetch(crm.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toContain(`resource_metadata="${metadataUrl.href}"`);
  });

  it('refuses a valid Bulkhead token minted for another server (the audience check the SDK does not do)', async () => {
    const forMail = await h.token('acme-agent', 'mail-mcp');
    await expect(connectMcp(crm.url, forMail)).rejects.toThrow(/401|nauthorized|different server/);
    expect(store.opened('acme')).toBe(0);
  });

  it('shows each tenant only the tools /v1/manifest allows: two tenants, two different lists', async () => {
    const acme = await connect('acme-agent');
    const globex = await connect('globex-agent');
    const acmeReader = await connect('acme-reader');
    expect(await acme.toolNames()).toEqual(['export_report', 'query_crm', 'send_email']);
    expect(await globex.toolNames()).toEqual(['export_report', 'query_crm']);
    expect(await acmeReader.toolNames()).toEqual(['query_crm']);
  });

  it("runs tenant A's call with tenant A's credential and returns only A's rows, with the injected region", async () => {
    const acme = await connect('acme-agent');
    const result = await acme.call('query_crm', { path: 'acme/contacts' });
    expect(result.isError).toBeFalsy();
    const body = JSON.parse(textOf(result));
    expect(body.region).toBe('eu-west-1'); // forced by policy `inject`, not sent by the client
    expect(body.rows.map((r: { email: string }) => r.email)).toEqual(['contact1@acme.example', 'contact2@acme.example', 'contact3@acme.example']);
    expect(store.opened('acme')).toBe(1);
    for (const other of ['globex', 'initech']) expect(store.opened(other)).toBe(0);

    const globex = await connect('globex-agent');
    const theirs = JSON.parse(textOf(await globex.call('query_crm', { path: 'globex/deals' })));
    expect(theirs.rows.map((r: { title: string }) => r.title)).toEqual(['Globex deal 1', 'Globex deal 2']);
    expect(store.opened('globex')).toBe(1);
  });

  it("denies tenant A's reach into tenant B's data (path and tenant override), and the handler never runs", async () => {
    const acme = await connect('acme-agent');
    const before = { acme: store.opened('acme'), globex: store.opened('globex') };

    const outOfScope = await acme.call('query_crm', { path: 'globex/contacts' });
    expect(outOfScope.isError).toBe(true);
    expect(denyOf(outOfScope)?.reason).toBe('resource_out_of_scope');
    expect(textOf(outOfScope)).toContain('resource_out_of_scope');

    const override = await acme.call('query_crm', { path: 'acme/contacts', tenant_id: 'globex' });
    expect(denyOf(override)?.reason).toBe('tenant_override');

    const traversal = await acme.call('query_crm', { path: 'acme/../globex/contacts' });
    expect(traversal.isError).toBe(true);
    expect(denyOf(traversal)?.reason).toBe('resource_out_of_scope');

    expect({ acme: store.opened('acme'), globex: store.opened('globex') }).toEqual(before);
  });

  it("denies tenant B a tool only tenant A's policy grants (tool_not_allowed), and the handler never runs", async () => {
    const globex = await connect('globex-agent');
    const denied = await globex.call('send_email', { to: 'x@globex.example', subject: 'hi', body: 'hi' });
    expect(denyOf(denied)?.reason).toBe('tool_not_allowed');
    expect(store.outbox('globex')).toEqual([]);
    expect(pendingApprovals).toEqual([]);
  });

  it("refuses tenant A's token on tenant B's MCP session, and another client's replay of a session id", async () => {
    const globex = await connect('globex-agent');
    expect(globex.sessionId).toEqual(expect.any(String));
    await globex.toolNames();

    // acme's valid token presenting globex's session id: answered like an unknown session, never served.
    const hijack = await connect('acme-agent', globex.sessionId);
    await expect(hijack.toolNames()).rejects.toThrow(/404|Session not found/);
    await expect(hijack.call('query_crm', { path: 'globex/contacts' })).rejects.toThrow(/404|Session not found/);

    // Same tenant, another principal: still not the identity that opened the session.
    const sibling = await connect('globex-reader', globex.sessionId);
    await expect(sibling.toolNames()).rejects.toThrow(/404|Session not found/);

    // Nor can another identity end it.
    const kill = await fetch(crm.url, { method: 'DELETE', headers: { authorization: `Bearer ${hijack.token}`, 'mcp-session-id': globex.sessionId! } });
    expect(kill.status).toBe(404);

    // The owner's session is untouched, and only the owner ends it.
    expect(await globex.toolNames()).toEqual(['export_report', 'query_crm']);
    const ended = globex.sessionId!;
    await globex.transport.terminateSession();
    const after = await connect('globex-agent', ended);
    await expect(after.toolNames()).rejects.toThrow(/404|Session not found/);
  });

  it('fails the next call of a session an operator revoked, in the middle of the conversation', async () => {
    const acme = await connect('acme-agent');
    expect((await acme.call('query_crm', { path: 'acme/deals' })).isError).toBeFalsy();
    const opened = store.opened('acme');

    const revoked = await h.post('/v1/revoke', { session: claimsOf(acme.token).sid, reason: 'e2e' }, h.operatorToken);
    expect(revoked.status).toBe(200);

    const next = await acme.call('query_crm', { path: 'acme/deals' });
    expect(next.isError).toBe(true);
    expect(denyOf(next)?.reason).toBe('session_revoked');
    expect(store.opened('acme')).toBe(opened);
    // tools/list asks the broker too: the revoked session sees no tools.
    await expect(acme.toolNames()).rejects.toThrow(/session_revoked/);
  });

  it("holds an approval_required call until the operator approves it, then runs it exactly once", async () => {
    const acme = await connect('acme-agent');
    const email = { to: 'ceo@acme.example', subject: 'Q3', body: 'numbers attached' };
    const progress: string[] = [];
    const call = acme.call('send_email', email, { onprogress: (p) => void progress.push(p.message ?? '') });

    const approvalId = await eventually(() => pendingApprovals.at(-1));
    expect(store.outbox('acme')).toEqual([]); // still waiting: nothing sent
    const approved = await h.post(`/v1/approvals/${approvalId}/approve`, {}, h.operatorToken);
    expect(approved.status).toBe(200);

    const result = await call;
    expect(result.isError).toBeFalsy();
    expect(store.outbox('acme')).toEqual([email]);
    expect(progress.some((m) => m.includes(approvalId))).toBe(true);

    // The approval was for one execution: the same call again waits for a new one; denied, it never runs.
    const again = acme.call('send_email', email);
    const secondId = await eventually(() => (pendingApprovals.at(-1) !== approvalId ? pendingApprovals.at(-1) : undefined));
    expect((await h.post(`/v1/approvals/${secondId}/deny`, {}, h.operatorToken)).status).toBe(200);
    const refused = await again;
    expect(denyOf(refused)?.reason).toBe('approval_required');
    expect(store.outbox('acme')).toEqual([email]);
  });

  it('quarantines the session when a call reports more than max_records, withholding that result', async () => {
    const acme = await connect('acme-agent');
    const small = await acme.call('export_report', { table: 'contacts' });
    expect(JSON.parse(textOf(small)).count).toBe(3);

    const big = await acme.call('export_report', { table: 'activity' }); // 1200 rows, max_records 1000
    expect(big.isError).toBe(true);
    expect(denyOf(big)?.reason).toBe('session_quarantined');
    expect(textOf(big)).not.toContain('activity 1200');

    const after = await acme.call('query_crm', { path: 'acme/contacts' });
    expect(denyOf(after)?.reason).toBe('session_quarantined');

    // Another session of the same tenant is not affected.
    const fresh = await connect('acme-agent');
    expect((await fresh.call('query_crm', { path: 'acme/contacts' })).isError).toBeFalsy();
  });

  it('never hands a credential to an MCP client, nor logs a token or a credential', async () => {
    expect(received.length).toBeGreaterThan(10);
    const everything = [...received, ...logLines].join('\n');
    for (const value of Object.values(h.upstream)) expect(everything.includes(value)).toBe(false);
    for (const token of open.map((c) => c.token)) expect(everything.includes(token)).toBe(false);
    expect(await findLeaks(h)).toEqual([]);
  });

  // Last: it takes the broker away from the running CRM server.
  it('refuses tool calls with broker_unavailable when the broker is down (fail closed), and the handler never runs', async () => {
    const acme = await connect('acme-agent');
    expect((await acme.call('query_crm', { path: 'acme/contacts' })).isError).toBeFalsy();
    const opened = store.opened('acme');

    await h.restart(); // the broker comes back on another port: the CRM server's broker URL is dead

    const refused = await acme.call('query_crm', { path: 'acme/contacts' });
    expect(refused.isError).toBe(true);
    expect(denyOf(refused)?.reason).toBe('broker_unavailable');
    expect(textOf(refused)).toMatch(/could not be reached.*fail closed/);
    expect(store.opened('acme')).toBe(opened);
    await expect(acme.toolNames()).rejects.toThrow(/broker_unavailable/);
  });
});

async function eventually<T>(read: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
}
