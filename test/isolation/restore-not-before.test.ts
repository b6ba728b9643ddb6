import { randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { createScratchDatabase, deleteRedisPrefix, scratchPrefix } from '../../bench/scratch-state';
import { manualClock, systemClock } from '../../src/clock';
import { createLogger } from '../../src/observability/logger';
import { createPgPool } from '../../src/state/postgres/pool';
import { initSchema } from '../../src/state/postgres/schema';
import { createSharedState } from '../../src/state/shared-state';
import { startHarness, type Harness } from '../support/broker-harness';
import { callId, claimsOf, expectAllow, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * POST /v1/restore lets new tokens in, not old ones: a tenant revoke is the tenant's "not before", so a
 * token with iat at or before the (latest) revoke's second stays `tenant_revoked` after the restore —
 * on the embedded default across restarts, and scaled out on every replica, including one that starts
 * after the restore and learns everything from PostgreSQL. Tokens issued after the restore answered work.
 */

const EXCHANGE = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' };
const SECOND = 1000;

async function expectDead(h: Harness, token: string): Promise<void> {
  const tenant = claimsOf(token).tid as string;
  const server = claimsOf(token).aud as string;
  const ids = [callId('old-token'), callId('old-token')];
  const tools = server === 'mail-mcp' ? ['send_email', 'send_email'] : ['query_crm', 'export_report'];
  expectDeny(h, await h.authorize(server, { token, tool: tools[0], arguments: { path: `${tenant}/x` }, call_id: ids[0] }), 403, 'tenant_revoked');
  expectDeny(h, await h.authorize(server, { token, tool: tools[1], arguments: {}, call_id: ids[1] }), 403, 'tenant_revoked');
  await expectNoAllowAnywhere(h, ids);
  const principal = claimsOf(token).sub as string;
  const refresh = await h.tokenRequest({ ...EXCHANGE, subject_token: token, client_id: principal, client_secret: h.clientSecrets[principal] });
  expect([refresh.status, refresh.body.error]).toEqual([400, 'invalid_grant']);
  expect(refresh.body).not.toHaveProperty('access_token');
  const manifest = await h.post('/v1/manifest', { token }, h.serverKeys[server]);
  expect(manifest.body).not.toHaveProperty('tools');
}

async function expectAlive(h: Harness, token: string): Promise<void> {
  const tenant = claimsOf(token).tid as string;
  expectAllow(h, await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: `${tenant}/x` } }), tenant);
}

const operator = (h: Harness, path: string, body: Record<string, string>) => h.post(path, body, h.operatorToken);

describe('embedded default, on a clock the test moves', () => {
  let h: Harness;
  // Start a whole second, so each token's iat is the second the test means.
  const S = Math.floor(Date.UTC(2030, 0, 1, 9, 0, 0) / SECOND);
  const clock = manualClock(S * SECOND + 100);
  const old: Record<string, string> = {};

  beforeAll(async () => {
    h = await startHarness({ brokerOptions: { clock } });
    clock.set((S - 5) * SECOND);
    old.earlier = await h.token('acme-agent', 'crm-mcp', { expires_in: '3600' });
    old.reader = await h.token('acme-reader', 'crm-mcp', { expires_in: '3600' });
    old.otherServer = await h.token('acme-agent', 'mail-mcp', { expires_in: '3600' });
    clock.set(S * SECOND + 100);
    old.sameSecond = await h.token('acme-agent', 'crm-mcp', { expires_in: '3600' });
    old.refreshedSameSecond = (await h.tokenRequest({ ...EXCHANGE, subject_token: old.earlier, client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'], expires_in: 3600 })).body.access_token;
    old.globex = await h.token('globex-agent', 'crm-mcp', { expires_in: '3600' });
    expect(claimsOf(old.sameSecond!).iat).toBe(S);
    expect(claimsOf(old.refreshedSameSecond!).iat).toBe(S);
    for (const [name, token] of Object.entries(old)) if (name !== 'otherServer') await expectAlive(h, token);

    clock.set(S * SECOND + 900); // revoke in the same second as those tokens were issued
    expect((await operator(h, '/v1/revoke', { tenant: 'acme', reason: 'not-before test' })).status).toBe(200);
    clock.set((S + 1) * SECOND + 10);
    expect((await operator(h, '/v1/restore', { tenant: 'acme' })).body).toEqual({ restored: true, tenant: 'acme' });
  });
  afterAll(async () => {
    await h?.close();
  });

  it.each([['earlier'], ['reader'], ['otherServer'], ['sameSecond'], ['refreshedSameSecond']])('keeps the %s token (iat ≤ the revoke second) dead after the restore', async (name) => {
    await expectDead(h, old[name]!);
  });

  it('lets in a token issued after the restore, and its refreshes, while globex never noticed', async () => {
    const fresh = await h.token('acme-agent', 'crm-mcp');
    expect(claimsOf(fresh).iat).toBe(S + 1);
    await expectAlive(h, fresh);
    const refreshed = await h.tokenRequest({ ...EXCHANGE, subject_token: fresh, client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] });
    expect(refreshed.status).toBe(200);
    await expectAlive(h, refreshed.body.access_token);
    await expectAlive(h, old.globex!);
    old.betweenRevokes = fresh;
  });

  it('keeps every old token dead, and the new one alive, across a restart', async () => {
    await h.restart();
    for (const name of ['earlier', 'reader', 'otherServer', 'sameSecond', 'refreshedSameSecond']) await expectDead(h, old[name]!);
    await expectAlive(h, old.betweenRevokes!);
    await expectAlive(h, old.globex!);
  });

  it('moves "not before" forward on a second revoke: tokens from between the two stay dead after the second restore', async () => {
    clock.set((S + 30) * SECOND);
    expect((await operator(h, '/v1/revoke', { tenant: 'acme' })).status).toBe(200);
    clock.set((S + 40) * SECOND);
    expect((await operator(h, '/v1/restore', { tenant: 'acme' })).status).toBe(200);
    await expectDead(h, old.betweenRevokes!);
    await expectDead(h, old.sameSecond!);
    await h.restart();
    await expectDead(h, old.betweenRevokes!);
    await expectAlive(h, await h.token('acme-agent', 'crm-mcp'));
  });

  it('leaks nothing', async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});

describe('embedded default, real clock: revoke and restore back to back', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('answers the restore only once new tokens work: the very next token is alive, the old one dead', async () => {
    for (let round = 0; round < 3; round++) {
      const before = await h.token('initech-agent', 'crm-mcp');
      await expectAlive(h, before);
      expect((await operator(h, '/v1/revoke', { tenant: 'initech' })).status).toBe(200);
      expect((await operator(h, '/v1/restore', { tenant: 'initech' })).status).toBe(200);
      const after = await h.token('initech-agent', 'crm-mcp');
      await expectAlive(h, after);
      await expectDead(h, before);
    }
  });
});

describeWithUpstream(['postgres', 'redis'], 'scale-out: replicas sharing PostgreSQL and Redis', () => {
  const env = upstreamEnv();
  const masterKey = randomBytes(32);
  const prefix = scratchPrefix('notbefore');
  let db: Awaited<ReturnType<typeof createScratchDatabase>>;
  let pool: Pool;
  const harnesses: Harness[] = [];

  async function replica(): Promise<Harness> {
    const state = await createSharedState({ redisUrl: env.REDIS_URL, postgresUrl: db.url, redisPrefix: prefix, masterKey, clock: systemClock, logger: createLogger({ level: 'silent' }) });
    // One master key for the whole deployment, as replicas have in production: it wraps what they share.
    const h = await startHarness({ brokerOptions: { state, env: { BULKHEAD_MASTER_KEY: masterKey.toString('base64') } } });
    harnesses.push(h);
    return h;
  }

  beforeAll(async () => {
    db = await createScratchDatabase(env.DATABASE_URL, 'not_before');
    pool = createPgPool({ url: db.url, timeoutMs: 5000 });
    await initSchema(pool);
  });
  afterAll(async () => {
    for (const h of harnesses) await h.close().catch(() => undefined);
    await pool?.end();
    await deleteRedisPrefix(env.REDIS_URL, prefix);
    await db?.drop();
  });

  it('keeps tokens issued before the revoke dead on every replica after a restore made on one, including a replica started afterwards', async () => {
    const [one, two] = [await replica(), await replica()];
    // Tokens from replica one (its client secrets), accepted by both: one signing key ring.
    const old = await one.token('acme-agent', 'crm-mcp');
    await expectAlive(one, old);
    await expectAlive(two, old);

    expect((await operator(two, '/v1/revoke', { tenant: 'acme' })).status).toBe(200);
    await expectDead(one, old);
    expect((await operator(one, '/v1/restore', { tenant: 'acme' })).status).toBe(200);
    await expectDead(one, old);
    await expectDead(two, old);

    const fresh = await two.token('acme-agent', 'crm-mcp');
    await expectAlive(one, fresh);
    await expectAlive(two, fresh);

    // A replica that never saw the push: it learns the "not before" from PostgreSQL alone.
    const three = await replica();
    await expectDead(three, old);
    await expectAlive(three, fresh);
    expect((await three.get('/v1/tenants/acme', three.operatorToken)).body.revoked).toBe(false);
  });
});
