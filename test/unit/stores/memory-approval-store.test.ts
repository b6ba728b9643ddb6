import { MAX_LISTED_APPROVALS } from '../../../src/approvals/approval-store';
import { createMemoryApprovalStore } from '../../../src/approvals/memory-approval-store';

const call = { tenant: 'acme', principal: 'acme-agent', session: 'sess-1', tool: 'send_email', arguments_mac: 'a'.repeat(64), expires_at: 10_000 };
const consumeArgs = ['acme', 'sess-1', 'send_email', 'a'.repeat(64)] as const;

describe('memory approval store', () => {
  test('an approved call is used exactly once', async () => {
    const approvals = createMemoryApprovalStore();
    const pending = await approvals.request(call, 0);
    expect(pending.status).toBe('pending');
    expect(await approvals.consume(...consumeArgs, 1)).toBeNull();

    expect((await approvals.decide(pending.id, 'approved', 'ops', 1))?.status).toBe('approved');
    const used = await approvals.consume(...consumeArgs, 2);
    expect(used).toMatchObject({ id: pending.id, status: 'used', decided_by: 'ops' });
    expect(await approvals.consume(...consumeArgs, 3)).toBeNull();
    expect((await approvals.get(pending.id))?.status).toBe('used');
  });

  test('a repeated request for the same call reuses the open approval', async () => {
    const approvals = createMemoryApprovalStore();
    const first = await approvals.request(call, 0);
    expect((await approvals.request(call, 1)).id).toBe(first.id);
    await approvals.decide(first.id, 'approved', 'ops', 2);
    expect(await approvals.request(call, 3)).toMatchObject({ id: first.id, status: 'approved' });
  });

  test('a different session, tool or arguments hash is a different approval', async () => {
    const approvals = createMemoryApprovalStore();
    const first = await approvals.request(call, 0);
    const others = await Promise.all([
      approvals.request({ ...call, session: 'sess-2' }, 0),
      approvals.request({ ...call, tool: 'export_report' }, 0),
      approvals.request({ ...call, arguments_mac: 'b'.repeat(64) }, 0),
      approvals.request({ ...call, tenant: 'globex' }, 0),
    ]);
    expect(new Set([first.id, ...others.map((a) => a.id)]).size).toBe(5);
    await approvals.decide(first.id, 'approved', 'ops', 1);
    expect(await approvals.consume('acme', 'sess-1', 'send_email', 'b'.repeat(64), 2)).toBeNull();
    expect(await approvals.consume('globex', 'sess-1', 'send_email', 'a'.repeat(64), 2)).toBeNull();
  });

  test('only a pending approval can be decided, and not after it expires', async () => {
    const approvals = createMemoryApprovalStore();
    const a = await approvals.request(call, 0);
    expect(await approvals.decide(a.id, 'denied', 'ops', 1)).toMatchObject({ status: 'denied' });
    expect(await approvals.decide(a.id, 'approved', 'ops', 2)).toBeNull();
    expect(await approvals.decide('unknown', 'approved', 'ops', 2)).toBeNull();

    const b = await approvals.request(call, 3);
    expect(b.id).not.toBe(a.id);
    expect(await approvals.decide(b.id, 'approved', 'ops', call.expires_at)).toBeNull();
  });

  test('an approved call cannot be used after the approval expires', async () => {
    const approvals = createMemoryApprovalStore();
    const a = await approvals.request(call, 0);
    await approvals.decide(a.id, 'approved', 'ops', 1);
    expect(await approvals.consume(...consumeArgs, call.expires_at)).toBeNull();
    expect((await approvals.request(call, call.expires_at)).id).not.toBe(a.id);
  });

  test('ids come from the injected generator, and returned objects are copies', async () => {
    let n = 0;
    const approvals = createMemoryApprovalStore({ random: () => `id-${++n}` });
    const a = await approvals.request(call, 0);
    expect(a.id).toBe('id-1');
    a.status = 'approved';
    expect((await approvals.get('id-1'))?.status).toBe('pending');
  });

  test("lists only this tenant's pending, unexpired approvals, oldest first", async () => {
    let n = 0;
    const approvals = createMemoryApprovalStore({ random: () => `id-${++n}` });
    await approvals.request({ ...call, session: 'sess-late' }, 5);
    await approvals.request({ ...call, session: 'sess-early' }, 1);
    await approvals.request({ ...call, tenant: 'globex' }, 2);
    const decided = await approvals.request({ ...call, session: 'sess-denied' }, 3);
    await approvals.decide(decided.id, 'denied', 'ops', 4);
    const approved = await approvals.request({ ...call, session: 'sess-approved' }, 3);
    await approvals.decide(approved.id, 'approved', 'ops', 4);
    await approvals.request({ ...call, session: 'sess-short', expires_at: 6 }, 3);

    const acme = await approvals.listPending('acme', 6);
    expect(acme.map((a) => a.session)).toEqual(['sess-early', 'sess-late']);
    expect(acme.every((a) => a.tenant === 'acme' && a.status === 'pending')).toBe(true);
    expect((await approvals.listPending('globex', 6)).map((a) => a.tenant)).toEqual(['globex']);
    expect(await approvals.listPending('initech', 6)).toEqual([]);
    // Expiry counts: at expires_at an approval can no longer be decided, so it is not listed.
    expect(await approvals.listPending('acme', call.expires_at)).toEqual([]);
  });

  test('lists at most MAX_LISTED_APPROVALS, the oldest, and returns copies', async () => {
    const approvals = createMemoryApprovalStore();
    for (let i = 0; i < MAX_LISTED_APPROVALS + 5; i++) await approvals.request({ ...call, session: `s-${i}` }, i);
    const listed = await approvals.listPending('acme', 0);
    expect(listed).toHaveLength(MAX_LISTED_APPROVALS);
    expect(listed[0]!.session).toBe('s-0');
    expect(listed.at(-1)!.session).toBe(`s-${MAX_LISTED_APPROVALS - 1}`);
    listed[0]!.status = 'approved';
    expect((await approvals.get(listed[0]!.id))?.status).toBe('pending');
  });

  test('default ids are random UUIDs', async () => {
    const approvals = createMemoryApprovalStore();
    expect((await approvals.request(call, 0)).id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
