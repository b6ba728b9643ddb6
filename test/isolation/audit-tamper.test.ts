import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { manualClock } from '../../src/clock';
import type { EvidenceResult } from '../../src/audit/evidence';
import { createPgPool } from '../../src/state/postgres/pool';
import { initSchema } from '../../src/state/postgres/schema';
import { createScratchDatabase, deleteRedisPrefix, scratchPrefix } from '../../bench/scratch-state';
import { fileAuditStorage, postgresAuditStorage, recompute, type AuditStorage } from '../support/audit-tamper';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { until } from '../support/until';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * Tamper evidence that survives truncation and recomputation, offline and through the API, on both
 * backends. Each tenant below gets 12 records (checkpoints every 5: signed at seq 1, 5, 10 and 12 at
 * shutdown), then one kind of damage an attacker with write access to the audit storage can do —
 * including the careful kinds a bare hash chain cannot see (a tail cut, a re-hashed chain, a stream
 * deleted outright, an older checkpoint set put back). `bulkhead audit verify` on the storage itself
 * and GET /v1/audit/verify on a broker must both name the damage, and the untouched tenant must stay ok.
 *
 * The broker's clock sits in the past, so by the time these verify, every record is long older than
 * the checkpoint interval: as when an auditor verifies a trail after the fact.
 */

const DAMAGED = ['edit', 'delete', 'cut', 'recompute', 'drop', 'replay', 'foreign'] as const;
const EXTRA = ['pristine', 'rollback', ...DAMAGED];
const EXPECTED: Record<(typeof DAMAGED)[number], { kind: string; seq: number }> = {
  edit: { kind: 'edited', seq: 3 },
  delete: { kind: 'deleted', seq: 7 },
  cut: { kind: 'truncated', seq: 12 },
  recompute: { kind: 'recomputed', seq: 10 },
  drop: { kind: 'missing_stream', seq: 1 },
  replay: { kind: 'checkpoint_missing', seq: 10 },
  foreign: { kind: 'checkpoint_invalid', seq: 12 },
};

function withTenants(p: any, state?: Record<string, string>): void {
  p.broker.audit = { checkpoint_every: 5, checkpoint_interval: '1h' };
  if (state) p.broker.state = state;
  for (const t of EXTRA) p.tenants[t] = structuredClone(p.tenants.acme);
}

async function tamper(storage: AuditStorage): Promise<{ pristineHead: string }> {
  const records = await storage.records('edit');
  records[2] = { ...records[2]!, decision: records[2]!.decision === 'allow' ? 'deny' : 'allow' };
  await storage.writeRecords('edit', records);

  const deleted = await storage.records('delete');
  deleted.splice(6, 1);
  await storage.writeRecords('delete', deleted);

  await storage.writeRecords('cut', (await storage.records('cut')).slice(0, 11));
  await storage.writeRecords('recompute', recompute(await storage.records('recompute'), 8));
  await storage.dropStream('drop');

  // Re-hash from record 7 on, and put back the checkpoints as they were before seq 10 was signed.
  await storage.writeRecords('replay', recompute(await storage.records('replay'), 7));
  await storage.writeCheckpoints('replay', (await storage.checkpoints('replay')).filter((c) => (c.seq as number) <= 5));

  // A genuine checkpoint, but of another tenant's stream.
  const pristine = await storage.checkpoints('pristine');
  await storage.writeCheckpoints('foreign', [...(await storage.checkpoints('foreign')), pristine[pristine.length - 1]!]);

  // The one undetectable without an outside anchor: stream and checkpoints rolled back together.
  await storage.writeRecords('rollback', (await storage.records('rollback')).slice(0, 10));
  await storage.writeCheckpoints('rollback', (await storage.checkpoints('rollback')).filter((c) => (c.seq as number) <= 10));
  return { pristineHead: (await storage.records('pristine'))[11]!.hash };
}

function suite(name: string, setup: () => Promise<{ h: Harness; storage: AuditStorage; cliArgs: string[]; cleanup(): Promise<void> }>) {
  let h: Harness;
  let storage: AuditStorage;
  let cliArgs: string[];
  let cleanup: () => Promise<void>;
  let rollbackHead: string;
  let pristineHead: string;

  beforeAll(async () => {
    ({ h, storage, cliArgs, cleanup } = await setup());
    for (const t of EXTRA) {
      for (let i = 1; i <= 12; i += 1) {
        await h.broker.audit.append(t, { type: 'authorize', decision: 'allow', tool: 'query_crm', call_id: `${t}-${i}` });
        // A boundary's checkpoint signs the head when its turn comes: wait for it, or under load it signs
        // a later record (the one at 5 may still be written when 10 arrives) and the damage lands elsewhere.
        if (i === 1 || i % 5 === 0) await until(async () => (await storage.checkpoints(t).catch(() => [])).some((c) => c.seq === i), `${t}: no checkpoint at seq ${i}`);
      }
    }
    rollbackHead = (await storage.records('rollback'))[11]!.hash;
    // A restart: the shutdown checkpoint signs seq 12; the new broker has written nothing yet.
    await h.restart();
    ({ pristineHead } = await tamper(storage));
  }, 180_000);
  afterAll(async () => {
    await h?.close();
    await cleanup?.();
  });

  async function cliVerify(...extra: string[]): Promise<{ code: number; results: Record<string, EvidenceResult> }> {
    const result = await runCli(['audit', 'verify', '--json', ...cliArgs, ...extra]);
    const parsed = JSON.parse(result.stdout) as { tenants: EvidenceResult[] };
    return { code: result.code, results: Object.fromEntries(parsed.tenants.map((r) => [r.tenant, r])) };
  }

  describe(name, () => {
    it('offline: `bulkhead audit verify` names each kind of damage, and exits 1 for the whole set', async () => {
      const { code, results } = await cliVerify();
      expect(code).toBe(1);
      expect(results.pristine).toMatchObject({ ok: true, events: 12, signed_through: 12, unsealed: 0 });
      for (const t of DAMAGED) expect([t, results[t]!.ok, results[t]!.broken]).toEqual([t, false, expect.objectContaining(EXPECTED[t])]);
    });

    it.each(DAMAGED.map((t) => [t]))('through the API: GET /v1/audit/verify names the damage to %s', async (tenant) => {
      const answer = await h.get(`/v1/audit/verify?tenant=${tenant}`, h.operatorToken);
      expect(answer.status).toBe(200);
      expect([answer.body.ok, answer.body.broken]).toEqual([false, expect.objectContaining(EXPECTED[tenant as (typeof DAMAGED)[number]])]);
    });

    it('the untouched stream verifies on its own, offline and through the API', async () => {
      expect(await runCli(['audit', 'verify', '--tenant', 'pristine', ...cliArgs])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^pristine: ok, 12 events, head [0-9a-f]{64}, signed through seq 12$/m) });
      expect((await h.get('/v1/audit/verify?tenant=pristine', h.operatorToken)).body).toMatchObject({ ok: true, events: 12, signed_through: 12 });
    });

    it('a stream and its checkpoints rolled back together pass on their own, and fail against the head an auditor kept', async () => {
      expect((await cliVerify('--tenant', 'rollback')).results.rollback).toMatchObject({ ok: true, events: 10 });
      const kept = await cliVerify('--tenant', 'rollback', '--expect-head', `12:${rollbackHead}`);
      expect(kept.code).toBe(1);
      expect(kept.results.rollback!.broken).toMatchObject({ kind: 'head_mismatch', seq: 11 });
      const api = await h.get(`/v1/audit/verify?tenant=rollback&expect_head=12:${rollbackHead}`, h.operatorToken);
      expect(api.body.broken).toMatchObject({ kind: 'head_mismatch' });
    });

    it('--expect-head passes on the kept head and fails on any other hash at that seq', async () => {
      expect((await cliVerify('--tenant', 'pristine', '--expect-head', `12:${pristineHead}`)).code).toBe(0);
      const wrong = await cliVerify('--tenant', 'pristine', '--expect-head', `12:${'a'.repeat(64)}`);
      expect([wrong.code, wrong.results.pristine!.broken?.kind]).toEqual([1, 'head_mismatch']);
      const recomputed = await cliVerify('--tenant', 'recompute', '--expect-head', `12:${pristineHead}`);
      expect(recomputed.code).toBe(1);
    });

    it('an unknown tenant is not ok', async () => {
      const unknown = await cliVerify('--tenant', 'umbrella');
      expect([unknown.code, unknown.results.umbrella!.broken?.kind]).toEqual([1, 'unknown_tenant']);
    });
  });
}

suite('embedded: files under the data dir', async () => {
  const h = await startHarness({ overrides: (p) => withTenants(p), brokerOptions: { clock: manualClock(Date.parse('2025-01-01T00:00:00Z')) } });
  await ensureBuiltCli();
  return { h, storage: fileAuditStorage(h.dataDir), cliArgs: ['--data-dir', h.dataDir], cleanup: async () => undefined };
});

describeWithUpstream(['postgres', 'redis'], 'scaled out', () => {
  suite('PostgreSQL: records, checkpoints and audit keys in the shared database', async () => {
    const env = upstreamEnv();
    const db = await createScratchDatabase(env.DATABASE_URL, 'audit_tamper');
    const prefix = scratchPrefix('audit-tamper');
    const schemaPool = createPgPool({ url: db.url, timeoutMs: 5000 });
    await initSchema(schemaPool);
    await schemaPool.end();
    const state = { redis_url: env.REDIS_URL, postgres_url: db.url, redis_prefix: prefix };
    const h = await startHarness({ overrides: (p) => withTenants(p, state), brokerOptions: { clock: manualClock(Date.parse('2025-01-01T00:00:00Z')) } });
    await ensureBuiltCli();
    const configFile = join(h.dataDir, 'policy.json');
    await writeFile(configFile, JSON.stringify({ broker: { state, audit: { checkpoint_every: 5 } } }));
    const pool: Pool = createPgPool({ url: db.url, timeoutMs: 5000 });
    return {
      h,
      storage: postgresAuditStorage(pool),
      cliArgs: ['--config', configFile, '--data-dir', h.dataDir],
      cleanup: async () => {
        await pool.end();
        await deleteRedisPrefix(env.REDIS_URL, prefix);
        await db.drop();
      },
    };
  });
});
