import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditEvidence } from '../../../src/audit/audit-evidence';
import { createAuditKeys } from '../../../src/audit/audit-keys';
import type { AuditEvent } from '../../../src/audit/audit-log';
import { createCheckpointer } from '../../../src/audit/checkpointer';
import { createFileAuditLog } from '../../../src/audit/file-audit-log';
import { createFileCheckpointStore } from '../../../src/audit/file-checkpoint-store';
import { purgeEvent } from '../../../src/audit/purge';
import { SECURITY_STREAM } from '../../../src/audit/security-stream';
import { manualClock } from '../../../src/clock';
import { deleteTenant, type TenantDeleteDeps } from '../../../src/tenants/tenant-delete';
import { createFileKeyStorage, createSealedKeyStore } from '../../../src/tokens/key-store';

/**
 * `tenant delete --purge-audit` on real files: the purge needs an export that covers the stream; it
 * writes its signed record to the security stream before it removes anything, so a purge that crashed
 * after its record (stream still there, or only the checkpoints left) is finished by the next run; and
 * a purge record that was edited or forged (appended with a valid chain, but not signed by the audit
 * key) is reported by the verifier of the security stream.
 */
let dir: string;
const clock = manualClock(Date.parse('2026-01-01T00:00:00Z'));
const rule = { every: 100, intervalMs: 60_000 };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulkhead-audit-purge-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function setup(options: { crash?: 'before_remove' | 'after_stream' } = {}) {
  const keys = createAuditKeys({ store: createSealedKeyStore(Buffer.alloc(32, 7), createFileKeyStorage(dir, 'audit-keys.json'), 'audit-key'), clock });
  await keys.init();
  const log = createFileAuditLog({ dir: join(dir, 'audit'), clock });
  const checkpoints = createFileCheckpointStore(join(dir, 'audit-checkpoints'));
  const checkpointer = createCheckpointer({ store: checkpoints, signer: () => keys.signer(), clock, rule });
  const evidence = createAuditEvidence({ log, checkpoints, keys: () => keys.published(), rule, clock });
  const append = async (tenant: string, event: AuditEvent) => {
    const record = await log.append(tenant, event);
    checkpointer.observe(record);
    return record;
  };
  let crash = options.crash;
  const nothing = async () => undefined;
  const deps: TenantDeleteDeps = {
    revoke: async () => ({ upstream_leases_revoked: 0 }) as any,
    shred: async () => ({ root: 'master', secrets_deleted: 0, argument_key_shredded: [] }) as any,
    sessions: { forgetTenant: nothing },
    approvals: { forgetTenant: nothing },
    quotas: { forgetTenant: nothing },
    budgets: { forgetTenant: nothing },
    log,
    append,
    seal: (tenant) => checkpointer.sealNow(tenant),
    purge: {
      signer: () => keys.signer(),
      now: () => clock.now(),
      async remove(tenant) {
        if (crash === 'before_remove') throw new Error((crash = undefined, 'killed before the removal'));
        await checkpointer.forget(tenant);
        await log.purge(tenant);
        if (crash === 'after_stream') throw new Error((crash = undefined, 'killed between the stream and its checkpoints'));
        await checkpoints.purge(tenant);
      },
    },
  };
  /** What an export leaves in the stream: its `exported` record, naming the bundle of everything before. */
  const exported = async (tenant: string) => {
    const records = await log.read(tenant);
    return append(tenant, { type: 'tenant_export', status: 'exported', operator: 'op', records: records.at(-1)?.seq ?? 0, bundle_sha256: 'ab'.repeat(32) });
  };
  for (const tenant of ['acme', 'acme2']) for (let i = 0; i < 3; i += 1) await append(tenant, { type: 'authorize', decision: 'allow' });
  await checkpointer.sealNow();
  return { keys, log, checkpoints, checkpointer, evidence, deps, append, exported };
}

const files = (tenant: string) => [join(dir, 'audit', `${tenant}.jsonl`), join(dir, 'audit-checkpoints', `${tenant}.jsonl`)];

test('refused export_required without an export, and when a record came after it; nothing deleted', async () => {
  const { deps, exported, append, log } = await setup();
  const revoked: string[] = [];
  deps.revoke = async (input) => (revoked.push(input.tenant ?? ''), { upstream_leases_revoked: 0 }) as any;
  await expect(deleteTenant(deps, 'acme', 'op', { purgeAudit: true })).rejects.toMatchObject({ reason: 'export_required' });
  await exported('acme');
  await append('acme', { type: 'authorize', decision: 'deny', reason: 'tool_not_allowed' });
  await expect(deleteTenant(deps, 'acme', 'op', { purgeAudit: true })).rejects.toMatchObject({ reason: 'export_required', message: expect.stringContaining('records after its last export (seq 5') });
  // An export record that does not cover what is before it (records != seq - 1) is not an export.
  await append('acme', { type: 'tenant_export', status: 'exported', operator: 'op', records: 1, bundle_sha256: 'cd'.repeat(32) });
  await expect(deleteTenant(deps, 'acme', 'op', { purgeAudit: true })).rejects.toMatchObject({ reason: 'export_required' });
  expect(revoked).toEqual([]);
  expect((await log.read('acme')).some((r) => r.type === 'tenant_delete')).toBe(false);
  for (const file of files('acme')) expect(existsSync(file)).toBe(true);
  await expect(deleteTenant(deps, SECURITY_STREAM, 'op', { purgeAudit: true })).rejects.toMatchObject({ reason: 'bad_request' });
  await log.close();
});

test('after an export: the stream and checkpoints are removed, the signed record names them, the others verify', async () => {
  const { deps, exported, log, evidence } = await setup();
  const exportRecord = await exported('acme');
  const result = await deleteTenant(deps, 'acme', 'op', { purgeAudit: true });
  expect(result.steps.map((s) => [s.step, s.status])).toEqual([...['revoke', 'shred_keys', 'sessions', 'approvals', 'quotas', 'budgets', 'tombstone'], 'purge_audit'].map((s) => [s, 'done']));
  expect(result.purge).toMatchObject({ purged: { seq: result.tombstone.seq, hash: result.tombstone.hash }, export_sha256: 'ab'.repeat(32), export_seq: exportRecord.seq, record: { stream: SECURITY_STREAM } });
  for (const file of files('acme')) expect(existsSync(file)).toBe(false);
  expect(await log.read('acme')).toEqual([]);
  expect(await evidence.verify(SECURITY_STREAM)).toMatchObject({ ok: true });
  expect(await evidence.verify('acme2')).toMatchObject({ ok: true, events: 3 });
  expect(await evidence.verify('acme', { known: true })).toMatchObject({ ok: true, events: 0, purged: [{ security_seq: result.purge!.record.seq, purged_seq: result.tombstone.seq, export_sha256: 'ab'.repeat(32), operator: 'op' }] });
  // The tenant's next record starts a new stream at seq 1.
  expect(await log.append('acme', { type: 'token' })).toMatchObject({ seq: 1 });
  await log.close();
});

test.each(['before_remove', 'after_stream'] as const)('a purge killed %s is finished by the next run', async (crash) => {
  const { deps, exported, log, evidence } = await setup({ crash });
  await exported('acme');
  await expect(deleteTenant(deps, 'acme', 'op', { purgeAudit: true })).rejects.toThrow(/killed/);
  const rerun = await deleteTenant(deps, 'acme', 'op', { purgeAudit: true });
  expect(rerun.resumed).toBe(true);
  expect(rerun.steps.at(-1)).toMatchObject({ step: 'purge_audit', status: 'done', detail: expect.stringContaining('finished an interrupted purge') });
  for (const file of files('acme')) expect(existsSync(file)).toBe(false);
  // One purge record, not two.
  expect((await log.read(SECURITY_STREAM)).filter((r) => r.type === 'tenant_purge')).toHaveLength(1);
  expect(await evidence.verify(SECURITY_STREAM)).toMatchObject({ ok: true });
  await log.close();
});

test('an edited or forged purge record in the security stream is reported, and does not count as a purge', async () => {
  const { log, evidence, keys, append } = await setup();
  const valid = purgeEvent({ tenant: 'acme', purged_seq: 3, purged_hash: 'ef'.repeat(32), export_sha256: 'ab'.repeat(32), export_seq: 2, operator: 'op', at: new Date(clock.now()).toISOString() }, keys.signer());
  // Edited: the seq it vouches for changed, the chain recomputed (appended through the writer).
  const edited = structuredClone(valid);
  edited.purge!.purged_seq = 2;
  await append(SECURITY_STREAM, edited);
  expect((await evidence.verify(SECURITY_STREAM)).broken).toMatchObject({ kind: 'purge_invalid', problem: expect.stringContaining('does not verify') });
  expect((await evidence.verify('acme')).purged).toBeUndefined();
  await log.close();

  // Forged: signed by a key that is not this broker's audit key.
  for (const file of files(SECURITY_STREAM)) await rm(file);
  const other = createAuditKeys({ store: createSealedKeyStore(Buffer.alloc(32, 9), createFileKeyStorage(join(dir, 'other'), 'audit-keys.json'), 'audit-key'), clock });
  await other.init();
  const fresh = await setup();
  const { kind: _kind, kid: _kid, sig: _sig, ...statement } = valid.purge!;
  await fresh.append(SECURITY_STREAM, purgeEvent(statement, other.signer()));
  expect((await fresh.evidence.verify(SECURITY_STREAM)).broken).toMatchObject({ kind: 'purge_invalid', problem: expect.stringContaining('not an audit key') });
  await fresh.log.close();
});
