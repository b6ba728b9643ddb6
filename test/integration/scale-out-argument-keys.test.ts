import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { createScratchDatabase, deleteRedisPrefix, scratchPrefix } from '../../bench/scratch-state';
import { systemClock } from '../../src/clock';
import { createLogger } from '../../src/observability/logger';
import { createPgPool } from '../../src/state/postgres/pool';
import { initSchema } from '../../src/state/postgres/schema';
import { createSharedState } from '../../src/state/shared-state';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { auditEvents, callId, expectAllow, expectDeny } from '../support/isolation-assertions';
import { until } from '../support/until';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * Scaled out, the argument key lives in PostgreSQL (wrapped by the tenant's root), so replicas agree on
 * each tenant's `arguments_mac`: the same arguments decided by replica one and by replica two carry the
 * same MAC in the shared audit, even when the tenant's very first calls reach both at once; an approval
 * asked on one replica is matched on the other; `bulkhead tenant shred --config` (a policy naming the
 * database) tombstones the row, and every replica, one started afterwards included, refuses the tenant.
 */
jest.setTimeout(120_000);

describeWithUpstream(['postgres', 'redis'], 'argument keys shared by replicas (PostgreSQL)', () => {
  const env = upstreamEnv();
  const masterKey = randomBytes(32);
  const brokerOptions = { env: { BULKHEAD_MASTER_KEY: masterKey.toString('base64') } };
  const prefix = scratchPrefix('argkeys');
  const report = { report: 'q4-revenue', format: 'csv' };
  let db: Awaited<ReturnType<typeof createScratchDatabase>>;
  let pool: Pool;
  const harnesses: Harness[] = [];
  let one: Harness;
  let two: Harness;
  let rawPolicy: any;

  async function replica(): Promise<Harness> {
    const state = await createSharedState({ redisUrl: env.REDIS_URL, postgresUrl: db.url, redisPrefix: prefix, masterKey, clock: systemClock, logger: createLogger({ level: 'silent' }) });
    const h = await startHarness({
      replicaOf: harnesses[0],
      overrides: (raw) => {
        raw.broker.data_key_cache = '1ms';
        rawPolicy = structuredClone(raw);
      },
      brokerOptions: { ...brokerOptions, state },
    });
    harnesses.push(h);
    return h;
  }
  const exportOn = async (h: Harness, tenant: string, args: Record<string, unknown> = report) =>
    h.authorize('crm-mcp', { token: await h.token(`${tenant}-agent`, 'crm-mcp'), tool: 'export_report', arguments: args, call_id: callId(`argkeys-${tenant}`) });
  const macOf = async (h: Harness, tenant: string, id: string) => (await auditEvents(h, tenant)).find((e) => e.call_id === id && e.decision === 'allow')?.arguments_mac as string;

  beforeAll(async () => {
    await ensureBuiltCli();
    db = await createScratchDatabase(env.DATABASE_URL, 'argument_keys');
    pool = createPgPool({ url: db.url, timeoutMs: 5000 });
    await initSchema(pool);
    one = await replica();
    two = await replica();
  });
  afterAll(async () => {
    for (const h of harnesses) await h.close().catch(() => undefined);
    await pool?.end();
    await deleteRedisPrefix(env.REDIS_URL, prefix);
    await db?.drop();
  });

  test("the tenant's first calls on both replicas at once agree on one key, and on one MAC per arguments", async () => {
    const answers = await Promise.all([one, two, one, two].map((h) => exportOn(h, 'acme')));
    for (const answer of answers) expectAllow(one, answer, 'acme');
    const macs = await Promise.all(answers.map((a) => macOf(one, 'acme', a.body.call_id)));
    expect(macs[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(macs).size).toBe(1);
    const rows = await pool.query("SELECT kek, wrapped, shredded_at FROM bulkhead_argument_keys WHERE tenant = 'acme'");
    expect(rows.rows).toEqual([{ kek: 'master', wrapped: expect.stringMatching(/^v1\./), shredded_at: null }]);
  });

  test('different tenants get different MACs for the same arguments, on either replica', async () => {
    const [acme, globex] = [await exportOn(two, 'acme'), await exportOn(one, 'globex')];
    expect(await macOf(one, 'acme', acme.body.call_id)).not.toBe(await macOf(two, 'globex', globex.body.call_id));
  });

  test('an approval asked on one replica is matched by its MAC on the other', async () => {
    const token = await one.token('acme-agent', 'crm-mcp');
    const email = { to: 'cfo@acme.example', subject: 'Q4' };
    const asked = await one.authorize('crm-mcp', { token, tool: 'send_email', arguments: email, call_id: callId('argkeys-ask') });
    expectDeny(one, asked, 403, 'approval_required');
    expect((await two.post(`/v1/approvals/${asked.body.approval_id}/approve`, {}, two.operatorToken)).status).toBe(200);
    const through = await two.authorize('crm-mcp', { token, tool: 'send_email', arguments: { subject: 'Q4', to: 'cfo@acme.example' }, call_id: callId('argkeys-through') });
    expectAllow(two, through, 'acme');
  });

  test('tenant shred --config tombstones the shared key: every replica refuses the tenant, the others carry on', async () => {
    const policyFile = join(one.dataDir, 'scaled-policy.json');
    const policy = structuredClone(rawPolicy);
    policy.broker.state = { redis_url: env.REDIS_URL, postgres_url: db.url, redis_prefix: prefix };
    await writeFile(policyFile, JSON.stringify(policy));
    const shred = await runCli(['tenant', 'shred', 'acme', '--yes', '--config', policyFile, '--data-dir', one.dataDir], brokerOptions.env);
    expect([shred.code, shred.stderr]).toEqual([0, '']);
    expect(shred.stdout).toContain(`shredded tenant "acme"'s argument key in PostgreSQL`);
    expect((await pool.query("SELECT kek, wrapped, shredded_at IS NOT NULL AS shredded FROM bulkhead_argument_keys WHERE tenant = 'acme'")).rows).toEqual([{ kek: null, wrapped: null, shredded: true }]);

    for (const h of [one, two]) {
      await until(async () => (await exportOn(h, 'acme')).body.reason === 'tenant_shredded', 'a replica kept using the shredded key');
      expectDeny(h, await exportOn(h, 'acme'), 403, 'tenant_shredded');
      expectAllow(h, await exportOn(h, 'globex'), 'globex');
    }
    const three = await replica();
    expectDeny(three, await exportOn(three, 'acme'), 403, 'tenant_shredded');
    expectAllow(three, await exportOn(three, 'initech'), 'initech');
  });
});
