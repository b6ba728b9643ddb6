import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, TOOL, type Cluster, type HttpAnswer, type Replica } from '../../bench/cluster';
import { systemClock } from '../../src/clock';
import { deadlineBound } from '../../src/deadline';
import { createPostgresAuditLog } from '../../src/state/postgres/audit-log';
import { createPgPool } from '../../src/state/postgres/pool';
import { ensureBuiltCli } from '../support/built-cli';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { untilAllowed } from './support/until-allowed';
import { startPrivatePostgres, type PrivatePostgres } from './support/private-backends';

/**
 * PostgreSQL drops the connections a replica holds inside its audit transactions — a terminated
 * backend, a backend killed with SIGKILL (the server then restarts every session), a fast shutdown —
 * or stops answering altogether. A replica must survive every one of them (an 'error' event on a
 * checked-out pg client used to end the process), answer only typed 503s while the database is away,
 * serve again once it is back without a restart, and have lost no acknowledged allow.
 */
jest.setTimeout(180_000);

const TYPED_503 = new Set(['audit_unavailable', 'state_unavailable']);


/** Keeps `workers` authorize loops busy on every replica until stopped; records every answer. */
function startLoad(cluster: Cluster, token: string, workers: number): { answers: HttpAnswer[]; stop(): Promise<void> } {
  const answers: HttpAnswer[] = [];
  let running = true;
  const loops = cluster.replicas.flatMap((replica) =>
    Array.from({ length: workers }, async () => {
      while (running) {
        const answer = await cluster.authorize(replica, { token, tool: TOOL, arguments: { path: 'acme/x' } }).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
        answers.push(answer);
        if (answer.status !== 200) await sleep(20);
      }
    }),
  );
  return {
    answers,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function allowsInAudit(cluster: Cluster, replica: Replica): Promise<number> {
  // Paged: a fast machine answers more than one page (1000 records) of allows during the faults.
  const events: Array<{ seq: number; decision?: string }> = [];
  for (;;) {
    const page = (await cluster.operator(replica, 'GET', `/v1/audit?tenant=acme&after=${events.length}&limit=1000`)).body.events as Array<{ seq: number; decision?: string }>;
    events.push(...page);
    if (page.length < 1000) break;
  }
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  return events.filter((e) => e.decision === 'allow').length;
}

describeWithUpstream(['redis'], 'scale-out: PostgreSQL drops the connections of open transactions', () => {
  const env = upstreamEnv();
  let postgres: PrivatePostgres;
  let cluster: Cluster;
  let token: string;
  /** Every 200 the replicas answered, across all faults: each must be an allow in the audit chain. */
  let acknowledged = 0;

  beforeAll(async () => {
    await ensureBuiltCli();
    postgres = await startPrivatePostgres();
    cluster = await startCluster({ replicas: 2, redisUrl: env.REDIS_URL, adminDatabaseUrl: postgres.url, label: 'pgloss' });
    token = await cluster.token(cluster.replicas[0]!, 'acme-agent');
  });
  afterAll(async () => {
    await cluster?.close();
    await postgres?.destroy();
  });

  const backends = async () => (await postgres.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'bulkhead'")).map((r) => Number(r.pid));

  test.each([
    ['pg_terminate_backend of every broker session', async () => void (await postgres.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bulkhead'"))],
    [
      'SIGKILL of a broker backend (the server then ends every session and recovers)',
      async () => {
        for (const pid of (await backends()).slice(0, 1)) process.kill(pid, 'SIGKILL');
      },
    ],
    [
      'pg_ctl stop -m fast, then start',
      async () => {
        await postgres.stopFast();
        await sleep(500);
        await postgres.start();
      },
    ],
  ])('%s under load: both replicas live on, answer only typed 503s, and serve again', async (_name, fault) => {
    const load = startLoad(cluster, token, 4);
    // Faults land on connections inside audit transactions only if calls are flowing.
    while (load.answers.filter((a) => a.status === 200).length < 20) {
      if (cluster.replicas.some((r) => r.exited())) throw new Error('a replica has died (an earlier fault ended it)');
      await sleep(20);
    }
    const before = load.answers.length;
    await fault();
    await sleep(1500);
    await load.stop();

    expect(cluster.replicas.map((r) => r.exited())).toEqual([false, false]);
    const failures = load.answers.slice(before).filter((a) => a.status !== 200);
    expect(failures.filter((a) => a.status !== 503 || !TYPED_503.has(a.body.reason))).toEqual([]);
    for (const replica of cluster.replicas) await untilAllowed(() => cluster.authorize(replica, { token, tool: TOOL, arguments: { path: 'acme/x' } }));
    acknowledged += load.answers.filter((a) => a.status === 200).length + cluster.replicas.length;

    // No acknowledged allow is lost (a COMMIT whose answer was cut off may add one the caller never saw).
    expect(await allowsInAudit(cluster, cluster.replicas[1]!)).toBeGreaterThanOrEqual(acknowledged);
    expect((await cluster.operator(cluster.replicas[0]!, 'GET', '/v1/audit/verify?tenant=acme')).body).toMatchObject({ ok: true });
  });

  test('a hung PostgreSQL (every server process stopped): typed 503s, service returns when it carries on, and a restart keeps the chain', async () => {
    const [r1, r2] = cluster.replicas as [Replica, Replica];
    const call = (replica: Replica) => cluster.authorize(replica, { token, tool: TOOL, arguments: { path: 'acme/x' } });
    postgres.freeze();
    try {
      const during: HttpAnswer[] = [];
      for (let i = 0; i < 4; i++) during.push(await call(i % 2 ? r1 : r2));
      expect(during.map((a) => [a.status, a.body.reason])).toEqual(during.map(() => [503, 'audit_unavailable']));
      expect(cluster.replicas.map((r) => r.exited())).toEqual([false, false]);
    } finally {
      postgres.thaw();
    }
    await untilAllowed(() => call(r1));
    await untilAllowed(() => call(r2));
    acknowledged += 2;

    // Durable afterwards: a crash-restart of the database keeps every acknowledged allow and the chain.
    await postgres.stop();
    await postgres.start();
    await untilAllowed(() => call(r1));
    acknowledged += 1;
    expect(await allowsInAudit(cluster, r2)).toBeGreaterThanOrEqual(acknowledged);
    expect((await cluster.operator(r2, 'GET', '/v1/audit/verify?tenant=acme')).body).toMatchObject({ ok: true });
  });

  test("a hung PostgreSQL: every audit append ends at its own deadline (the pool's far longer bounds never fire), queued ones too", async () => {
    // Pool bounds 30 s, audit bound 300 ms: if the transaction were not bounded as a whole, the appends
    // below would fail by a pool timeout instead (or hang past the test's limit).
    const pool = createPgPool({ url: cluster.databaseUrl, timeoutMs: 30_000 });
    const audit = createPostgresAuditLog({ pool, clock: systemClock, timeoutMs: 300, groupCommitMs: 0 });
    try {
      // Warm the pool first; on a loaded machine a cold connect can itself take longer than 300 ms.
      await untilAppended(audit);
      postgres.freeze();
      let failures: unknown[];
      try {
        const first = audit.append('acme', { type: 'token', detail: 'probe' }).then(
          () => null,
          (err: unknown) => err,
        );
        await sleep(100);
        // Queued behind the hung batch: its own deadline, not the sum of both.
        const second = audit.append('acme', { type: 'token', detail: 'probe' }).then(
          () => null,
          (err: unknown) => err,
        );
        failures = await Promise.all([first, second]);
      } finally {
        postgres.thaw();
      }
      expect(failures.map((err) => [(err as { reason?: string }).reason, deadlineBound(err)])).toEqual([
        ['audit_unavailable', 'audit commit'],
        ['audit_unavailable', 'audit commit'],
      ]);
      // Recovered without a new pool: the hung connection was discarded.
      await untilAppended(audit);
      expect((await audit.verify('acme')).ok).toBe(true);
    } finally {
      await audit.close();
      await pool.end();
    }
  });
});

/** Appends a probe, retrying a few times: only a bound that fired while PostgreSQL was frozen is under test. */
async function untilAppended(audit: { append(tenant: string, event: { type: 'token'; detail: string }): Promise<{ tenant: string }> }): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      expect(await audit.append('acme', { type: 'token', detail: 'probe' })).toMatchObject({ tenant: 'acme' });
      return;
    } catch (err) {
      if (attempt >= 10) throw err;
    }
  }
}
