import { startCluster, TOOL, type Cluster, type Replica } from '../../bench/cluster';
import { ensureBuiltCli } from '../support/built-cli';
import { describeWithUpstream } from '../support/upstreams';
import { untilAllowed } from './support/until-allowed';
import { startPrivatePostgres, startPrivateRedis, type PrivatePostgres, type PrivateRedis } from './support/private-backends';

/**
 * Scale-out, PostgreSQL away mid-call: the anomaly rule and refused calls.
 * - /v1/complete over `max_records` while PostgreSQL is down answers a typed 503 (it used to be a 500),
 *   keeps the call open, and reports the quarantine only once it is in PostgreSQL — which a Redis
 *   restart (the hot copy lost) then proves.
 * - A call refused 503 `audit_unavailable` leaves no call behind: /v1/complete on it is 404, and the
 *   same call_id is accepted once PostgreSQL is back.
 */
jest.setTimeout(120_000);


describeWithUpstream([], 'scale-out: anomaly rule and refused calls while PostgreSQL is down', () => {
  let postgres: PrivatePostgres;
  let redis: PrivateRedis;
  let cluster: Cluster;

  beforeAll(async () => {
    await ensureBuiltCli();
    [postgres, redis] = await Promise.all([startPrivatePostgres(), startPrivateRedis()]);
    cluster = await startCluster({ replicas: 2, redisUrl: redis.url, adminDatabaseUrl: postgres.url, label: 'callrec', maxRecords: 10 });
  });
  afterAll(async () => {
    await cluster?.close();
    await Promise.all([postgres?.destroy(), redis?.destroy()]);
  });

  test('typed 503s during the outage, the retries succeed after it, and the quarantine outlives a Redis restart', async () => {
    const [r1, r2] = cluster.replicas as [Replica, Replica];
    const exporter = await cluster.token(r1, 'acme-agent');
    const caller = await cluster.token(r1, 'acme-agent');
    const call = (replica: Replica, token: string, callId?: string) =>
      cluster.authorize(replica, { token, tool: TOOL, arguments: { path: 'acme/x' }, ...(callId ? { call_id: callId } : {}) });
    expect((await call(r1, exporter, 'export-1')).status).toBe(200);

    await postgres.stop();
    // The anomaly: typed, and the call is still open for the retry.
    const anomaly = await cluster.complete(r2, { call_id: 'export-1', status: 'success', records: 50 });
    expect(anomaly.status).toBe(503);
    expect(['state_unavailable', 'audit_unavailable']).toContain(anomaly.body.error);
    // A call refused for want of audit leaves nothing to complete.
    const refused = await call(r1, caller, 'refused-1');
    expect([refused.status, refused.body.reason]).toEqual([503, 'audit_unavailable']);
    expect((await cluster.complete(r2, { call_id: 'refused-1', status: 'success' })).status).toBe(404);
    await postgres.start();

    const retried = (await untilAllowed(() => cluster.complete(r1, { call_id: 'export-1', status: 'success', records: 50 }))).at(-1)!;
    expect(retried.body).toMatchObject({ completed: true, quarantined: true });
    const again = (await untilAllowed(() => call(r2, caller, 'refused-1'))).at(-1)!;
    expect(again.body.call_id).toBe('refused-1');
    expect((await cluster.complete(r1, { call_id: 'refused-1', status: 'success' })).status).toBe(200);

    const durable = async () => {
      for (const replica of [r1, r2]) {
        // Serving (after a Redis restart: resubscribed and resynced), and still refusing the quarantined session.
        await untilAllowed(() => call(replica, caller));
        expect((await call(replica, exporter)).body.reason).toBe('session_quarantined');
      }
      const events = (await cluster.operator(r1, 'GET', '/v1/audit?tenant=acme')).body.events as Array<{ type: string; call_id?: string; decision?: string; session?: string }>;
      expect(events.filter((e) => e.call_id === 'refused-1').map((e) => [e.type, e.decision])).toEqual([
        ['authorize', 'allow'],
        ['complete', undefined],
      ]);
      expect(events.filter((e) => e.call_id === 'export-1').map((e) => e.type)).toEqual(['authorize', 'complete', 'quarantine']);
      expect((await cluster.operator(r2, 'GET', '/v1/audit/verify?tenant=acme')).body).toMatchObject({ ok: true });
    };
    await durable();
    // Redis loses its hot copy of quarantines: the replicas reload them from PostgreSQL.
    await redis.kill();
    await redis.start();
    await durable();
  });
});
