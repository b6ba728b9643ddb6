import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualClock } from '../../../src/clock';
import { createMemorySessionStore, QUARANTINE_FILE } from '../../../src/sessions/memory-session-store';
import type { CallRecord } from '../../../src/sessions/session-store';

const call = (over: Partial<CallRecord> = {}): CallRecord => ({
  call_id: 'call-1',
  server: 'crm-mcp',
  tenant: 'acme',
  principal: 'acme-agent',
  session: 'sess-1',
  tool: 'query_crm',
  lease_ids: [],
  started_at: 0,
  ...over,
});

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'bulkhead-sessions-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('memory session store', () => {
  test('live sessions count only unexpired sessions of that tenant', async () => {
    const clock = manualClock(0);
    const sessions = createMemorySessionStore({ clock });
    await sessions.touch('acme', 's1', 10_000);
    await sessions.touch('acme', 's2', 20_000);
    await sessions.touch('globex', 's3', 20_000);
    expect(await sessions.liveSessions('acme', 5_000)).toBe(2);
    expect(await sessions.liveSessions('acme', 10_000)).toBe(1);
    expect(await sessions.liveSessions('acme', 20_000)).toBe(0);
  });

  test("names a session's tenant among the ones asked about, and only a tenant that has it", async () => {
    const sessions = createMemorySessionStore({ clock: manualClock(0) });
    await sessions.touch('acme', 's1', 10_000);
    await sessions.touch('globex', 's2', 10_000);
    expect(await sessions.tenantOfSession('s1', ['globex', 'acme'])).toBe('acme');
    expect(await sessions.tenantOfSession('s1', ['globex'])).toBeNull();
    expect(await sessions.tenantOfSession('unknown', ['acme', 'globex'])).toBeNull();
  });

  test('a later touch with an older token never shortens a session', async () => {
    const sessions = createMemorySessionStore({ clock: manualClock(0) });
    await sessions.touch('acme', 's1', 20_000);
    await sessions.touch('acme', 's1', 10_000);
    expect(await sessions.liveSessions('acme', 15_000)).toBe(1);
  });

  test('quarantine is per tenant and session', async () => {
    const sessions = createMemorySessionStore({ clock: manualClock(0) });
    await sessions.quarantine('acme', 's1', 'too many records');
    expect(await sessions.isQuarantined('acme', 's1')).toBe(true);
    expect(await sessions.isQuarantined('acme', 's2')).toBe(false);
    expect(await sessions.isQuarantined('globex', 's1')).toBe(false);
  });

  test('with a data dir, a quarantined session stays quarantined across restart', async () => {
    const first = createMemorySessionStore({ clock: manualClock(0), dataDir });
    await first.quarantine('acme', 's1', 'too many records');
    await first.close();
    const second = createMemorySessionStore({ clock: manualClock(0), dataDir });
    await second.ready();
    expect(await second.isQuarantined('acme', 's1')).toBe(true);
    expect(await second.isQuarantined('acme', 's2')).toBe(false);
    await second.close();
  });

  test('a damaged quarantine file fails closed instead of forgetting quarantines', async () => {
    await writeFile(join(dataDir, QUARANTINE_FILE), '{"tenant":"acme"}\n');
    const sessions = createMemorySessionStore({ clock: manualClock(0), dataDir });
    await expect(sessions.ready()).rejects.toThrow(`${QUARANTINE_FILE}:1`);
    await expect(sessions.isQuarantined('acme', 's1')).rejects.toThrow();
  });

  test('a call is taken exactly once', async () => {
    const sessions = createMemorySessionStore({ clock: manualClock(0) });
    await sessions.putCall(call(), 60_000);
    expect(await sessions.takeCall('call-1')).toEqual(call());
    expect(await sessions.takeCall('call-1')).toBeNull();
  });

  test('a call past its TTL cannot be taken', async () => {
    const clock = manualClock(0);
    const sessions = createMemorySessionStore({ clock });
    await sessions.putCall(call(), 1_000);
    clock.advance(1_000);
    expect(await sessions.takeCall('call-1')).toBeNull();
  });

  test('a live call id cannot be overwritten by another call', async () => {
    const sessions = createMemorySessionStore({ clock: manualClock(0) });
    await sessions.putCall(call(), 60_000);
    await expect(sessions.putCall(call({ tenant: 'globex' }), 60_000)).rejects.toMatchObject({ reason: 'bad_request' });
    expect((await sessions.takeCall('call-1'))?.tenant).toBe('acme');
  });

  test('changing a record after put or take does not change what the store holds', async () => {
    const sessions = createMemorySessionStore({ clock: manualClock(0) });
    const record = call({ lease_ids: ['lease-a'] });
    await sessions.putCall(record, 60_000);
    record.lease_ids.push('lease-b');
    record.tenant = 'globex';
    const [held] = await sessions.leasesOf({ tenant: 'acme' });
    held!.lease_ids.length = 0;
    expect(await sessions.leasesOf({ tenant: 'acme' })).toEqual([call({ lease_ids: ['lease-a'] })]);
  });

  test('leasesOf returns only live calls holding leases that match the filter', async () => {
    const clock = manualClock(0);
    const sessions = createMemorySessionStore({ clock });
    await sessions.putCall(call({ call_id: 'a', lease_ids: ['l-a'] }), 60_000);
    await sessions.putCall(call({ call_id: 'b', session: 'sess-2', lease_ids: ['l-b'] }), 60_000);
    await sessions.putCall(call({ call_id: 'c', principal: 'other', lease_ids: ['l-c'] }), 60_000);
    await sessions.putCall(call({ call_id: 'd', tenant: 'globex', lease_ids: ['l-d'] }), 60_000);
    await sessions.putCall(call({ call_id: 'e' }), 60_000);
    await sessions.putCall(call({ call_id: 'f', lease_ids: ['l-f'] }), 1_000);
    clock.advance(1_000);

    const ids = async (filter: Parameters<typeof sessions.leasesOf>[0]) => (await sessions.leasesOf(filter)).map((c) => c.call_id).sort();
    expect(await ids({ tenant: 'acme' })).toEqual(['a', 'b', 'c']);
    expect(await ids({ tenant: 'acme', session: 'sess-2' })).toEqual(['b']);
    expect(await ids({ tenant: 'acme', principal: 'other' })).toEqual(['c']);
    expect(await ids({ tenant: 'globex' })).toEqual(['d']);
  });
});

describe('principals seen and quarantine review', () => {
  test('a principal is known while it holds a live token, and only in its own tenant', async () => {
    const clock = manualClock(0);
    const sessions = createMemorySessionStore({ clock });
    await sessions.touch('acme', 's1', 10_000, 'federated-7');
    expect(await sessions.hasLivePrincipal('acme', 'federated-7', 5_000)).toBe(true);
    expect(await sessions.hasLivePrincipal('globex', 'federated-7', 5_000)).toBe(false);
    expect(await sessions.hasLivePrincipal('acme', 'Federated-7', 5_000)).toBe(false);
    expect(await sessions.hasLivePrincipal('acme', 'federated-7', 10_000)).toBe(false);
  });

  test('quarantines are listed per tenant with their reason; a lift is durable and replayed, and lifts only that session', async () => {
    const clock = manualClock(1_000);
    const first = createMemorySessionStore({ clock, dataDir });
    await first.quarantine('acme', 's1', 'call c1 returned 5000 records (max 1000)');
    await first.quarantine('acme', 's2', 'call c2 returned 2000 records (max 1000)');
    await first.quarantine('globex', 's1', 'call c3 returned 9 records (max 1)');
    expect((await first.quarantines('acme')).map((q) => q.session)).toEqual(['s1', 's2']);
    expect(await first.quarantines()).toHaveLength(3);
    expect(await first.liftQuarantine('acme', 's1')).toEqual({ tenant: 'acme', session: 's1', reason: 'call c1 returned 5000 records (max 1000)', at: 1_000 });
    expect(await first.liftQuarantine('acme', 's1')).toBeNull();
    expect(await first.isQuarantined('acme', 's1')).toBe(false);
    expect(await first.isQuarantined('globex', 's1')).toBe(true);
    await first.close();

    const second = createMemorySessionStore({ clock, dataDir });
    expect(await second.isQuarantined('acme', 's1')).toBe(false);
    expect(await second.isQuarantined('acme', 's2')).toBe(true);
    expect(await second.isQuarantined('globex', 's1')).toBe(true);
    // Quarantined again after the lift: the newer line wins on replay.
    await second.quarantine('acme', 's1', 'again');
    await second.close();
    const third = createMemorySessionStore({ clock, dataDir });
    expect(await third.isQuarantined('acme', 's1')).toBe(true);
    await third.close();
  });
});
