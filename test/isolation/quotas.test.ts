import { startHarness, type Harness } from '../support/broker-harness';
import { auditEvents, callId, claimsOf, expectAllow, expectDeny } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * Budgets are per tenant: initech's small call rate and globex's small concurrency run out without
 * touching acme, a denied call holds no slot, and only the server that opened a call can close it.
 */

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    overrides: (p) => {
      p.tenants.initech.quotas = { calls_per_minute: 5, concurrency: 64 };
      p.tenants.globex.quotas = { calls_per_minute: 100_000, concurrency: 2 };
    },
  });
});

afterAll(async () => {
  await h?.close();
});

const query = (token: string, call_id = callId('quota')) => ({ token, tool: 'query_crm', arguments: { path: `${claimsOf(token).tid}/x` }, call_id });
const complete = (server: string, call_id: string) => h.post('/v1/complete', { call_id, status: 'success' }, h.serverKeys[server]);
const inFlight = async (tenant: string) => (await h.get(`/v1/tenants/${tenant}`, h.operatorToken)).body.quota.in_flight as number;

describe('calls per minute', () => {
  it("answers 429 quota_exceeded with Retry-After once initech's 5 calls a minute are used, while acme keeps going", async () => {
    const initech = await h.token('initech-agent', 'crm-mcp');
    const acme = await h.token('acme-agent', 'crm-mcp');
    for (let i = 0; i < 5; i++) {
      const call = query(initech);
      expectAllow(h, await h.authorize('crm-mcp', call), 'initech');
      expect((await complete('crm-mcp', call.call_id)).status).toBe(200);
      expectAllow(h, await h.authorize('crm-mcp', query(acme)), 'acme');
    }
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const call = query(initech);
      ids.push(call.call_id);
      const answer = await h.authorize('crm-mcp', call);
      expectDeny(h, answer, 429, 'quota_exceeded');
      const retryAfter = Number(answer.headers.get('retry-after'));
      expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true);
    }
    // A new token (new session, even another principal) draws on the same tenant budget.
    expectDeny(h, await h.authorize('crm-mcp', query(await h.token('initech-reader', 'crm-mcp'))), 429, 'quota_exceeded');
    for (let i = 0; i < 10; i++) expectAllow(h, await h.authorize('crm-mcp', query(acme)), 'acme');
    const globexCall = query(await h.token('globex-agent', 'crm-mcp'));
    expectAllow(h, await h.authorize('crm-mcp', globexCall), 'globex');
    expect((await complete('crm-mcp', globexCall.call_id)).status).toBe(200);

    expect(await inFlight('initech')).toBe(0);
    const events = (await auditEvents(h, 'initech')).filter((e) => ids.includes(e.call_id));
    expect(events.map((e) => [e.decision, e.reason])).toEqual(ids.map(() => ['deny', 'quota_exceeded']));
  });
});

describe('concurrency', () => {
  let globex: string;
  let held: string[];

  beforeAll(async () => {
    globex = await h.token('globex-agent', 'crm-mcp');
    held = [];
    for (let i = 0; i < 2; i++) {
      const call = query(globex);
      expectAllow(h, await h.authorize('crm-mcp', call), 'globex');
      held.push(call.call_id);
    }
  });

  it("answers 429 concurrency_exceeded with Retry-After when globex's 2 slots are held, and the denied call holds none", async () => {
    const answer = await h.authorize('crm-mcp', query(globex));
    expectDeny(h, answer, 429, 'concurrency_exceeded');
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await inFlight('globex')).toBe(2);
    expectAllow(h, await h.authorize('crm-mcp', query(await h.token('acme-agent', 'crm-mcp'))), 'acme');
  });

  it("answers 404 when another server completes globex's call, and the slot stays held", async () => {
    const foreign = await complete('mail-mcp', held[0]!);
    expect([foreign.status, foreign.body.error]).toEqual([404, 'not_found']);
    const unknown = await complete('crm-mcp', callId('never-opened'));
    expect([unknown.status, unknown.body.error]).toEqual([404, 'not_found']);
    expect(await inFlight('globex')).toBe(2);
    expectDeny(h, await h.authorize('crm-mcp', query(globex)), 429, 'concurrency_exceeded');
  });

  it('frees the slot when the server that opened the call completes it, exactly once', async () => {
    const done = await complete('crm-mcp', held[0]!);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ call_id: held[0], completed: true });
    expect(await inFlight('globex')).toBe(1);
    expect((await complete('crm-mcp', held[0]!)).status).toBe(404);

    const call = query(globex);
    expectAllow(h, await h.authorize('crm-mcp', call), 'globex');
    expectDeny(h, await h.authorize('crm-mcp', query(globex)), 429, 'concurrency_exceeded');
    for (const id of [held[1]!, call.call_id]) expect((await complete('crm-mcp', id)).status).toBe(200);
    expect(await inFlight('globex')).toBe(0);
  });
});

describe('secrets', () => {
  it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});
