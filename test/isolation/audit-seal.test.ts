import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditRecord } from '../../src/audit/audit-log';
import { sha256Hex } from '../../src/crypto/hash';
import { verifyBundle } from '../../src/audit/bundle';
import { buildSealRecord } from '../../src/audit/seal';
import { fileAuditStorage } from '../support/audit-tamper';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';

/**
 * A tenant whose audit stream broke is refused by the writer — that tenant alone: the others are served
 * and /readyz stays 200, counting it as degraded (no tenant id on a platform endpoint). The operator API
 * names the tenant's state, and `bulkhead audit seal` serves it again with a signed seal record that
 * leaves the broken region in place; `audit verify` then reports a sealed, acknowledged break, never a
 * silent ok. A forged seal, or a change to the sealed region afterwards, is not accepted.
 */
jest.setTimeout(90_000);

let work: string;
let dataDir: string;
let h: Harness;
let tokenFile: string;
const storage = () => fileAuditStorage(dataDir);
const op = () => h.operatorToken;
const call = async (tenant: string) => h.authorize('crm-mcp', { token: await h.token(`${tenant}-agent`, 'crm-mcp'), tool: 'query_crm', arguments: { path: `${tenant}/x` } });
const streamFile = (tenant: string) => join(dataDir, 'audit', `${tenant}.jsonl`);

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'bulkhead-seal-'));
  dataDir = join(work, 'data');
  [h] = await Promise.all([startHarness({ dataDir, overrides: (p) => (p.broker.audit = { checkpoint_every: 4, checkpoint_interval: '1h' }) }), ensureBuiltCli()]);
  tokenFile = join(work, 'operator-token');
  await writeFile(tokenFile, h.operatorToken);
});
afterAll(async () => {
  await h?.close();
  await rm(work, { recursive: true, force: true });
});

/** Edits record `seq` of a stream in place, as someone with write access to the audit dir could. */
async function editRecord(tenant: string, seq: number, principal = 'someone-else'): Promise<void> {
  const records = await storage().records(tenant);
  records[seq - 1] = { ...records[seq - 1]!, principal };
  await storage().writeRecords(tenant, records);
}

test('a broken chain degrades its tenant only; the seal serves it again, and verify says what happened', async () => {
  for (let i = 0; i < 5; i++) for (const t of ['acme', 'globex']) expect((await call(t)).status).toBe(200);
  await editRecord('acme', 3);
  await h.restart();

  // acme is refused (the writer will not extend a chain that does not verify); globex is served.
  const refused = await call('acme');
  expect([refused.status, refused.body.reason]).toEqual([503, 'audit_unavailable']);
  expect((await call('globex')).status).toBe(200);
  const ready = await h.get('/readyz');
  expect([ready.status, ready.body.checks.audit, ready.body.degraded_tenants]).toEqual([200, true, 1]);
  expect(JSON.stringify(ready.body)).not.toMatch(/acme|globex/);
  const acme = (await h.get('/v1/tenants/acme', op())).body;
  expect(acme.audit).toMatchObject({ state: 'locked', problem: expect.stringMatching(/broken at seq 3 \(hash does not match/), since: expect.any(String) });
  expect(acme.audit.problem).not.toContain(dataDir);
  expect((await h.get('/v1/tenants/globex', op())).body.audit).toEqual({ state: 'ok' });
  expect((await h.get('/v1/audit/verify?tenant=acme', op())).body).toMatchObject({ ok: false, broken: { seq: 3, kind: 'edited' } });

  // Nothing to seal on a stream that verifies; a seal needs a reason; unknown tenants are 404.
  expect((await h.post('/v1/audit/seal', { tenant: 'globex', reason: 'x' }, op())).status).toBe(409);
  expect((await h.post('/v1/audit/seal', { tenant: 'acme' }, op())).status).toBe(400);
  expect((await h.post('/v1/audit/seal', { tenant: 'nobody', reason: 'x' }, op())).status).toBe(404);
  expect((await h.post('/v1/audit/seal', { tenant: 'acme', reason: 'x' }, h.serverKeys['crm-mcp'])).status).toBe(401);
  const before = await readFile(streamFile('acme'));

  const sealed = await runCli(['audit', 'seal', '--tenant', 'acme', '--reason', 'INC-42: record 3 edited on disk', '--url', h.url, '--operator-token-file', tokenFile]);
  expect(sealed.code).toBe(0);
  const seal = JSON.parse(sealed.stdout);
  expect(seal).toMatchObject({ tenant: 'acme', verified_seq: 2, break_seq: 3, found: expect.stringMatching(/^seq 3: hash does not match/) });
  // Past every seq the stream and its checkpoints reached (5 records).
  expect(seal.seq).toBe(6);
  // The broken region is left byte for byte as it was: the seal is appended after it.
  const after = await readFile(streamFile('acme'));
  expect(after.subarray(0, before.length).equals(before)).toBe(true);

  expect((await call('acme')).status).toBe(200);
  expect((await h.get('/v1/tenants/acme', op())).body.audit).toEqual({ state: 'ok' });
  expect((await h.get('/readyz')).body.degraded_tenants).toBe(0);
  // A second seal finds nothing to seal.
  expect((await h.post('/v1/audit/seal', { tenant: 'acme', reason: 'again' }, op())).status).toBe(409);

  const verified = (await h.get('/v1/audit/verify?tenant=acme', op())).body;
  expect(verified).toMatchObject({ ok: true, signed_through: verified.events });
  expect(verified.sealed).toEqual([
    {
      seal_seq: seal.seq,
      verified_seq: 2,
      break_seq: 3,
      found: expect.stringMatching(/^seq 3: hash does not match the record/),
      recorded: expect.stringMatching(/^seq 3: hash does not match the record/),
      operator: 'ops',
      reason: 'INC-42: record 3 edited on disk',
      ts: expect.any(String),
    },
  ]);
  // The seal is an audit record of its own, with the operator and the reason; the new segment follows it.
  const records = (await h.get('/v1/audit?tenant=acme&type=seal', op())).body.events as AuditRecord[];
  expect(records).toMatchObject([{ seq: seal.seq, type: 'seal', operator: 'ops', detail: 'INC-42: record 3 edited on disk' }]);
  expect(((await h.get(`/v1/audit?tenant=acme&after=${seal.seq}`, op())).body.events as AuditRecord[]).map((r) => r.prev_hash)).toEqual([seal.hash]);

  // Offline, the CLI says it in words, and exits 0: the break is acknowledged, not hidden.
  const offline = await runCli(['audit', 'verify', '--tenant', 'acme', '--data-dir', dataDir]);
  expect(offline.code).toBe(0);
  expect(offline.stdout).toMatch(/^acme: ok, 1 sealed break, /);
  expect(offline.stdout).toMatch(/SEALED BREAK at record 3: verified through seq 2, sealed by ops .* \(reason: INC-42: record 3 edited on disk\)/);
  expect(offline.stdout).toMatch(/records 3\.\.\d+ are not vouched for/);

  // A bundle is one contiguous chain: it cannot span the break, and starts at the seal when asked to.
  const spanning = await h.get('/v1/audit/export?tenant=acme', op());
  expect([spanning.status, spanning.body.message]).toEqual([409, expect.stringMatching(/sealed break \(at record 3, sealed as record 6 at .*\): a bundle cannot span it/)]);
  const sealTs = verified.sealed[0].ts as string;
  const bundle = await h.get(`/v1/audit/export?tenant=acme&from=${encodeURIComponent(sealTs)}`, op());
  expect(bundle.status).toBe(200);
  expect(bundle.body.manifest.records.first_seq).toBe(seal.seq);
  expect(verifyBundle(bundle.body)).toMatchObject({ ok: true, tenant: 'acme' });

  // And it survives a restart: the writer accepts the signed seal when it reopens the stream.
  await h.restart();
  expect((await call('acme')).status).toBe(200);
  expect((await h.get('/v1/audit/verify?tenant=acme', op())).body).toMatchObject({ ok: true, sealed: [{ break_seq: 3 }] });
});

test('a change to the sealed region afterwards voids the seal: verify fails, the writer refuses again', async () => {
  await editRecord('acme', 1);
  const verify = (await h.get('/v1/audit/verify?tenant=acme', op())).body;
  expect(verify).toMatchObject({ ok: false, broken: { seq: 1, kind: 'edited' } });
  await h.restart();
  expect((await call('acme')).body.reason).toBe('audit_unavailable');
  expect((await h.get('/v1/tenants/acme', op())).body.audit.state).toBe('locked');
  // Sealed again: the new seal's region holds everything before it, the earlier seal included (still on
  // disk, but no longer vouched for once the region before it changed).
  expect((await h.post('/v1/audit/seal', { tenant: 'acme', reason: 'INC-43' }, op())).status).toBe(200);
  expect((await call('acme')).status).toBe(200);
  const verified = (await h.get('/v1/audit/verify?tenant=acme', op())).body;
  expect(verified.ok).toBe(true);
  expect(verified.sealed.map((b: { break_seq: number; reason: string }) => [b.break_seq, b.reason])).toEqual([[1, 'INC-43']]);
});

test('a forged seal (not signed by the audit key) does not unlock the tenant nor pass verify', async () => {
  await editRecord('globex', 2);
  // The attacker builds a seal exactly where one would go, signed with a key of their own.
  const bytes = await readFile(streamFile('globex'));
  const records = await storage().records('globex');
  const { privateKey } = generateKeyPairSync('ed25519');
  const forged = buildSealRecord(
    {
      tenant: 'globex',
      seq: records.length + 1,
      ts: new Date().toISOString(),
      region: { bytes: bytes.length, sha256: sha256Hex(bytes) },
      verified: { seq: 1, hash: records[0]!.hash },
      breakSeq: 2,
      found: 'nothing',
      operator: 'ops',
      reason: 'covering tracks',
    },
    { kid: 'attacker', sign: (data) => sign(null, Buffer.from(data), privateKey).toString('base64url') },
  );
  await writeFile(streamFile('globex'), Buffer.concat([bytes, Buffer.from(JSON.stringify(forged) + '\n')]));
  await h.restart();
  expect((await call('globex')).body.reason).toBe('audit_unavailable');
  expect((await h.get('/v1/tenants/globex', op())).body.audit.state).toBe('locked');
  expect((await h.get('/v1/audit/verify?tenant=globex', op())).body).toMatchObject({ ok: false, broken: { seq: 2, kind: 'edited' } });
  expect((await call('acme')).status).toBe(200);
  expect((await h.get('/readyz')).body).toMatchObject({ status: 'ready', degraded_tenants: 1 });
});

test('a stream deleted under the running broker: the tenant is degraded, and the seal starts it again past the signed seqs', async () => {
  expect((await call('initech')).status).toBe(200);
  expect((await call('initech')).status).toBe(200);
  await storage().dropStream('initech');
  expect((await call('initech')).body.reason).toBe('audit_unavailable');
  expect((await h.get('/v1/tenants/initech', op())).body.audit).toMatchObject({ state: 'locked', problem: expect.stringMatching(/initech\.jsonl was removed/) });
  const seal = (await h.post('/v1/audit/seal', { tenant: 'initech', reason: 'INC-44: stream deleted' }, op())).body;
  expect(seal).toMatchObject({ verified_seq: 0, break_seq: 1 });
  expect(seal.seq).toBeGreaterThan(2);
  expect((await call('initech')).status).toBe(200);
  const verified = (await h.get('/v1/audit/verify?tenant=initech', op())).body;
  expect(verified).toMatchObject({ ok: true, sealed: [{ verified_seq: 0, recorded: expect.stringMatching(/was removed/), found: expect.stringMatching(/nothing before the seal/) }] });
});

test('an edit in place the running writer has not noticed: the seal re-reads the stream, and seals what it finds', async () => {
  expect((await call('acme')).status).toBe(200);
  // acme's stream is healthy and open; an edit of the same length keeps its size, so appends go on.
  const principal = (await storage().records('acme'))[0]!.principal!;
  await editRecord('acme', 1, principal.replace(/.$/, (c) => (c === 'x' ? 'y' : 'x')));
  expect((await h.get('/v1/audit/verify?tenant=acme', op())).body).toMatchObject({ ok: false, broken: { seq: 1, kind: 'edited' } });
  const sealed = await h.post('/v1/audit/seal', { tenant: 'acme', reason: 'INC-45' }, op());
  expect(sealed.status).toBe(200);
  expect(sealed.body).toMatchObject({ verified_seq: 0, break_seq: 1 });
  expect((await call('acme')).status).toBe(200);
  expect((await h.get('/v1/audit/verify?tenant=acme', op())).body).toMatchObject({ ok: true, sealed: [{ break_seq: 1, reason: 'INC-45' }] });
});
