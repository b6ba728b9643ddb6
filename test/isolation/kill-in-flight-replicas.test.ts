import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { createScratchDatabase, deleteRedisPrefix, scratchPrefix } from '../../bench/scratch-state';
import { initSchema } from '../../src/state/postgres/schema';
import { bootstrapBao, lookupLease, type BaoFixture } from '../integration/support/bao-bootstrap';
import { withUpstreams } from '../integration/support/upstream-policy';
import { startHarness, type Harness } from '../support/broker-harness';
import { gatedProxy } from '../support/gated-proxy';
import { DB_CREDS, expectAllowed, expectKilledInOrder, killWhileResolving, leasesMinted, metricValue } from '../support/in-flight-kills';
import { claimsOf, expectDeny } from '../support/isolation-assertions';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * The kill switch against calls in flight across replicas: two brokers share Redis and PostgreSQL, and
 * OpenBao sits behind a proxy that holds credential reads. A call waits on replica B while the kill is
 * made on replica A; once A has answered, B must deny the call with the kill's reason (B learns of it
 * through the revocation feed, and A answers only after B acknowledged with its calls settled), and the
 * one shared audit stream never shows an allow after the kill that covers it.
 */
jest.setTimeout(90_000);

describeWithUpstream(['bao', 'postgres', 'redis'], 'a kill on replica A reaches a call in flight on replica B (scale-out)', () => {
  const env = upstreamEnv();
  const vault = gatedProxy(() => env.VAULT_ADDR);
  let dir: string;
  let bao: BaoFixture;
  let db: Awaited<ReturnType<typeof createScratchDatabase>>;
  const prefix = scratchPrefix('kill-in-flight');
  let a: Harness;
  let b: Harness;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-kill-replicas-'));
    bao = await bootstrapBao({ address: env.VAULT_ADDR, rootToken: env.VAULT_TOKEN, tenants: ['acme', 'globex', 'initech'], dir, databaseUrl: env.DATABASE_URL });
    db = await createScratchDatabase(env.DATABASE_URL, 'kill_in_flight');
    const pool = new Pool({ connectionString: db.url });
    await initSchema(pool).finally(() => pool.end());
    const upstreams = withUpstreams({ vaultAddr: vault.url, bao, withDatabase: true, timeout: '50s' });
    const brokerOptions = { env: { BULKHEAD_MASTER_KEY: randomBytes(32).toString('base64') } };
    a = await startHarness({
      overrides: (p) => {
        upstreams(p);
        p.broker.state = { redis_url: env.REDIS_URL, postgres_url: db.url, redis_prefix: prefix };
      },
      brokerOptions,
    });
    b = await startHarness({ replicaOf: a, brokerOptions });
  });
  afterAll(async () => {
    vault.release();
    await b?.close();
    await a?.close();
    await db?.drop();
    await deleteRedisPrefix(env.REDIS_URL, prefix);
    await rm(dir, { recursive: true, force: true });
  });

  const revokeOnA = (target: Record<string, string | boolean>) => a.post('/v1/revoke', { ...target, reason: 'kill in flight elsewhere' }, a.operatorToken);

  it('denies on B a call in flight when A revokes its session (session_revoked)', async () => {
    const token = await a.token('acme-agent', 'crm-mcp');
    await expectAllowed(b, token);
    const sid = claimsOf(token).sid as string;
    const { answer, id } = await killWhileResolving(vault, b, token, () => revokeOnA({ session: sid }));
    expectDeny(b, answer, 403, 'session_revoked');
    await expectKilledInOrder(a, 'acme', id, 'session_revoked', (e) => e.type === 'revoke' && e.detail === `session ${sid}`, (e) => e.session === sid);
  });

  it('denies on B a call in flight when A revokes its principal (principal_revoked)', async () => {
    const token = await b.token('globex-reader', 'crm-mcp');
    await expectAllowed(b, token);
    const { answer, id } = await killWhileResolving(vault, b, token, () => revokeOnA({ principal: 'globex/globex-reader' }));
    expectDeny(b, answer, 403, 'principal_revoked');
    await expectKilledInOrder(b, 'globex', id, 'principal_revoked', (e) => e.type === 'revoke' && e.detail === 'principal globex/globex-reader', (e) => e.principal === 'globex-reader');
  });

  it('denies on B a call in flight when A revokes its token id (token_revoked)', async () => {
    const token = await a.token('acme-reader', 'crm-mcp');
    await expectAllowed(b, token);
    const { answer } = await killWhileResolving(vault, b, token, () => revokeOnA({ jti: claimsOf(token).jti, force: true }));
    expectDeny(b, answer, 403, 'token_revoked');
  });

  it('revokes on B, and counts there, the lease minted for a leased call A\'s kill reached in flight', async () => {
    const token = await a.token('globex-agent', 'crm-mcp');
    await expectAllowed(b, token, 'export_report');
    const before = await metricValue(b, 'bulkhead_killed_in_flight_leases_revoked_total');
    const seen = vault.responses().length;
    const sid = claimsOf(token).sid as string;
    const { answer, id } = await killWhileResolving(vault, b, token, () => revokeOnA({ session: sid }), { hold: DB_CREDS, tool: 'export_report' });
    expectDeny(b, answer, 403, 'session_revoked');
    await expectKilledInOrder(a, 'globex', id, 'session_revoked', (e) => e.type === 'revoke' && e.detail === `session ${sid}`, (e) => e.session === sid);
    const leases = leasesMinted(vault, seen);
    expect(leases).toHaveLength(1);
    expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, leases[0]!)).status).toBe(400);
    expect(await metricValue(b, 'bulkhead_killed_in_flight_leases_revoked_total')).toBe(before + 1);
  });

  it('denies on B a call in flight when a completion on A quarantines its session (session_quarantined)', async () => {
    const token = await a.token('initech-agent', 'crm-mcp');
    const exporting = await expectAllowed(a, token, 'export_report');
    const sid = claimsOf(token).sid as string;
    const { answer, id } = await killWhileResolving(vault, b, token, async () => {
      const done = await a.post('/v1/complete', { call_id: exporting, status: 'success', records: 5000 }, a.serverKeys['crm-mcp']);
      expect(done.body).toMatchObject({ quarantined: true });
      return done;
    });
    expectDeny(b, answer, 403, 'session_quarantined');
    await expectKilledInOrder(b, 'initech', id, 'session_quarantined', (e) => e.type === 'quarantine' && e.session === sid, (e) => e.session === sid);
  });

  it('denies on B a call in flight when A revokes its tenant (tenant_revoked), and B serves other tenants', async () => {
    const token = await b.token('initech-reader', 'crm-mcp');
    const other = await a.token('acme-agent', 'crm-mcp');
    await expectAllowed(b, token);
    const { answer, id } = await killWhileResolving(vault, b, token, () => revokeOnA({ tenant: 'initech' }));
    expectDeny(b, answer, 403, 'tenant_revoked');
    await expectKilledInOrder(a, 'initech', id, 'tenant_revoked', (e) => e.type === 'revoke' && e.detail === 'tenant initech', (e) => e.decision === 'allow');
    await expectAllowed(b, other);
  });
});
