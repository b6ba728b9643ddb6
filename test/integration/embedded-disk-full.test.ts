import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REVOCATIONS_FILE } from '../../src/revocation/file-revocation-store';
import { QUARANTINE_FILE } from '../../src/sessions/memory-session-store';
import { startHarness, type Harness } from '../support/broker-harness';
import { describeWithTmpfs, mountTmpfs, type Tmpfs } from '../support/tmpfs';

/**
 * The embedded broker on a data dir that fills up and is freed again (a tmpfs of the test's own, so the
 * disk really says ENOSPC). While the disk is full every answer is a typed 503 that tells the truth;
 * once it is freed the broker serves again without a restart; and a restart afterwards finds exactly
 * what was acknowledged:
 * - a revoke answered 503 "nothing was revoked" is indeed not in effect, then or after a restart, and
 *   the revocation journal takes writes again once there is space (the failed line cut away);
 * - the anomaly rule (`max_records`) answers 503, not 500, and its quarantine is reported done only once
 *   durable, on the retry;
 * - a call refused 503 `audit_unavailable` leaves nothing behind: its call_id is free for the retry, and
 *   /v1/complete on it is 404, never a completion audited for a call that was never allowed.
 */
jest.setTimeout(60_000);

const sid = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sid as string;
const longReason = (tag: string) => `${tag} `.padEnd(500, 'x');

describeWithTmpfs('embedded broker on a full disk: typed 503s, recovery without a restart, durable state after', () => {
  let fs: Tmpfs;
  let h: Harness;
  const revoke = (body: Record<string, unknown>) => h.post('/v1/revoke', body, h.operatorToken);
  const complete = (body: Record<string, unknown>) => h.post('/v1/complete', body, h.serverKeys['crm-mcp']);
  const journalBytes = (file: string) => statSync(join(fs.dir, file)).size;

  beforeAll(async () => {
    fs = mountTmpfs(4 << 20);
    h = await startHarness({ dataDir: fs.dir });
  });
  afterAll(async () => {
    await h?.close();
    fs?.unmount();
  });

  test('full, freed, restarted', async () => {
    const doomed = await h.token('acme-agent', 'crm-mcp');
    const exporter = await h.token('acme-agent', 'crm-mcp');
    const caller = await h.token('acme-agent', 'crm-mcp');
    const query = (token: string, callId?: string) => h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' }, ...(callId ? { call_id: callId } : {}) });

    expect((await query(doomed)).status).toBe(200);
    // Revocations with long reasons before the fault, until the next line only partly fits the journal's
    // last 4 KiB block: the failed write below then leaves a torn line, which must not survive.
    let padding = 0;
    while (padding === 0 || journalBytes(REVOCATIONS_FILE) % 4096 < 3600) {
      expect((await revoke({ jti: `padding-${padding}`, reason: longReason(`pad ${padding}`), force: true })).status).toBe(200);
      padding++;
    }
    const exportCall = await h.authorize('crm-mcp', { token: exporter, tool: 'export_report', arguments: {}, call_id: 'export-1' });
    expect(exportCall.status).toBe(200);
    const revocationsBefore = journalBytes(REVOCATIONS_FILE);

    fs.fill();

    // 1. The revoke cannot be stored: it says so, and it is true (checked after the disk is freed).
    const refusedRevoke = await revoke({ session: sid(doomed), reason: longReason('doomed') });
    expect([refusedRevoke.status, refusedRevoke.body.error]).toEqual([503, 'state_unavailable']);
    expect(refusedRevoke.body.message).toMatch(/nothing was revoked/);
    expect(journalBytes(REVOCATIONS_FILE)).toBe(revocationsBefore);

    // 2. Calls: the audit file's last block fills up within a few records, then every call is refused.
    const attempts: Array<{ callId: string; status: number; reason?: string }> = [];
    // A completion that cannot be audited is refused too, and its call stays open for the retry.
    const stillOpen: string[] = [];
    for (let i = 0; i < 200 && !attempts.some((a) => a.status === 503); i++) {
      const callId = `call-${i}-${randomBytes(3).toString('hex')}`;
      const answer = await query(caller, callId);
      attempts.push({ callId, status: answer.status, reason: answer.body.reason });
      if (answer.status !== 200) continue;
      const done = await complete({ call_id: callId, status: 'success' });
      if (done.status === 200) continue;
      expect([done.status, done.body.error]).toEqual([503, 'audit_unavailable']);
      stillOpen.push(callId);
    }
    const refused = attempts.find((a) => a.status === 503)!;
    expect(refused).toMatchObject({ status: 503, reason: 'audit_unavailable' });
    expect(attempts.filter((a) => a.status !== 200 && a.status !== 503)).toEqual([]);
    // The refused call is not open: nothing to complete.
    expect((await complete({ call_id: refused.callId, status: 'success' })).status).toBe(404);

    // 3. The anomaly rule: a typed 503, never 500, and the call stays open for the retry.
    const anomaly = await complete({ call_id: 'export-1', status: 'success', records: 5000 });
    expect(anomaly.status).toBe(503);
    expect(['state_unavailable', 'audit_unavailable']).toContain(anomaly.body.error);
    // Not durable yet, but in effect on the hot path: the session gets nothing meanwhile.
    const meanwhile = await h.authorize('crm-mcp', { token: exporter, tool: 'query_crm', arguments: { path: 'acme/x' } });
    expect(meanwhile.status).not.toBe(200);

    fs.free();

    // Recovery, no restart. The revoke that answered 503 revoked nothing...
    expect((await query(doomed)).status).toBe(200);
    // ...and the journal takes writes again.
    expect((await revoke({ session: sid(doomed), reason: longReason('doomed') })).status).toBe(200);
    expect((await query(doomed)).body.reason).toBe('session_revoked');
    for (const callId of stillOpen) expect((await complete({ call_id: callId, status: 'success' })).status).toBe(200);
    // The refused call id is free, and completes normally.
    expect((await query(caller, refused.callId)).status).toBe(200);
    expect((await complete({ call_id: refused.callId, status: 'success' })).status).toBe(200);
    // The anomaly's retry stores the quarantine, and only now reports it.
    const retried = await complete({ call_id: 'export-1', status: 'success', records: 5000 });
    expect([retried.status, retried.body.quarantined]).toEqual([200, true]);
    expect((await complete({ call_id: 'export-1', status: 'success', records: 5000 })).status).toBe(404);

    const assertDurableState = async () => {
      expect((await query(doomed)).body.reason).toBe('session_revoked');
      expect((await h.authorize('crm-mcp', { token: exporter, tool: 'query_crm', arguments: { path: 'acme/x' } })).body.reason).toBe('session_quarantined');
      expect((await query(caller)).status).toBe(200);
      expect((await h.get('/v1/audit/verify?tenant=acme', h.operatorToken)).body).toMatchObject({ ok: true });
      const events = (await h.get('/v1/audit?tenant=acme', h.operatorToken)).body.events as Array<{ type: string; call_id?: string; decision?: string }>;
      // The refused attempt left no record: one allow and one completion, both from the retry.
      expect(events.filter((e) => e.call_id === refused.callId).map((e) => [e.type, e.decision])).toEqual([
        ['authorize', 'allow'],
        ['complete', undefined],
      ]);
      expect(events.filter((e) => e.call_id === 'export-1').map((e) => e.type)).toEqual(['authorize', 'complete', 'quarantine']);
      // On disk: the padding revocations and the session's, nothing of the refused attempt.
      const revocations = readFileSync(join(fs.dir, REVOCATIONS_FILE), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      expect(revocations.map((r) => r.target.kind)).toEqual([...Array(padding).fill('jti'), 'session']);
      expect(readFileSync(join(fs.dir, QUARANTINE_FILE), 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
    };
    await assertDurableState();
    await h.restart();
    await assertDurableState();
  });
});
