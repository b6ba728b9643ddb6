import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileAuditLog } from '../../../src/audit/file-audit-log';
import { manualClock } from '../../../src/clock';

// Default group commit: no timer. Appends made in the same turn of the event loop share one write and
// one O_DSYNC write; appends made while a batch is being written go into the next one.
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulkhead-audit-idle-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('appends made together share one batch', async () => {
  const log = createFileAuditLog({ dir, clock: manualClock(0) });
  try {
    const records = await Promise.all(Array.from({ length: 25 }, (_, i) => log.append('acme', { type: 'authorize', decision: 'allow', call_id: `c${i}` })));
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(log.stats()).toMatchObject({ records: 25, batches: 1, failedBatches: 0 });
  } finally {
    await log.close();
  }
});

test('an append made while a batch is being written waits for the next batch, and both are durable in order', async () => {
  const log = createFileAuditLog({ dir, clock: manualClock(0) });
  try {
    const first = log.append('acme', { type: 'token' });
    // The first batch has started (its flush was scheduled for the end of this turn) before this append.
    await new Promise((resolve) => setImmediate(resolve));
    const second = log.append('acme', { type: 'token' });
    expect((await first).seq).toBe(1);
    expect((await second).seq).toBe(2);
    expect(log.stats().batches).toBe(2);
    expect(await log.verify('acme')).toMatchObject({ ok: true, events: 2 });
  } finally {
    await log.close();
  }
});
