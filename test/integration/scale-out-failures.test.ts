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
    expect((await cluster.operator(r1, 'GET', '/readyz')).status).toBe(503);

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
    expect((await cluster.operator(r2, 'GET', '/readyz')).status).toBe(200);
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
    // A revoke that cannot be made durable is refused, and nothing is revoked.
    const revoke = await cluster.operator(r2, 'POST', '/v1/revoke', { session: sid(token) });
    expect([revoke.status, revoke.body.error]).toEqual([503, 'state_unavailable']);

    await postgres.start();
    const recovering = await untilAllowed(() => call(r1));
    expect(recovering.slice(0, -1).every((a) => a.status === 503)).toBe(true);
    await untilAllowed(() => call(r2));
    const verify = await cluster.operator(r2, 'GET', '/v1/audit/verify?tenant=acme');
    expect(verify.body).toMatchObject({ ok: true });
    const events = (await cluster.operator(r1, 'GET', '/v1/audit?tenant=acme')).body.events as Array<{ seq: number; decision?: string }>;
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    // Only the allows that were answered 200 are recorded as allows.
    expect(events.filter((e) => e.decision === 'allow')).toHaveLength(4);
  });
});
