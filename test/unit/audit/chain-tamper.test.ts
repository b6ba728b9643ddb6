import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENESIS_HASH, type AuditRecord } from '../../../src/audit/audit-log';
import { buildRecord, recordHash } from '../../../src/audit/chain';
import { createFileAuditLog, type FileAuditLog } from '../../../src/audit/file-audit-log';
import { manualClock } from '../../../src/clock';

/** Every way of editing a stored chain must be caught, and the first broken record named. */

let dir: string;
const clock = manualClock(Date.parse('2025-01-01T00:00:00Z'));
const open: FileAuditLog[] = [];

function newLog(): FileAuditLog {
  const log = createFileAuditLog({ dir, clock, groupCommitMs: 0 });
  open.push(log);
  return log;
}

async function writeTen(tenant = 'acme'): Promise<AuditRecord[]> {
  const log = newLog();
  const records: AuditRecord[] = [];
  // One at a time, so each record is its own batch and order is certain.
  for (let i = 1; i <= 10; i += 1) {
    clock.advance(1000);
    records.push(await log.append(tenant, { type: 'authorize', decision: 'allow', tool: `tool_${i}`, call_id: `c${i}` }));
  }
  await log.close();
  return records;
}

const file = (tenant = 'acme') => join(dir, `${tenant}.jsonl`);
async function lines(tenant = 'acme'): Promise<string[]> {
  return (await readFile(file(tenant), 'utf8')).split('\n').filter((l) => l !== '');
}
async function rewrite(newLines: string[], tenant = 'acme'): Promise<void> {
  await writeFile(file(tenant), newLines.map((l) => l + '\n').join(''));
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulkhead-audit-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
  await rm(dir, { recursive: true, force: true });
});

test('an untouched chain verifies, starts at GENESIS and links every record to the one before', async () => {
  const records = await writeTen();
  expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  expect(records[0].prev_hash).toBe(GENESIS_HASH);
  for (let i = 1; i < records.length; i += 1) expect(records[i].prev_hash).toBe(records[i - 1].hash);
  for (const r of records) expect(r.hash).toBe(recordHash(r));
  const result = await newLog().verify('acme');
  expect(result).toEqual({ ok: true, events: 10, head: records[9].hash });
});

test('editing any field of a middle record is caught at that record', async () => {
  await writeTen();
  const original = await lines();
  for (const [field, value] of [['tool', 'export_report'], ['decision', 'deny'], ['ts', '2030-01-01T00:00:00.000Z'], ['call_id', 'x']] as const) {
    const edited = [...original];
    edited[4] = JSON.stringify({ ...JSON.parse(edited[4]), [field]: value });
    await rewrite(edited);
    const result = await newLog().verify('acme');
    expect(result.ok).toBe(false);
    expect(result.broken).toEqual({ seq: 5, problem: expect.stringMatching(/hash does not match/) });
    expect(result.events).toBe(4);
  }
});

test('editing the hash, prev_hash, seq or tenant of a middle record is caught at that record', async () => {
  await writeTen();
  const original = await lines();
  const cases: Array<[string, unknown, RegExp]> = [
    ['hash', 'f'.repeat(64), /hash does not match/],
    ['prev_hash', 'e'.repeat(64), /prev_hash/],
    ['seq', 50, /seq out of order/],
    ['tenant', 'globex', /tenant field/],
  ];
  for (const [field, value, problem] of cases) {
    const edited = [...original];
    edited[4] = JSON.stringify({ ...JSON.parse(edited[4]), [field]: value });
    await rewrite(edited);
    expect((await newLog().verify('acme')).broken).toEqual({ seq: 5, problem: expect.stringMatching(problem) });
  }
});

test('deleting a middle line is caught at the missing seq', async () => {
  await writeTen();
  const edited = await lines();
  edited.splice(4, 1);
  await rewrite(edited);
  const result = await newLog().verify('acme');
  expect(result.broken).toEqual({ seq: 5, problem: 'seq out of order: expected 5, found 6' });
});

test('swapping two lines is caught at the first of them', async () => {
  await writeTen();
  const edited = await lines();
  [edited[4], edited[5]] = [edited[5], edited[4]];
  await rewrite(edited);
  expect((await newLog().verify('acme')).broken).toEqual({ seq: 5, problem: 'seq out of order: expected 5, found 6' });
});

test('inserting a forged line is caught where it was inserted, even when the forger recomputed its hash', async () => {
  await writeTen();
  const original = await lines();
  const fifth = JSON.parse(original[4]) as AuditRecord;

  // A naive forgery: a copy of record 6 with a different tool.
  const naive = [...original];
  naive.splice(5, 0, JSON.stringify({ ...JSON.parse(original[5]), tool: 'send_email' }));
  await rewrite(naive);
  expect((await newLog().verify('acme')).broken).toEqual({ seq: 6, problem: expect.stringMatching(/hash does not match/) });

  // A careful forgery: a well-formed record 6 chained onto record 5, inserted before the real record 6.
  const forged = buildRecord('acme', { seq: 5, hash: fifth.hash }, fifth.ts, { type: 'authorize', decision: 'allow', tool: 'send_email' });
  const careful = [...original];
  careful.splice(5, 0, JSON.stringify(forged));
  await rewrite(careful);
  expect((await newLog().verify('acme')).broken).toEqual({ seq: 6, problem: 'two records claim seq 6: one was inserted' });
});

test('a record copied in from another tenant is caught by its tenant field', async () => {
  await writeTen('acme');
  await writeTen('globex');
  const acme = await lines('acme');
  const globex = await lines('globex');
  acme[4] = globex[4];
  await rewrite(acme, 'acme');
  expect((await newLog().verify('acme')).broken).toEqual({ seq: 5, problem: expect.stringMatching(/tenant field/) });
});

test('an unparsable line is caught at its position', async () => {
  await writeTen();
  const edited = await lines();
  edited[6] = '{"seq": 7, "tenant": "acme"';
  await rewrite(edited);
  expect((await newLog().verify('acme')).broken).toEqual({ seq: 7, problem: 'unparsable line' });
});

test('a running log notices records cut from the end, which the chain alone cannot show', async () => {
  const log = newLog();
  for (let i = 0; i < 5; i += 1) await log.append('acme', { type: 'token' });
  const kept = (await lines()).slice(0, 3);
  await rewrite(kept);
  expect(await newLog().verify('acme')).toMatchObject({ ok: true, events: 3 }); // a fresh reader cannot tell
  expect((await log.verify('acme')).broken).toEqual({ seq: 4, problem: 'records after seq 3 are missing' });
});

test('a running log notices a chain recomputed from a middle record on', async () => {
  const log = newLog();
  for (let i = 0; i < 5; i += 1) await log.append('acme', { type: 'authorize', decision: 'deny', reason: 'tool_not_allowed' });
  const original = await lines();
  const third = JSON.parse(original[2]) as AuditRecord;
  let head = { seq: 3, hash: third.hash };
  const rewritten = original.slice(0, 3);
  for (let seq = 4; seq <= 5; seq += 1) {
    const r = buildRecord('acme', head, third.ts, { type: 'authorize', decision: 'allow' });
    rewritten.push(JSON.stringify(r));
    head = { seq: r.seq, hash: r.hash };
  }
  await rewrite(rewritten);
  expect(await newLog().verify('acme')).toMatchObject({ ok: true, events: 5 }); // a fresh reader cannot tell
  const result = await log.verify('acme');
  expect(result.ok).toBe(false);
  expect(result.broken?.problem).toMatch(/rewritten/);
});
