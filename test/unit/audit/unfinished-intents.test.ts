import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from '../../../src/audit/audit-log';
import { buildRecord, createChainVerifier, EMPTY_HEAD } from '../../../src/audit/chain';
import { createFileAuditLog } from '../../../src/audit/file-audit-log';
import { manualClock } from '../../../src/clock';

/**
 * A call whose credential comes from an upstream is recorded twice: its intent while the credential is
 * resolved, then its outcome (allow or deny, same call_id). The chain verifier reports every intent with
 * no outcome after it, whatever else the stream holds, and nothing else; a lone intent is not damage
 * (the stream verifies), and an outcome only closes the intent of its own call.
 */
const intent = (call_id: string): AuditEvent => ({ type: 'authorize', decision: 'intent', call_id, tool: 'query_crm' });
const allow = (call_id: string): AuditEvent => ({ type: 'authorize', decision: 'allow', call_id, tool: 'query_crm' });
const deny = (call_id: string): AuditEvent => ({ type: 'authorize', decision: 'deny', reason: 'upstream_unavailable', call_id, tool: 'query_crm' });

function verify(events: AuditEvent[]) {
  const verifier = createChainVerifier('acme');
  let head = EMPTY_HEAD;
  for (const event of events) {
    const record = buildRecord('acme', head, '2026-12-03T00:00:00.000Z', event);
    expect(verifier.next(JSON.parse(JSON.stringify(record)))).toBe(true);
    head = { seq: record.seq, hash: record.hash };
  }
  return verifier.result();
}

test('an intent followed by its allow or its deny is finished; the result has no unfinished field', () => {
  expect(verify([intent('a'), allow('a'), intent('b'), deny('b')])).not.toHaveProperty('unfinished');
  // Interleaved calls, outcomes in another order than the intents.
  expect(verify([intent('a'), intent('b'), intent('c'), allow('c'), deny('a'), allow('b')])).not.toHaveProperty('unfinished');
});

test('an intent with no outcome is listed with its seq, the stream still verifies', () => {
  const result = verify([intent('a'), allow('a'), intent('b'), intent('c'), allow('c')]);
  expect(result.ok).toBe(true);
  expect(result.unfinished).toEqual([{ seq: 3, call_id: 'b' }]);
});

test("another call's outcome, a complete or a record of another type does not finish an intent", () => {
  const result = verify([
    intent('a'),
    allow('b'),
    { type: 'complete', call_id: 'a', status: 'success' },
    { type: 'revoke', call_id: 'a', detail: 'session s1' },
    { type: 'approval', decision: 'allow', call_id: 'a' },
    intent('z'),
  ]);
  expect(result.unfinished).toEqual([
    { seq: 1, call_id: 'a' },
    { seq: 6, call_id: 'z' },
  ]);
});

test('several unfinished intents come oldest first; a repeated intent of one call id counts once, at its newest seq', () => {
  const result = verify([intent('late'), intent('early'), intent('late'), allow('x')]);
  expect(result.unfinished).toEqual([
    { seq: 2, call_id: 'early' },
    { seq: 3, call_id: 'late' },
  ]);
});

test('a record that breaks the chain is not counted: neither its intent nor its outcome', () => {
  const verifier = createChainVerifier('acme');
  const first = buildRecord('acme', EMPTY_HEAD, '2026-12-03T00:00:00.000Z', intent('a'));
  expect(verifier.next(first)).toBe(true);
  const forged = { ...buildRecord('acme', { seq: first.seq, hash: first.hash }, '2026-12-03T00:00:01.000Z', allow('a')), tool: 'edited' };
  expect(verifier.next(forged)).toBe(false);
  expect(verifier.result()).toMatchObject({ ok: false, unfinished: [{ seq: 1, call_id: 'a' }] });
});

describe('through the file audit log', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-intents-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  test('verify lists a lone intent after a reopen, and an outcome appended later finishes it', async () => {
    const clock = manualClock(Date.parse('2026-12-03T00:00:00Z'));
    const log = createFileAuditLog({ dir, clock, groupCommitMs: 0 });
    await log.append('acme', intent('c1'));
    await log.append('acme', allow('c1'));
    await log.append('acme', intent('c2'));
    await log.close();

    const reopened = createFileAuditLog({ dir, clock, groupCommitMs: 0 });
    expect(await reopened.verify('acme')).toMatchObject({ ok: true, events: 3, unfinished: [{ seq: 3, call_id: 'c2' }] });
    await reopened.append('acme', deny('c2'));
    const after = await reopened.verify('acme');
    expect(after).toMatchObject({ ok: true, events: 4 });
    expect(after).not.toHaveProperty('unfinished');
    await reopened.close();
  });

  test('an outcome line edited away from its call breaks the chain there, it does not quietly finish another call', async () => {
    const clock = manualClock(Date.parse('2026-12-03T00:00:00Z'));
    const log = createFileAuditLog({ dir, clock, groupCommitMs: 0 });
    await log.append('acme', intent('c1'));
    await log.append('acme', allow('c1'));
    await log.close();
    const file = join(dir, 'acme.jsonl');
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    lines[1] = lines[1]!.replace('"call_id":"c1"', '"call_id":"c9"');
    await writeFile(file, lines.join('\n') + '\n');
    const reopened = createFileAuditLog({ dir, clock, groupCommitMs: 0 });
    expect(await reopened.verify('acme')).toMatchObject({ ok: false, broken: { seq: 2 }, unfinished: [{ seq: 1, call_id: 'c1' }] });
    await reopened.close();
  });
});
