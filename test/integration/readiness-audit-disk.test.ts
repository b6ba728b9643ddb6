import { randomBytes } from 'node:crypto';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { startHarness, type Harness } from '../support/broker-harness';
import { describeWithTmpfs, mountTmpfs, type Tmpfs } from '../support/tmpfs';
import { until } from '../support/until';

/**
 * /readyz tells the truth about the audit writer: when authorize would fail closed for everyone because
 * no record can be made durable, a load balancer must stop sending traffic here — and send it again
 * once the fault is gone, with no restart (the writer re-probes the disk when asked). The data dir is a
 * tmpfs of the test's own, so the disk really says ENOSPC; this needs root, and fails (never skips)
 * where it cannot mount under BULKHEAD_REQUIRE_UPSTREAMS=1 or CI.
 */
jest.setTimeout(60_000);

const TENANT_IDS = /acme|globex|initech/;

describeWithTmpfs('readiness follows the audit writer: a full disk, a vanished audit directory', () => {
  let fs: Tmpfs;
  let h: Harness;
  const readyz = () => h.get('/readyz');

  beforeAll(async () => {
    fs = mountTmpfs(4 << 20);
    h = await startHarness({ dataDir: fs.dir });
  });
  afterAll(async () => {
    await h?.close();
    fs?.unmount();
  });

  test('disk full: /readyz 503 naming the audit, authorize a typed 503; both back once space is freed, no allow without its record', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const query = (callId: string) => h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: callId });
    const allowed: string[] = [];
    const first = `before-${randomBytes(3).toString('hex')}`;
    expect((await query(first)).status).toBe(200);
    allowed.push(first);
    const ready = await readyz();
    expect([ready.status, ready.body.checks.audit, ready.body.checks.signing_key, ready.body.degraded_tenants]).toEqual([200, true, true, 0]);

    fs.fill();
    // The last block of the audit file may take a few more records; then every call is refused.
    let refused: { status: number; body: any } | undefined;
    for (let i = 0; i < 200 && !refused; i++) {
      const callId = `full-${i}-${randomBytes(3).toString('hex')}`;
      const answer = await query(callId);
      if (answer.status === 200) allowed.push(callId);
      else refused = answer;
    }
    expect(refused).toMatchObject({ status: 503, body: { reason: 'audit_unavailable' } });

    const down = await readyz();
    expect([down.status, down.body.status, down.body.checks.audit]).toEqual([503, 'not_ready', false]);
    expect(down.body.problems.audit).toMatch(/ENOSPC/);
    // A platform endpoint: no tenant id, not even inside a path.
    expect(JSON.stringify(down.body)).not.toMatch(TENANT_IDS);
    // Asking again re-probes, and the disk is still full: still not ready, and calls are still refused.
    expect((await readyz()).status).toBe(503);
    expect((await query(`still-${randomBytes(3).toString('hex')}`)).body.reason).toBe('audit_unavailable');

    fs.free();
    // No call is needed to recover: the probe behind /readyz finds the space.
    const back = await readyz();
    expect([back.status, back.body.checks.audit, back.body.problems]).toEqual([200, true, undefined]);
    const after = `after-${randomBytes(3).toString('hex')}`;
    expect((await query(after)).status).toBe(200);
    allowed.push(after);

    // Every allow that was answered has its record on disk, also after a restart; none that was refused.
    await h.restart();
    const events = (await h.get('/v1/audit?tenant=acme', h.operatorToken)).body.events as Array<{ call_id?: string; decision?: string }>;
    const allowRecords = events.filter((e) => e.decision === 'allow').map((e) => e.call_id);
    expect(allowRecords).toEqual(allowed);
    expect((await h.get('/v1/audit/verify?tenant=acme', h.operatorToken)).body).toMatchObject({ ok: true });
  });

  test('the audit directory vanishes: /readyz 503 at once (the writer never recreates it), back when it returns', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const query = () => h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' } });
    expect((await query()).status).toBe(200);
    const auditDir = join(fs.dir, 'audit');
    await rename(auditDir, `${auditDir}.away`);

    const down = await readyz();
    expect([down.status, down.body.checks.audit]).toEqual([503, false]);
    expect(down.body.problems.audit).toMatch(/audit directory is missing/);
    expect(JSON.stringify(down.body)).not.toMatch(TENANT_IDS);
    const refused = await query();
    expect([refused.status, refused.body.reason]).toEqual([503, 'audit_unavailable']);
    // Still gone: not recreated behind our back by the refused call.
    expect((await readyz()).status).toBe(503);

    await rename(`${auditDir}.away`, auditDir);
    await until(async () => (await readyz()).status === 200, '/readyz did not come back after the audit directory returned');
    expect((await query()).status).toBe(200);
    expect((await h.get('/v1/audit/verify?tenant=acme', h.operatorToken)).body).toMatchObject({ ok: true });
  });
});
