import { startHarness, type Harness } from '../support/broker-harness';
import { allAudit, auditEvents, callId, claimsOf, expectAllow, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * The anomaly rule and human approval. A session whose export reports more records than max_records is
 * quarantined (every token of that session, across restarts) while the principal's other sessions carry
 * on. An approval covers one session's one exact call, once.
 */

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

const EXCHANGE = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' };
const exportCall = (token: string, call_id = callId('export')) => ({ token, tool: 'export_report', arguments: { report: 'customers' }, call_id });
const queryCall = (token: string, call_id = callId('query')) => ({ token, tool: 'query_crm', arguments: { path: `${claimsOf(token).tid}/x` }, call_id });
const complete = (server: string, body: Record<string, unknown>) => h.post('/v1/complete', body, h.serverKeys[server]);

describe('quarantine', () => {
  let quarantined: string;
  let sameSession: string;
  let otherSession: string;

  beforeAll(async () => {
    quarantined = await h.token('acme-agent', 'crm-mcp');
    sameSession = (await h.post('/v1/token', { ...EXCHANGE, subject_token: quarantined, client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] })).body.access_token;
    otherSession = await h.token('acme-agent', 'crm-mcp');
    expect(claimsOf(sameSession).sid).toBe(claimsOf(quarantined).sid);
    expect(claimsOf(otherSession).sid).not.toBe(claimsOf(quarantined).sid);
  });

  it('does not quarantine a session whose export reports exactly max_records', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const call = exportCall(token);
    expectAllow(h, await h.authorize('crm-mcp', call), 'acme');
    const done = await complete('crm-mcp', { call_id: call.call_id, status: 'success', records: 1000 });
    expect(done.body).toMatchObject({ completed: true, quarantined: false });
    expectAllow(h, await h.authorize('crm-mcp', queryCall(token)), 'acme');
  });

  it("ignores another server's attempt to complete the call (404), so it can neither quarantine nor free it", async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const call = exportCall(token);
    expectAllow(h, await h.authorize('crm-mcp', call), 'acme');
    const foreign = await complete('mail-mcp', { call_id: call.call_id, status: 'success', records: 1_000_000 });
    expect([foreign.status, foreign.body.error]).toEqual([404, 'not_found']);
    expectAllow(h, await h.authorize('crm-mcp', queryCall(token)), 'acme');
    // The rightful server can still complete it: the foreign attempt did not consume it.
    expect((await complete('crm-mcp', { call_id: call.call_id, status: 'success', records: 3 })).body).toMatchObject({ completed: true, quarantined: false });
  });

  it('quarantines the session whose export reported more than max_records: every later call of that session is denied (session_quarantined)', async () => {
    const call = exportCall(quarantined);
    expectAllow(h, await h.authorize('crm-mcp', call), 'acme');
    const done = await complete('crm-mcp', { call_id: call.call_id, status: 'success', records: 1001 });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ call_id: call.call_id, completed: true, quarantined: true });

    const ids: string[] = [];
    for (const token of [quarantined, sameSession]) {
      for (const body of [queryCall(token), exportCall(token), { token, tool: 'send_email', arguments: { to: 'x@acme.example' }, call_id: callId('mail') }]) {
        ids.push(body.call_id);
        expectDeny(h, await h.authorize('crm-mcp', body), 403, 'session_quarantined');
      }
    }
    await expectNoAllowAnywhere(h, ids);
    const events = await auditEvents(h, 'acme');
    expect(events.filter((e) => e.type === 'quarantine').map((e) => [e.session, e.call_id, e.records])).toEqual([[claimsOf(quarantined).sid, call.call_id, 1001]]);
    expect(events.filter((e) => ids.includes(e.call_id)).map((e) => e.reason)).toEqual(ids.map(() => 'session_quarantined'));
  });

  it("leaves the same principal's other sessions and other tenants working", async () => {
    expectAllow(h, await h.authorize('crm-mcp', queryCall(otherSession)), 'acme');
    expectAllow(h, await h.authorize('crm-mcp', exportCall(otherSession)), 'acme');
    expectAllow(h, await h.authorize('crm-mcp', queryCall(await h.token('globex-agent', 'crm-mcp'))), 'globex');
  });

  it('keeps the session quarantined across a restart', async () => {
    await h.restart();
    expectDeny(h, await h.authorize('crm-mcp', queryCall(quarantined)), 403, 'session_quarantined');
    expectAllow(h, await h.authorize('crm-mcp', queryCall(otherSession)), 'acme');
  });
});

describe('approval', () => {
  const email = { to: 'cfo@acme.example', subject: 'Q3', body: 'numbers attached' };
  let token: string;
  let approvalId: string;
  const send = (t: string, args: Record<string, unknown> = email, call_id = callId('send')) => h.authorize('crm-mcp', { token: t, tool: 'send_email', arguments: args, call_id });
  const decide = (id: string, decision: 'approve' | 'deny', bearer = h.operatorToken) => h.post(`/v1/approvals/${id}/${decision}`, {}, bearer);

  beforeAll(async () => {
    token = await h.token('acme-agent', 'crm-mcp');
  });

  it('denies send_email until an operator approves it (approval_required, with an approval_id)', async () => {
    const answer = await send(token);
    expectDeny(h, answer, 403, 'approval_required');
    expect(answer.body.approval_id).toEqual(expect.any(String));
    approvalId = answer.body.approval_id;
  });

  it("lists acme's pending approval to operators with its effective arguments, and never to globex", async () => {
    const listed = await h.get('/v1/approvals?tenant=acme', h.operatorToken);
    expect(listed.status).toBe(200);
    expect(listed.body.tenant).toBe('acme');
    const mine = listed.body.approvals.find((a: { id: string }) => a.id === approvalId);
    expect(Object.keys(mine).sort()).toEqual(['arguments', 'arguments_mac', 'created_at', 'expires_at', 'id', 'principal', 'session', 'tenant', 'tool']);
    expect(mine).toMatchObject({ tenant: 'acme', principal: 'acme-agent', session: claimsOf(token).sid, tool: 'send_email', arguments_mac: expect.stringMatching(/^[0-9a-f]{64}$/) });
    // What the operator sees is exactly what the MAC binds (test/isolation/approval-arguments.test.ts tries to break that).
    expect(mine.arguments).toEqual(email);
    expect(await h.broker.argumentMacs.mac('acme', mine.arguments)).toBe(mine.arguments_mac);
    expect(new Date(mine.created_at).toISOString()).toBe(mine.created_at);
    expect(Date.parse(mine.expires_at)).toBeGreaterThan(Date.parse(mine.created_at));
    expect(listed.body.approvals.every((a: { principal: string }) => a.principal.startsWith('acme-'))).toBe(true);

    // globex has a pending approval of its own; neither list ever shows the other's.
    const globexPending = await send(await h.token('globex-agent', 'crm-mcp'));
    expectDeny(h, globexPending, 403, 'approval_required');
    const globex = await h.get('/v1/approvals?tenant=globex', h.operatorToken);
    expect(globex.body.approvals.map((a: { id: string }) => a.id)).toEqual([globexPending.body.approval_id]);
    expect(JSON.stringify(globex.body)).not.toContain(approvalId);
    const acmeAgain = await h.get('/v1/approvals?tenant=acme', h.operatorToken);
    expect(JSON.stringify(acmeAgain.body)).not.toContain(globexPending.body.approval_id);
  });

  it('lists approvals only to operators, and only for a tenant that exists', async () => {
    const asServer = await h.get('/v1/approvals?tenant=acme', h.serverKeys['crm-mcp']);
    expect([asServer.status, asServer.body.error]).toEqual([401, 'operator_unauthenticated']);
    expect(asServer.body).not.toHaveProperty('approvals');
    expect((await h.get('/v1/approvals?tenant=umbrella', h.operatorToken)).status).toBe(404);
    expect((await h.get('/v1/approvals', h.operatorToken)).status).toBe(400);
    expect((await h.get('/v1/approvals?tenant=acme&tenant=globex', h.operatorToken)).status).toBe(400);
  });

  it('refuses to let an MCP server approve its own call', async () => {
    const answer = await decide(approvalId, 'approve', h.serverKeys['crm-mcp']);
    expect([answer.status, answer.body.error]).toEqual([401, 'operator_unauthenticated']);
    expectDeny(h, await send(token), 403, 'approval_required');
  });

  it('lets the approved call through exactly once, and only in its own session, tenant and arguments', async () => {
    const approved = await decide(approvalId, 'approve');
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ id: approvalId, status: 'approved', tenant: 'acme', tool: 'send_email' });

    const before = await allAudit(h);
    const elsewhere = [
      await send(token, { ...email, to: 'attacker@evil.example' }),
      await send(token, { ...email, body: 'numbers attached ' }),
      await send(await h.token('acme-agent', 'crm-mcp')),
      await send(await h.token('globex-agent', 'crm-mcp')),
    ];
    for (const answer of elsewhere) {
      expectDeny(h, answer, 403, 'approval_required');
      expect(answer.body.approval_id).not.toBe(approvalId);
    }
    expect((await auditEvents(h, 'globex')).filter((e) => e.decision === 'allow').length).toBe(before.globex!.filter((e) => e.decision === 'allow').length);

    const id = callId('approved-send');
    const through = await send(token, email, id);
    expectAllow(h, through, 'acme');
    expect(through.body.arguments).toEqual(email);

    const again = await send(token);
    expectDeny(h, again, 403, 'approval_required');
    expect(again.body.approval_id).not.toBe(approvalId);

    const events = await auditEvents(h, 'acme');
    expect(events.filter((e) => e.type === 'approval').map((e) => [e.detail, e.status, e.operator])).toContainEqual([approvalId, 'approved', 'ops']);
    expect(events.filter((e) => e.tool === 'send_email' && e.decision === 'allow').map((e) => e.call_id)).toEqual([id]);
  });

  it('refuses to approve the same approval twice, and a denied approval lets nothing through', async () => {
    expect((await decide(approvalId, 'approve')).status).toBe(404);
    const pending = await send(token, { ...email, subject: 'Q4' });
    expectDeny(h, pending, 403, 'approval_required');
    expect((await decide(pending.body.approval_id, 'deny')).body).toMatchObject({ status: 'denied' });
    expectDeny(h, await send(token, { ...email, subject: 'Q4' }), 403, 'approval_required');
    expect((await decide(pending.body.approval_id, 'approve')).status).toBe(404);
  });

  it("keeps the operator's reason with the decision in the tenant's stream; a reason too long or a stray field is refused and decides nothing", async () => {
    const pending = await send(token, { ...email, subject: 'Q1' });
    const id = pending.body.approval_id as string;
    for (const body of [{ reason: 'x'.repeat(501) }, { reason: 42 }, { tenant: 'globex' }]) {
      expect((await h.post(`/v1/approvals/${id}/deny`, body, h.operatorToken)).status).toBe(400);
    }
    expect((await h.post(`/v1/approvals/${id}/deny`, { reason: 'not during the freeze' }, h.operatorToken)).body).toMatchObject({ status: 'denied' });
    const decided = (await auditEvents(h, 'acme')).filter((e) => e.type === 'approval' && e.detail === id);
    expect(decided.map((e) => [e.status, e.operator, e.reason])).toEqual([['denied', 'ops', 'not during the freeze']]);
    expect((await auditEvents(h, 'globex')).some((e) => e.detail === id)).toBe(false);
  });
});

describe('secrets', () => {
  it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});
