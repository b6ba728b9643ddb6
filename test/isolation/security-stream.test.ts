import { randomBytes } from 'node:crypto';
import { createScratchDatabase, deleteRedisPrefix, scratchPrefix } from '../../bench/scratch-state';
import { SECURITY_STREAM } from '../../src/audit/security-stream';
import { manualClock } from '../../src/clock';
import { sha256Hex } from '../../src/crypto/hash';
import { createPgPool } from '../../src/state/postgres/pool';
import { initSchema } from '../../src/state/postgres/schema';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { auditEvents, callId, claimsOf, expectDeny } from '../support/isolation-assertions';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * The security stream under attack and scaled out:
 * - a flood of forged tokens claiming tenant globex (and of wrong server keys) is bounded by the
 *   security stream's own deny budget and summarised, never dropped; globex's stream does not move
 *   and its own deny budget is untouched, so an attacker can neither pollute nor exhaust it;
 * - the stream verifies offline with `bulkhead audit verify`, like a tenant's;
 * - scaled out, it is kept in PostgreSQL like every tenant stream, and verifies there.
 */
jest.setTimeout(120_000);

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const forge = (token: string, change: Record<string, unknown>) => {
  const [header, , signature] = token.split('.');
  return `${header}.${b64({ ...claimsOf(token), ...change })}.${signature}`;
};

describe('a flood of forged tokens claiming tenant globex', () => {
  const BUDGET = 5;
  const FORGED = 60;
  const WRONG_KEY = 20;
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({
      overrides: (p) => {
        p.broker.audit = { security_denies_per_minute: BUDGET };
        p.tenants.globex.quotas = { calls_per_minute: 100_000, concurrency: 64, audited_denies_per_minute: BUDGET };
      },
      // One window for the whole flood (a minute by default and here): its summary is written at shutdown.
      brokerOptions: { denyWindowMs: 600_000 },
    });
    await ensureBuiltCli();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('is answered in full, written up to the security budget, summarised past it, and never reaches globex', async () => {
    const acme = await h.token('acme-agent', 'crm-mcp');
    const globexBefore = await auditEvents(h, 'globex');
    const forged = Array.from({ length: FORGED }, (_, i) => forge(acme, { tid: 'globex', sub: 'globex-agent', jti: `forged-${i}` }));
    const answers = await Promise.all(forged.map((token) => h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'globex/x' }, call_id: callId('flood') })));
    for (const answer of answers) expectDeny(h, answer, 403, 'token_invalid');
    const wrongKey = randomBytes(24).toString('base64url');
    const refused = await Promise.all(Array.from({ length: WRONG_KEY }, () => h.post('/v1/authorize', { token: acme, tool: 'query_crm', arguments: {} }, wrongKey)));
    for (const answer of refused) expectDeny(h, answer, 401, 'server_unauthenticated');

    // globex's stream did not move, and its own budget is whole: its next denies are each written.
    expect(await auditEvents(h, 'globex')).toEqual(globexBefore);
    const reader = await h.token('globex-reader', 'crm-mcp');
    const ids = Array.from({ length: BUDGET }, () => callId('globex-own-deny'));
    for (const id of ids) expectDeny(h, await h.authorize('crm-mcp', { token: reader, tool: 'export_report', arguments: {}, call_id: id }), 403, 'tool_not_allowed');
    const globexAfter = await auditEvents(h, 'globex');
    expect(globexAfter.filter((e) => ids.includes(e.call_id)).map((e) => e.reason)).toEqual(ids.map(() => 'tool_not_allowed'));
    expect(globexAfter.filter((e) => e.type === 'deny_summary')).toEqual([]);

    const written = await auditEvents(h, SECURITY_STREAM);
    expect(written.filter((e) => e.type !== 'deny_summary')).toHaveLength(BUDGET);
    for (const e of written) expect(e.token_sha256 === undefined || /^[0-9a-f]{64}$/.test(e.token_sha256)).toBe(true);

    // The rest is counted, not lost: one summary at shutdown, by reason.
    await h.restart();
    const summaries = (await auditEvents(h, SECURITY_STREAM)).filter((e) => e.type === 'deny_summary');
    expect(summaries).toHaveLength(1);
    const counted = summaries[0].denied + BUDGET;
    expect(counted).toBe(FORGED + WRONG_KEY);
    expect(summaries[0].reasons.token_invalid + summaries[0].reasons.server_unauthenticated).toBe(FORGED + WRONG_KEY - BUDGET);
    expect(await auditEvents(h, 'globex')).toEqual(globexAfter);
  });

  it('verifies offline with bulkhead audit verify, alone and with every tenant', async () => {
    const alone = await runCli(['audit', 'verify', '--tenant', SECURITY_STREAM, '--data-dir', h.dataDir]);
    expect(alone).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`^${SECURITY_STREAM}: ok, ${BUDGET + 1} events, head [0-9a-f]{64}, signed through seq ${BUDGET + 1}$`, 'm')) });
    const all = await runCli(['audit', 'verify', '--json', '--data-dir', h.dataDir]);
    expect(all.code).toBe(0);
    expect(JSON.parse(all.stdout).tenants.map((t: { tenant: string }) => t.tenant)).toContain(SECURITY_STREAM);
    const shown = await runCli(['audit', 'show', '--tenant', SECURITY_STREAM, '--reason', 'server_unauthenticated', '--json', '--data-dir', h.dataDir]);
    expect(shown.code).toBe(0);
    for (const e of JSON.parse(shown.stdout).events) expect(e).toMatchObject({ tenant: SECURITY_STREAM, reason: 'server_unauthenticated' });
  });
});

describeWithUpstream(['postgres', 'redis'], 'scaled out: the security stream lives in PostgreSQL like the tenant streams', () => {
  const env = upstreamEnv();
  const prefix = scratchPrefix('security-stream');
  let db: Awaited<ReturnType<typeof createScratchDatabase>>;
  let a: Harness;
  let b: Harness;
  const clock = manualClock(Date.parse('2030-06-01T00:00:00Z'));

  beforeAll(async () => {
    db = await createScratchDatabase(env.DATABASE_URL, 'security_stream');
    const pool = createPgPool({ url: db.url, timeoutMs: 5000 });
    await initSchema(pool).finally(() => pool.end());
    const brokerOptions = { clock, env: { BULKHEAD_MASTER_KEY: randomBytes(32).toString('base64') } };
    a = await startHarness({ overrides: (p) => (p.broker.state = { redis_url: env.REDIS_URL, postgres_url: db.url, redis_prefix: prefix }), brokerOptions });
    b = await startHarness({ replicaOf: a, brokerOptions });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await db?.drop();
    await deleteRedisPrefix(env.REDIS_URL, prefix);
  });

  it('records a forged token on one replica and an expired one on the other, each in its stream, in PostgreSQL', async () => {
    const acme = await a.token('acme-agent', 'crm-mcp');
    const forged = forge(acme, { tid: 'globex' });
    expectDeny(a, await a.authorize('crm-mcp', { token: forged, tool: 'query_crm', arguments: { path: 'globex/x' } }), 403, 'token_invalid');
    const expiring = await b.token('acme-reader', 'crm-mcp', { expires_in: '1' });
    clock.advance(1000 + 5_000 + 1000);
    expectDeny(b, await b.authorize('crm-mcp', { token: expiring, tool: 'query_crm', arguments: { path: 'acme/x' } }), 403, 'token_expired');

    const pool = createPgPool({ url: db.url, timeoutMs: 5000 });
    try {
      const raw = (await pool.query<{ tenant: string; record: string }>('SELECT tenant, record FROM bulkhead_audit ORDER BY tenant, seq')).rows;
      const rows = raw.map((r) => ({ ...JSON.parse(r.record), tenant: r.tenant }));
      expect(rows.filter((r) => r.tenant === SECURITY_STREAM)).toEqual([expect.objectContaining({ reason: 'token_invalid', token_sha256: sha256Hex(forged), server: 'crm-mcp' })]);
      expect(rows.filter((r) => r.tenant === 'globex')).toEqual([]);
      expect(rows.filter((r) => r.tenant === 'acme' && r.decision === 'deny')).toEqual([expect.objectContaining({ reason: 'token_expired', principal: 'acme-reader', jti: claimsOf(expiring).jti })]);
      for (const r of raw) for (const part of forged.split('.')) expect(r.record).not.toContain(part);
    } finally {
      await pool.end();
    }
    // Either replica reads and verifies the one shared stream.
    for (const replica of [a, b]) {
      expect((await auditEvents(replica, SECURITY_STREAM)).map((e) => e.reason)).toEqual(['token_invalid']);
      expect((await replica.get(`/v1/audit/verify?tenant=${SECURITY_STREAM}`, replica.operatorToken)).body).toMatchObject({ ok: true, events: 1 });
    }
  });
});
