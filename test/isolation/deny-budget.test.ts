import { setTimeout as sleep } from 'node:timers/promises';
import { startHarness, type Harness } from '../support/broker-harness';
import { auditEvents, callId, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * Denies are not free: past its `quotas.audited_denies_per_minute`, a tenant's further denies are
 * answered without a write each and summarised in one `deny_summary` record per interval (count and
 * reasons) — on interval end and on shutdown — so one tenant hammering denied calls cannot fill the disk
 * every tenant's audit shares. Nothing is dropped silently, and other tenants' denies are unaffected.
 */
jest.setTimeout(60_000);

const BUDGET = 5;
const summaries = async (h: Harness, tenant: string) => (await auditEvents(h, tenant)).filter((e) => e.type === 'deny_summary');

/** Waits (polling, no fixed delay) until `tenant` has `n` summaries; the interval is the broker's, not the test's. */
async function summariesOnceWritten(h: Harness, tenant: string, n: number): Promise<any[]> {
  for (let i = 0; i < 200; i++) {
    const found = await summaries(h, tenant);
    if (found.length >= n) return found;
    await sleep(100);
  }
  throw new Error(`no ${n} deny_summary records for ${tenant}`);
}

describe('on interval end', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      overrides: (p) => {
        p.tenants.acme.quotas = { calls_per_minute: 1, concurrency: 64, audited_denies_per_minute: BUDGET };
        p.tenants.globex.quotas = { calls_per_minute: 100_000, concurrency: 64, audited_denies_per_minute: 1000 };
      },
      // The interval is a minute in production; shortened so the test sees it end.
      brokerOptions: { denyWindowMs: 1500 },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('writes the budget one by one, answers the rest at once with their own reason, and summarises them (quota_exceeded)', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const first = await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' } });
    expect(first.status).toBe(200);
    const ids = Array.from({ length: 40 }, (_, i) => callId(`over-quota-${i}`));
    const answers = await Promise.all(ids.map((id) => h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: id })));
    for (const answer of answers) expectDeny(h, answer, 429, 'quota_exceeded');
    await expectNoAllowAnywhere(h, ids);

    const [summary] = await summariesOnceWritten(h, 'acme', 1);
    const written = (await auditEvents(h, 'acme')).filter((e) => ids.includes(e.call_id));
    expect(written).toHaveLength(BUDGET);
    expect(summary).toMatchObject({ decision: 'deny', denied: ids.length - BUDGET, reasons: { quota_exceeded: ids.length - BUDGET }, since: expect.any(String) });
    expect((await h.get('/v1/audit/verify?tenant=acme', h.operatorToken)).body.ok).toBe(true);
  });

  it('counts every reason past the budget in the next interval\'s summary (tool_not_allowed, resource_out_of_scope, tenant_override)', async () => {
    const before = (await summaries(h, 'acme')).length;
    const token = await h.token('acme-reader', 'crm-mcp');
    const kinds = [
      { body: { tool: 'export_report', arguments: {} }, reason: 'tool_not_allowed' },
      { body: { tool: 'query_crm', arguments: { path: 'globex/x' } }, reason: 'resource_out_of_scope' },
      { body: { tool: 'query_crm', arguments: { path: 'acme/x', tenant_id: 'globex' } }, reason: 'tenant_override' },
    ];
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const kind = kinds[i % 3]!;
      const id = callId(`mixed-${kind.reason}`);
      ids.push(id);
      expectDeny(h, await h.authorize('crm-mcp', { token, ...kind.body, call_id: id }), 403, kind.reason);
    }
    await expectNoAllowAnywhere(h, ids);
    const all = await summariesOnceWritten(h, 'acme', before + 1);
    const later = all.slice(before);
    const summarised = later.reduce((n, s) => n + s.denied, 0);
    const written = (await auditEvents(h, 'acme')).filter((e) => ids.includes(e.call_id)).length;
    // Every deny is accounted for: written one by one, or counted in a summary, never both, never neither.
    expect(written + summarised).toBe(ids.length);
    expect(written).toBeLessThanOrEqual(BUDGET * later.length + BUDGET);
    const reasons: Record<string, number> = {};
    for (const s of later) for (const [r, n] of Object.entries<number>(s.reasons)) reasons[r] = (reasons[r] ?? 0) + n;
    expect(Object.keys(reasons).every((r) => kinds.some((k) => k.reason === r))).toBe(true);
  });

  it('leaves another tenant\'s denies alone: each is written', async () => {
    const token = await h.token('globex-reader', 'crm-mcp');
    const ids = Array.from({ length: 20 }, (_, i) => callId(`globex-deny-${i}`));
    for (const id of ids) expectDeny(h, await h.authorize('crm-mcp', { token, tool: 'export_report', arguments: {}, call_id: id }), 403, 'tool_not_allowed');
    expect((await auditEvents(h, 'globex')).filter((e) => ids.includes(e.call_id))).toHaveLength(ids.length);
    expect(await summaries(h, 'globex')).toEqual([]);
  });

  it('leaks nothing', async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});

describe('on shutdown', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ overrides: (p) => (p.tenants.initech.quotas = { calls_per_minute: 100_000, concurrency: 64, audited_denies_per_minute: 2 }) });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('writes the pending summary when the broker stops, before its interval ended', async () => {
    const token = await h.token('initech-reader', 'crm-mcp');
    const ids = Array.from({ length: 12 }, (_, i) => callId(`before-stop-${i}`));
    for (const id of ids) expectDeny(h, await h.authorize('crm-mcp', { token, tool: 'send_email', arguments: {}, call_id: id }), 403, 'tool_not_allowed');
    expect(await summaries(h, 'initech')).toEqual([]);
    await h.restart();
    const [summary] = await summaries(h, 'initech');
    expect(summary).toMatchObject({ denied: ids.length - 2, reasons: { tool_not_allowed: ids.length - 2 } });
    expect((await auditEvents(h, 'initech')).filter((e) => ids.includes(e.call_id))).toHaveLength(2);
    expect((await h.get('/v1/audit/verify?tenant=initech', h.operatorToken)).body.ok).toBe(true);
    await expectNoAllowAnywhere(h, ids);
  });
});
