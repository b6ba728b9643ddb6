import { constants, readlinkSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent, AuditRecord } from '../../../src/audit/audit-log';
import { createFileAuditLog, type FileAuditLog } from '../../../src/audit/file-audit-log';
import { manualClock } from '../../../src/clock';

let dir: string;
const clock = manualClock(Date.parse('2025-01-01T00:00:00Z'));
const open: FileAuditLog[] = [];

function newLog(options: { maxBatch?: number } = {}): FileAuditLog {
  const log = createFileAuditLog({ dir, clock, ...options });
  open.push(log);
  return log;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulkhead-audit-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
  await rm(dir, { recursive: true, force: true });
});

test('1000 concurrent appends across 3 tenants are gap-free per tenant, verify, and share few fsyncs', async () => {
  const log = newLog({ maxBatch: 200 });
  const tenants = ['acme', 'globex', 'initech'];
  const records = await Promise.all(
    Array.from({ length: 1000 }, (_, i) => log.append(tenants[i % 3], { type: 'authorize', decision: 'allow', call_id: `call-${i}` })),
  );
  for (const tenant of tenants) {
    const seqs = records.filter((r) => r.tenant === tenant).map((r) => r.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    const result = await log.verify(tenant);
    expect(result).toMatchObject({ ok: true, events: seqs.length });
  }
  // Each promise resolved with the record its own call produced.
  records.forEach((r, i) => expect(r.call_id).toBe(`call-${i}`));
  const { batches, records: written, failedBatches } = log.stats();
  expect(written).toBe(1000);
  expect(failedBatches).toBe(0);
  // One O_DSYNC write per batch; a batch holds at most 200 of one tenant's records.
  expect(batches).toBeGreaterThanOrEqual(6);
  expect(batches).toBeLessThan(50);
});

test('an append resolves only once its record is in the file', async () => {
  const log = newLog();
  const record = await log.append('acme', { type: 'token', principal: 'acme-agent' });
  const onDisk = (await readFile(join(dir, 'acme.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
  expect(onDisk).toEqual([record]);
});

test('a new instance on the same directory continues each chain where it ended', async () => {
  const first = newLog();
  for (let i = 0; i < 3; i += 1) await first.append('acme', { type: 'token' });
  const last = await first.append('globex', { type: 'token' });
  await first.close();

  const second = newLog();
  const next = await second.append('globex', { type: 'revoke', operator: 'ops' });
  expect(next.seq).toBe(2);
  expect(next.prev_hash).toBe(last.hash);
  expect((await second.append('acme', { type: 'token' })).seq).toBe(4);
  expect(await second.verify('acme')).toMatchObject({ ok: true, events: 4 });
  expect(await second.verify('globex')).toMatchObject({ ok: true, events: 2, head: expect.any(String) });
  expect(await second.tenants()).toEqual(['acme', 'globex']);
});

test('close() writes out everything still queued', async () => {
  const log = newLog();
  const pending = Array.from({ length: 20 }, () => log.append('acme', { type: 'complete', status: 'success' }));
  await log.close();
  expect((await Promise.all(pending)).map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  await expect(log.append('acme', { type: 'token' })).rejects.toMatchObject({ reason: 'audit_unavailable' });
});

test('read() pages one tenant by seq and never returns another tenant\'s records', async () => {
  const log = newLog();
  for (let i = 1; i <= 6; i += 1) {
    await log.append('acme', { type: 'authorize', tool: `t${i}` });
    await log.append('globex', { type: 'authorize', tool: `g${i}` });
  }
  const page = await log.read('acme', { afterSeq: 2, limit: 3 });
  expect(page.map((r) => [r.tenant, r.seq, r.tool])).toEqual([['acme', 3, 't3'], ['acme', 4, 't4'], ['acme', 5, 't5']]);
  expect((await log.read('globex')).every((r) => r.tenant === 'globex')).toBe(true);
  expect(await log.read('nobody')).toEqual([]);
  expect(await log.verify('nobody')).toMatchObject({ ok: true, events: 0 });
});

test('only known event fields are recorded: a stray field (a secret by mistake) is dropped', async () => {
  const log = newLog();
  const event = { type: 'authorize', decision: 'allow', credential_ref: 'local:acme/crm', value: 'sk-live-SECRET' } as AuditEvent;
  const record = await log.append('acme', event);
  expect(record).not.toHaveProperty('value');
  expect(await readFile(join(dir, 'acme.jsonl'), 'utf8')).not.toContain('sk-live-SECRET');
  expect(await log.verify('acme')).toMatchObject({ ok: true, events: 1 });
});

test('a tenant id that could name another path is refused and creates no file', async () => {
  const log = newLog();
  for (const bad of ['../acme', 'a/b', 'a..b', 'a\0b', '', '.hidden']) {
    await expect(log.append(bad, { type: 'token' })).rejects.toMatchObject({ reason: 'bad_request' });
    await expect(log.verify(bad)).rejects.toMatchObject({ reason: 'bad_request' });
  }
  await expect(stat(dir)).resolves.toBeDefined();
  expect(await log.tenants()).toEqual([]);
});

test('audit files are created 0600 in a 0700 directory', async () => {
  const sub = join(dir, 'audit');
  const log = createFileAuditLog({ dir: sub, clock });
  open.push(log);
  await log.append('acme', { type: 'token' });
  expect((await stat(sub)).mode & 0o777).toBe(0o700);
  expect((await stat(join(sub, 'acme.jsonl'))).mode & 0o777).toBe(0o600);
});

test('the descriptor a batch is written through is O_DSYNC: the write itself is the durability point', async () => {
  const log = newLog();
  await log.append('acme', { type: 'token' });
  const path = join(dir, 'acme.jsonl');
  // The kernel's own view of this process's descriptors (Linux): which one names the file, with which flags.
  const fds = (await readdir('/proc/self/fd')).filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  });
  expect(fds).toHaveLength(1);
  const flags = parseInt(/^flags:\s+([0-7]+)$/m.exec(await readFile(`/proc/self/fdinfo/${fds[0]}`, 'utf8'))![1]!, 8);
  expect(flags & constants.O_DSYNC).toBe(constants.O_DSYNC);
  expect(flags & constants.O_APPEND).toBe(constants.O_APPEND);
});
