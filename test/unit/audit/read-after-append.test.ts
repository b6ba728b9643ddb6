import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from '../../../src/audit/audit-log';
import { createFileAuditLog } from '../../../src/audit/file-audit-log';
import { readingAfterAppends } from '../../../src/audit/read-after-append';
import { manualClock } from '../../../src/clock';

/**
 * An allow on an upstream credential is answered on its durable intent, its allow record lands a batch
 * later: a read that starts after the append must still see it, whoever awaited it.
 */
const intent = (call_id: string): AuditEvent => ({ type: 'authorize', decision: 'intent', call_id, tool: 'query_crm' });
const allow = (call_id: string): AuditEvent => ({ type: 'authorize', decision: 'allow', call_id, tool: 'query_crm' });

describe('reads after appends (audit/read-after-append.ts)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-read-after-append-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  const open = () => {
    const raw = createFileAuditLog({ dir, clock: manualClock(Date.parse('2026-12-03T00:00:00Z')), groupCommitMs: 0 });
    return { raw, log: readingAfterAppends(raw) };
  };

  test('a read or verify started after an append sees its record, though nobody awaited it', async () => {
    const { raw, log } = open();
    await log.append('acme', intent('c1'));
    void log.append('acme', allow('c1'));
    // The plain log reads what it has acknowledged: the allow is still being written.
    expect((await raw.read('acme')).map((r) => r.decision)).toEqual(['intent']);
    void log.append('acme', intent('c2'));
    void log.append('acme', allow('c2'));
    expect((await log.read('acme')).map((r) => [r.call_id, r.decision])).toEqual([
      ['c1', 'intent'],
      ['c1', 'allow'],
      ['c2', 'intent'],
      ['c2', 'allow'],
    ]);
    void log.append('acme', intent('c3'));
    expect(await log.verify('acme')).toMatchObject({ ok: true, events: 5, unfinished: [{ seq: 5, call_id: 'c3' }] });
    // Another tenant's reads do not wait for acme's appends, and see none of them.
    expect(await log.read('globex')).toEqual([]);
    await raw.close();
  });

  test('a failed append does not stall later reads', async () => {
    const { raw, log } = open();
    await log.append('acme', intent('c1'));
    await raw.close();
    await expect(log.append('acme', allow('c1'))).rejects.toMatchObject({ reason: 'audit_unavailable' });
    expect((await log.read('acme')).map((r) => r.decision)).toEqual(['intent']);
  });

  test("settled() waits for every tenant's appends made so far (what the shutdown checkpoint signs)", async () => {
    const { raw, log } = open();
    void log.append('acme', intent('a1'));
    void log.append('acme', allow('a1'));
    void log.append('globex', intent('g1'));
    await log.settled();
    // The plain log, which reads only what it acknowledged, has every one of them.
    expect((await raw.read('acme')).map((r) => r.decision)).toEqual(['intent', 'allow']);
    expect((await raw.read('globex')).map((r) => r.decision)).toEqual(['intent']);
    await log.settled();
    await raw.close();
  });
});
