import { manualClock } from '../../src/clock';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { auditEvents, callId, claimsOf, expectAllow, expectDeny } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * Budgets in cost units per UTC hour and day, on the embedded default with an injected clock: a call
 * past the tenant's or the principal's budget is 429 budget_exceeded before any credential is
 * resolved, with Retry-After until the window that would admit it; windows reset on the hour and the
 * day; reported usage corrects the estimate; a refused call is refunded; charges survive a restart;
 * parallel calls cannot overspend; one noisy tenant never spends another's budget; and a credential's
 * own calls-per-minute protects an upstream key that several tools share.
 */
const START = Date.UTC(2026, 11, 2, 10, 5, 0); // 10:05:00 UTC
const clock = manualClock(START);
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    brokerOptions: { clock },
    overrides: (p) => {
      p.tenants.acme.budgets = { hourly: 10, daily: 25 };
      p.tenants.acme.tools.query_crm.cost = 3;
      p.tenants.acme.tools.send_email.cost = 2;
      p.tenants.initech.budgets = { hourly: 100 };
      p.tenants.initech.principals['initech-reader'].budgets = { hourly: 4 };
      p.tenants.initech.tools.query_crm.cost = 3;
      p.tenants.initech.tools.export_report.cost = 1;
      p.tenants.initech.credentials.crm.calls_per_minute = 5;
      p.tenants.globex.tools.query_crm.cost = 50;
    },
  });
});
afterAll(async () => {
  await h?.close();
});

const query = (token: string, call_id = callId('budget')) => h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: `${claimsOf(token).tid}/x` }, call_id });
const complete = (call_id: string, usage?: Record<string, number>) => h.post('/v1/complete', { call_id, status: 'success', ...(usage ? { usage } : {}) }, h.serverKeys['crm-mcp']);
const budget = async (tenant: string) => (await h.get(`/v1/tenants/${tenant}`, h.operatorToken)).body.budget;
const secondsTo = (ms: number) => Math.ceil((ms - clock.now()) / 1000);

async function allowedAndCompleted(token: string, tenant: string, n: number) {
  for (let i = 0; i < n; i++) {
    const answer = await query(token);
    expectAllow(h, answer, tenant);
    expect((await complete(answer.body.call_id)).status).toBe(200);
  }
}

test("acme's hourly budget: 3 calls of cost 3 fit in 10, the 4th is 429 with Retry-After to the next hour", async () => {
  const token = await h.token('acme-agent', 'crm-mcp');
  await allowedAndCompleted(token, 'acme', 3);
  const over = await query(token);
  expectDeny(h, over, 429, 'budget_exceeded');
  expect(over.body.message).toMatch(/tenant's hourly budget/);
  expect(over.headers.get('retry-after')).toBe(String(secondsTo(Date.UTC(2026, 11, 2, 11))));
  expect(over.body.credential).toBeUndefined();
  expect(await budget('acme')).toEqual({
    hourly: { used: 9, limit: 10, resets_at: '2026-12-02T11:00:00.000Z' },
    daily: { used: 9, limit: 25, resets_at: '2026-12-03T00:00:00.000Z' },
  });
  const events = await auditEvents(h, 'acme');
  expect(events.filter((e) => e.decision === 'allow').map((e) => e.cost)).toEqual([3, 3, 3]);
  expect(events.find((e) => e.call_id === over.body.call_id)).toMatchObject({ decision: 'deny', reason: 'budget_exceeded' });
  const metrics = await (await fetch(`${h.url}/metrics`)).text();
  expect(metrics).toMatch(/^bulkhead_budget_denials_total 1$/m);
  expect(metrics).not.toMatch(/budget[^\n]*acme/);
});

test("a noisy tenant cannot spend another's budget: globex has none and acme's stays spent", async () => {
  const globex = await h.token('globex-agent', 'crm-mcp');
  await allowedAndCompleted(globex, 'globex', 5);
  expect(await budget('globex')).toBeNull();
  expectDeny(h, await query(await h.token('acme-agent', 'crm-mcp')), 429, 'budget_exceeded');
});

test('a refused call is refunded: an approval-required call costs nothing', async () => {
  clock.set(Date.UTC(2026, 11, 2, 11, 0, 1));
  const token = await h.token('acme-agent', 'crm-mcp');
  const before = (await budget('acme')).daily.used;
  const waiting = await h.authorize('crm-mcp', { token, tool: 'send_email', arguments: { to: 'x@acme.example' }, call_id: callId('budget-approval') });
  expectDeny(h, waiting, 403, 'approval_required');
  expect((await budget('acme')).daily.used).toBe(before);
  expect((await budget('acme')).hourly.used).toBe(0);
});

test('the hour resets the hourly window; the daily window keeps counting until midnight', async () => {
  const token = await h.token('acme-agent', 'crm-mcp');
  await allowedAndCompleted(token, 'acme', 3); // hourly 9, daily 18
  expectDeny(h, await query(token), 429, 'budget_exceeded');
  clock.set(Date.UTC(2026, 11, 2, 12, 30));
  const fresh = await h.token('acme-agent', 'crm-mcp');
  await allowedAndCompleted(fresh, 'acme', 2); // daily 24
  const over = await query(fresh);
  expectDeny(h, over, 429, 'budget_exceeded');
  expect(over.body.message).toMatch(/daily budget/);
  expect(over.headers.get('retry-after')).toBe(String(secondsTo(Date.UTC(2026, 11, 3))));
});

test('charges survive a restart of the embedded broker', async () => {
  const before = await budget('acme');
  await h.restart();
  expect(await budget('acme')).toEqual(before);
  expectDeny(h, await query(await h.token('acme-agent', 'crm-mcp')), 429, 'budget_exceeded');
});

test('the next day starts with a fresh daily budget', async () => {
  clock.set(Date.UTC(2026, 11, 3, 0, 0, 5));
  const token = await h.token('acme-agent', 'crm-mcp');
  await allowedAndCompleted(token, 'acme', 1);
  expect((await budget('acme')).daily).toMatchObject({ used: 3, resets_at: '2026-12-04T00:00:00.000Z' });
});

test("a principal's own budget is checked beside the tenant's", async () => {
  clock.set(Date.UTC(2026, 11, 3, 1, 0, 0));
  const reader = await h.token('initech-reader', 'crm-mcp');
  await allowedAndCompleted(reader, 'initech', 1);
  const over = await query(reader);
  expectDeny(h, over, 429, 'budget_exceeded');
  expect(over.body.message).toMatch(/principal's hourly budget/);
  // The agent of the same tenant is not held by the reader's budget.
  await allowedAndCompleted(await h.token('initech-agent', 'crm-mcp'), 'initech', 1);
});

test('reported usage replaces the estimate: more is charged, less is refunded', async () => {
  clock.set(Date.UTC(2026, 11, 3, 2, 0, 0));
  const token = await h.token('initech-agent', 'crm-mcp');
  const one = await query(token);
  expectAllow(h, one, 'initech');
  expect((await budget('initech')).hourly.used).toBe(3);
  expect((await complete(one.body.call_id, { cost: 40, tokens: 1200 })).status).toBe(200);
  expect((await budget('initech')).hourly.used).toBe(40);
  const two = await query(token);
  expect((await complete(two.body.call_id, { cost: 0 })).status).toBe(200);
  expect((await budget('initech')).hourly.used).toBe(40);
  const record = (await auditEvents(h, 'initech')).find((e) => e.type === 'complete' && e.call_id === one.body.call_id);
  expect(record).toMatchObject({ cost: 40, tokens: 1200 });
  for (const usage of [{ cost: -1 }, { cost: 1e400 }, { tokens: 1.5 }, { price: 3 }]) {
    const bad = await h.post('/v1/complete', { call_id: callId('x'), status: 'success', usage }, h.serverKeys['crm-mcp']);
    expect([bad.status, bad.body.error]).toEqual([400, 'bad_request']);
  }
});

test('parallel calls cannot overspend: 12 at once against 9 units left admit exactly 3', async () => {
  clock.set(Date.UTC(2026, 11, 3, 5, 0, 0));
  const token = await h.token('acme-agent', 'crm-mcp');
  const answers = await Promise.all(Array.from({ length: 12 }, () => query(token)));
  expect(answers.filter((a) => a.status === 200)).toHaveLength(3);
  expect(answers.filter((a) => a.status === 429).every((a) => a.body.reason === 'budget_exceeded')).toBe(true);
  for (const a of answers.filter((x) => x.status === 200)) await complete(a.body.call_id);
});

test("a credential's own calls per minute protect the upstream key its tools share", async () => {
  clock.set(Date.UTC(2026, 11, 3, 6, 0, 0));
  const token = await h.token('initech-agent', 'crm-mcp');
  // query_crm and export_report both use credential "crm" (5 a minute for initech).
  for (let i = 0; i < 5; i++) {
    const tool = i % 2 === 0 ? 'query_crm' : 'export_report';
    const answer = await h.authorize('crm-mcp', { token, tool, arguments: tool === 'query_crm' ? { path: 'initech/x' } : {}, call_id: callId('rate') });
    expectAllow(h, answer, 'initech');
    await complete(answer.body.call_id);
  }
  const over = await h.authorize('crm-mcp', { token, tool: 'export_report', arguments: {}, call_id: callId('rate') });
  expectDeny(h, over, 429, 'quota_exceeded');
  expect(over.body.message).toMatch(/credential "crm" allows 5 calls per minute/);
  expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
  // Refused by the credential rate: the call's budget charge was given back.
  expect((await budget('initech')).hourly.used).toBe(3 + 1 + 3 + 1 + 3);
  // acme's credential has no such rate.
  clock.advance(61_000);
  expectAllow(h, await h.authorize('crm-mcp', { token, tool: 'export_report', arguments: {}, call_id: callId('rate') }), 'initech');
});

test('bulkhead tenant status shows the budget use the API reports', async () => {
  await ensureBuiltCli();
  const result = await runCli(['tenant', 'status', 'acme', '--url', h.url], { BULKHEAD_OPERATOR_TOKEN: h.operatorToken });
  expect([result.code, result.stderr]).toEqual([0, '']);
  expect(JSON.parse(result.stdout).budget).toEqual(await budget('acme'));
});

test('no secret leaked while budgets were enforced', async () => {
  expect(await findLeaks(h)).toEqual([]);
});
