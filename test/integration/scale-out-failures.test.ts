import { startCluster, TOOL, type Cluster, type HttpAnswer, type Replica } from '../../bench/cluster';
import { ensureBuiltCli } from '../support/built-cli';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { untilAllowed } from './support/until-allowed';
import { startPrivatePostgres, startPrivateRedis, type PrivatePostgres, type PrivateRedis } from './support/private-backends';

/**
 * Fail closed, recover by itself: two replicas lose Redis, or PostgreSQL, mid-run. While a backend is
 * gone no call is allowed (every answer is a typed 503); when it returns, the replicas serve again
 * without a restart, and nothing that happened during the outage is lost or let through.
 *
 * Each test runs its own redis-server or PostgreSQL (own port and data dir), so stopping it does not
 * disturb anyone else's tests on the shared instances.
 */
jest.setTimeout(120_000);

const sid = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sid as string;


describeWithUpstream(['postgres', 'redis'], 'scale-out: Redis goes down mid-run', () => {
  const env = upstreamEnv();
  let redis: PrivateRedis;
  let cluster: Cluster;

  beforeAll(async () => {
    await ensureBuiltCli();
    redis = await startPrivateRedis();
    cluster = await startCluster({ replicas: 2, redisUrl: redis.url, adminDatabaseUrl: env.DATABASE_URL, label: 'redisdown' });
  });
  afterAll(async () => {
    await cluster?.close();
    await redis?.destroy();
  });

  test('no allow while Redis is unreachable; a revocation stored during the outage is enforced everywhere after it', async () => {
    const [r1, r2] = cluster.replicas as [Replica, Replica];
    const live = await cluster.token(r1, 'acme-agent');
    const doomed = await cluster.token(r2, 'acme-agent');
    const call = (replica: Replica, token: string) => cluster.authorize(replica, { token, tool: TOOL, arguments: { path: 'acme/x' } });
    expect((await call(r1, live)).status).toBe(200);
    expect((await call(r2, doomed)).status).toBe(200);

    await redis.kill();
    const during: HttpAnswer[] = [];
    for (let i = 0; i < 20; i++) during.push(await call(i % 2 ? r1 : r2, live));
    expect(during.map((a) => [a.status, a.body.reason])).toEqual(during.map(() => [503, 'state_unavailable']));
    // /readyz tells the load balancer, and names what failed (never a tenant: a platform endpoint).
    const down = await cluster.operator(r1, 'GET', '/readyz');
    expect([down.status, down.body.status, down.body.checks.redis]).toEqual([503, 'not_ready', false]);
    expect(down.body.problems.redis).toMatch(/^redis: /);
    expect(JSON.stringify(down.body)).not.toMatch(/acme|globex|initech/);

    // The revocation reaches PostgreSQL but cannot be pushed: the operator is told, not reassured.
    const revoke = await cluster.operator(r1, 'POST', '/v1/revoke', { session: sid(doomed) });
    expect([revoke.status, revoke.body.error]).toEqual([503, 'state_unavailable']);

    await redis.start();
    const recovering = await untilAllowed(() => call(r2, live));
    expect(recovering.slice(0, -1).every((a) => a.status === 503)).toBe(true);
    // Replica 2 never heard the push; it re-read the table when it resubscribed.
    expect((await call(r2, doomed)).body.reason).toBe('session_revoked');
    expect((await call(r1, doomed)).body.reason).toBe('session_revoked');
    await untilAllowed(() => call(r1, live));
    for (const replica of [r1, r2]) {
      const ready = await cluster.operator(replica, 'GET', '/readyz');
      expect([ready.status, ready.body.checks.redis, ready.body.problems]).toEqual([200, true, undefined]);
    }
    expect((await cluster.operator(r2, 'GET', '/v1/audit/verify?tenant=acme')).body).toMatchObject({ ok: true });
  });
});

describeWithUpstream(['redis'], 'scale-out: PostgreSQL goes down mid-run', () => {
  const env = upstreamEnv();
  let postgres: PrivatePostgres;
  let cluster: Cluster;

  beforeAll(async () => {
    await ensureBuiltCli();
    postgres = await startPrivatePostgres();
    cluster = await startCluster({ replicas: 2, redisUrl: env.REDIS_URL, adminDatabaseUrl: postgres.url, label: 'pgdown' });
  });
  afterAll(async () => {
    await cluster?.close();
    await postgres?.destroy();
  });

  test('no allow while PostgreSQL is unreachable (the audit cannot be made durable); recovery after, with an intact chain', async () => {
    const [r1, r2] = cluster.replicas as [Replica, Replica];
    const token = await cluster.token(r1, 'acme-agent');
    const call = (replica: Replica) => cluster.authorize(replica, { token, tool: TOOL, arguments: { path: 'acme/x' } });
    expect((await call(r1)).status).toBe(200);
    expect((await call(r2)).status).toBe(200);

    await postgres.stop();
    const during: HttpAnswer[] = [];
    for (let i = 0; i < 10; i++) during.push(await call(i % 2 ? r1 : r2));
    expect(during.every((a) => a.status === 503 && ['audit_unavailable', 'state_unavailable'].includes(a.body.reason))).toBe(true);
    expect(during.some((a) => a.body.reason === 'audit_unavailable')).toBe(true);
    for (const replica of [r1, r2]) {
      const down = await cluster.operator(replica, 'GET', '/readyz');
      expect([down.status, down.body.checks.postgres]).toEqual([503, false]);
      expect(down.body.problems.postgres).toMatch(/^postgres: /);
      expect(JSON.stringify(down.body)).not.toMatch(/acme|globex|initech/);
    }
    // A revoke that cannot be made durable is refused, and nothing is revoked.
    const revoke = await cluster.operator(r2, 'POST', '/v1/revoke', { session: sid(token) });
    expect([revoke.status, revoke.body.error]).toEqual([503, 'state_unavailable']);

    await postgres.start();
    const recovering = await untilAllowed(() => call(r1));
    expect(recovering.slice(0, -1).every((a) => a.status === 503)).toBe(true);
    await untilAllowed(() => call(r2));
    for (const replica of [r1, r2]) {
      const ready = await cluster.operator(replica, 'GET', '/readyz');
      expect([ready.status, ready.body.checks.postgres, ready.body.problems]).toEqual([200, true, undefined]);
    }
    const verify = await cluster.operator(r2, 'GET', '/v1/audit/verify?tenant=acme');
    expect(verify.body).toMatchObject({ ok: true });
    const events = (await cluster.operator(r1, 'GET', '/v1/audit?tenant=acme')).body.events as Array<{ seq: number; decision?: string }>;
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    // Only the allows that were answered 200 are recorded as allows.
    expect(events.filter((e) => e.decision === 'allow')).toHaveLength(4);
  });
});
