import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import Redis from 'ioredis';
import type { Pool } from 'pg';
import { createLocalSecretStore } from '../../adapters/local';
import { createScratchDatabase, deleteRedisPrefix, scratchPrefix } from '../../bench/scratch-state';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { sha256Hex } from '../../src/crypto/hash';
import { createPgPool } from '../../src/state/postgres/pool';
import { initSchema } from '../../src/state/postgres/schema';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { auditEvents, callId } from '../support/isolation-assertions';
import { filesUnder, seedTenantData } from '../support/tenant-data';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * Tenant delete, on the embedded default and scaled out (Redis and PostgreSQL). "acme" is deleted next to "acme2", whose id extends it. After
 * the delete: acme's tokens are dead (tenant_revoked), its secrets, sessions, quarantines, approvals,
 * quota and budget counters are gone from memory, from every file of the data dir, from every Redis key
 * and every PostgreSQL row, except the
 * audit stream (whose last record is the tombstone, signed by a checkpoint), the checkpoints and the
 * tenant revocation; acme2 keeps every one of its own and keeps working. Run again, it succeeds.
 */

const random = () => randomBytes(12).toString('base64url');
const acme2Secret = random();

interface Deployment {
  h: Harness;
  /** Every file of the data dir, Redis key and PostgreSQL row: [where, content]. */
  everything(): Promise<Array<[string, string]>>;
  /** Where the tenant may still be named after its delete. */
  retained: RegExp;
  cleanup(): Promise<void>;
}

async function filesOf(dataDir: string): Promise<Array<[string, string]>> {
  return Promise.all((await filesUnder(dataDir)).map(async (f) => [relative(dataDir, f), await readFile(f, 'utf8').catch(() => '')] as [string, string]));
}

function suite(name: string, setup: (overrides: (p: any) => void) => Promise<Deployment>): void {
  let h: Harness;
  let deployment: Deployment;
  /** Values only acme holds, searched for in every file after the delete. */
  const acmeValues: string[] = [];
  const acme2Values: string[] = [];

  let acmeToken: string;
  let acme2Token: string;

  beforeAll(async () => {
    [deployment] = await Promise.all([
      setup((p) => {
          p.broker.audit = { checkpoint_every: 1000, checkpoint_interval: '1h' };
          p.tenants.acme.budgets = { hourly: 1000, daily: 5000 };
          p.tenants.acme.tools.query_crm.cost = 3;
          const copy = structuredClone(p.tenants.acme);
          copy.principals = { 'acme2-agent': { secret_sha256: sha256Hex(acme2Secret), tools: ['query_crm', 'export_report', 'send_email'] } };
          copy.tools.query_crm.resource.prefix = 'acme2/';
          p.tenants.acme2 = copy;
      }),
      ensureBuiltCli(),
    ]);
    h = deployment.h;
    await createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) }).set('acme2', 'crm', `acme2-upstream-${random()}`);
    const acme = await seedTenantData(h, 'acme', 'acme-agent', h.clientSecrets['acme-agent']!);
    const acme2 = await seedTenantData(h, 'acme2', 'acme2-agent', acme2Secret);
    [acmeToken, acme2Token] = [acme.token, acme2.token];
    acmeValues.push(...acme.values, h.upstream.acme!);
    acme2Values.push(acme2.quarantined, acme2.secretName);
  }, 120_000);

  afterAll(async () => {
    await h?.close();
    await deployment?.cleanup();
  });

  const op = () => h.operatorToken;

  describe(`tenant delete (${name})`, () => {
    let first: any;

    it('without confirmation, or for an unknown tenant, deletes nothing', async () => {
      expect((await h.post('/v1/tenants/acme/delete', {}, op())).body.error).toBe('bad_request');
      expect((await h.post('/v1/tenants/acme/delete', { confirm: 'acme2' }, op())).body.error).toBe('bad_request');
      expect((await h.post('/v1/tenants/acme3/delete', { confirm: 'acme3' }, op())).body.error).toBe('not_found');
      expect((await h.post('/v1/tenants/acme/delete', { confirm: 'acme' })).status).toBe(401);
      const cli = await runCli(['tenant', 'delete', 'acme', '--url', h.url], { BULKHEAD_OPERATOR_TOKEN: op() });
      expect(cli.code).toBe(2);
      expect(cli.stderr).toContain('Add --yes');
      expect((await h.get('/v1/tenants/acme', op())).body.revoked).toBe(false);
      expect((await h.authorize('crm-mcp', { token: acmeToken, tool: 'query_crm', arguments: { path: 'acme/still' }, call_id: callId('still') })).status).toBe(200);
    });

    it('runs every step in order and reports each (CLI, --json)', async () => {
      const cli = await runCli(['tenant', 'delete', 'acme', '--yes', '--json', '--url', h.url], { BULKHEAD_OPERATOR_TOKEN: op() });
      expect(cli).toMatchObject({ code: 0 });
      first = JSON.parse(cli.stdout);
      expect(first.steps.map((s: any) => [s.step, s.status])).toEqual(['revoke', 'shred_keys', 'sessions', 'approvals', 'quotas', 'budgets', 'tombstone'].map((s) => [s, 'done']));
      expect(first.steps[1].detail).toContain('2 local secret(s) deleted');
      expect(first.resumed).toBe(false);
    });

    it("kills the tenant's tokens; the lookalike keeps working", async () => {
      const denied = await h.authorize('crm-mcp', { token: acmeToken, tool: 'query_crm', arguments: { path: 'acme/after' }, call_id: callId('after') });
      expect(denied.body.reason).toBe('tenant_revoked');
      const fresh = await h.tokenRequest({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'], audience: 'crm-mcp' });
      expect(fresh.body).toMatchObject({ error: 'invalid_grant' });
      const allowed = await h.authorize('crm-mcp', { token: acme2Token, tool: 'query_crm', arguments: { path: 'acme2/after' }, call_id: callId('acme2-after') });
      expect(allowed.status).toBe(200);
      const status = (await h.get('/v1/tenants/acme2', op())).body;
      expect(status).toMatchObject({ revoked: false, live_sessions: 2 });
      const export2 = (await h.post('/v1/tenants/acme2/export', { include_secrets: true }, op())).body;
      expect(export2.approvals).toHaveLength(1);
      expect(export2.sessions.quarantined).toHaveLength(1);
      expect(export2.secrets.names).toHaveLength(2);
    });

    it('leaves nothing of the tenant in memory: the export of what is left is empty', async () => {
      const e = (await h.post('/v1/tenants/acme/export', { include_secrets: true }, op())).body;
      expect(e.secrets).toEqual({ names: [], values: {} });
      expect(e.sessions).toEqual({ live: [], quarantined: [] });
      expect(e.approvals).toEqual([]);
      expect(e.quota).toEqual({ calls_last_minute: 0, in_flight: 0 });
      expect(e.budget.tenant).toEqual({ hourly: 0, daily: 0 });
      expect(e.revocations.tenant_revoked).toBe(true);
    });

    it('leaves nothing of the tenant in any file, Redis key or PostgreSQL row but its audit stream, the checkpoints and the revocation', async () => {
      const kept: string[] = [];
      for (const [where, text] of await deployment.everything()) {
        const found = acmeValues.filter((v) => text.includes(v) || where.includes(v));
        const namesTenant = /(^|[^A-Za-z0-9_.-])acme([^A-Za-z0-9_.-]|$)/.test(where) || /"acme"|"t:acme"|"p:acme\/|principal:acme\/|tenant:acme"/.test(text);
        if (found.length > 0 || namesTenant) kept.push(where);
      }
      expect(kept.length).toBeGreaterThan(0); // the retained audit is seen, so the scan sees the tenant
      for (const where of kept) expect(where).toMatch(deployment.retained);
      // The lookalike's data is all still there.
      const all = (await deployment.everything()).map(([where, text]) => `${where}\n${text}`).join('\n');
      expect(all).toContain(acme2Values[0]); // acme2's quarantined session
      expect(all).toContain(acme2Values[1]); // acme2's own secret's name, in its secrets file
      expect(all).toContain('secrets/acme2.key');
    });

    it("keeps the audit stream: it verifies, and its last record is the tombstone, signed by a checkpoint", async () => {
      const events = await auditEvents(h, 'acme');
      const tombstone = events.find((r) => r.seq === first.tombstone.seq);
      // The last record of the delete (the export after it, above, comes later).
      expect(events.filter((r) => r.type === 'tenant_delete').at(-1)).toEqual(tombstone);
      expect(tombstone).toMatchObject({ type: 'tenant_delete', status: 'deleted', seq: first.tombstone.seq, hash: first.tombstone.hash });
      expect(events.filter((r) => r.type === 'tenant_delete').map((r) => r.status)).toEqual(['started', ...Array(6).fill('step_done'), 'deleted']);
      const verify = (await h.get('/v1/audit/verify?tenant=acme', op())).body;
      expect(verify.ok).toBe(true);
      const checkpoints = (await h.get('/v1/audit/checkpoints?tenant=acme', op())).body.checkpoints;
      expect(checkpoints.some((c: any) => c.seq === first.tombstone.seq && c.hash === first.tombstone.hash)).toBe(true);
    });

    it('run again, succeeds and finds nothing: a new run, every step again, a new tombstone (text report)', async () => {
      const again = await runCli(['tenant', 'delete', 'acme', '--yes', '--url', h.url], { BULKHEAD_OPERATOR_TOKEN: op() });
      expect(again).toMatchObject({ code: 0 });
      expect(again.stdout).toMatch(/^revoke +done +tenant revoked; 0 upstream lease/m);
      expect(again.stdout).toMatch(/^shred_keys +done .*0 local secret\(s\) deleted/m);
      expect(again.stdout).toContain('tenant "acme" deleted; tombstone: audit seq');
      expect((await h.get('/v1/audit/verify?tenant=acme', op())).body.ok).toBe(true);
    });
  });
}

// The harness's log goes to broker.log in the data dir: platform logging, not tenant state.
suite('embedded', async (overrides) => {
  const h = await startHarness({ overrides });
  return { h, everything: () => filesOf(h.dataDir), retained: /^(audit\/acme\.|audit-checkpoints\/acme\.|revocations\.jsonl$|broker\.log$)/, cleanup: async () => undefined };
});

describeWithUpstream(['postgres', 'redis'], 'scaled out', () => {
  suite('Redis and PostgreSQL', async (overrides) => {
    const env = upstreamEnv();
    const db = await createScratchDatabase(env.DATABASE_URL, 'tenant_delete');
    const prefix = scratchPrefix('tenant-delete');
    const pool: Pool = createPgPool({ url: db.url, timeoutMs: 5000 });
    await initSchema(pool);
    const redis = new Redis(env.REDIS_URL);
    const h = await startHarness({
      overrides: (p) => {
        p.broker.state = { redis_url: env.REDIS_URL, postgres_url: db.url, redis_prefix: prefix };
        overrides(p);
      },
    });
    async function everything(): Promise<Array<[string, string]>> {
      const out = await filesOf(h.dataDir);
      for (let cursor = '0'; ; ) {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
        for (const key of keys) out.push([`redis ${key}`, JSON.stringify(await redisValue(redis, key))]);
        if ((cursor = next) === '0') break;
      }
      const tables = await pool.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'bulkhead_%'");
      expect(tables.rows.length).toBeGreaterThan(5);
      for (const { tablename } of tables.rows) {
        const rows = await pool.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM ${tablename} t`);
        for (const { row } of rows.rows) out.push([`postgres ${tablename}`, row]);
      }
      return out;
    }
    return {
      h,
      everything,
      // The audit rows, heads and checkpoints, and the tenant revocation row (Redis holds no copy of it).
      // bulkhead_argument_keys: the argument key's tombstone (tenant id and the time; no key), so the
      // tenant is refused tenant_shredded and never handed a fresh key.
      retained: /^(broker\.log$|postgres bulkhead_(audit|audit_heads|audit_checkpoints|revocations|argument_keys)$)/,
      cleanup: async () => {
        redis.disconnect();
        await pool.end();
        await deleteRedisPrefix(env.REDIS_URL, prefix);
        await db.drop();
      },
    };
  });
});

async function redisValue(redis: Redis, key: string): Promise<unknown> {
  const type = await redis.type(key);
  if (type === 'string') return redis.get(key);
  if (type === 'hash') return redis.hgetall(key);
  if (type === 'set') return redis.smembers(key);
  if (type === 'zset') return redis.zrange(key, 0, -1, 'WITHSCORES');
  if (type === 'list') return redis.lrange(key, 0, -1);
  return type;
}
