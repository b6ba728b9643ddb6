import { startCluster, TOOL, type Cluster } from '../../bench/cluster';
import { ensureBuiltCli } from '../support/built-cli';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * Budgets across three real replicas sharing Redis: parallel calls spread over the replicas spend a
 * tenant's budget exactly once (never a budget per replica), every replica reports the same use, and a
 * usage report completed on another replica corrects the charge everywhere. (Daily windows: the test
 * runs on the real clock; the hourly and daily window logic is proven on an injected clock in
 * test/isolation/budgets.test.ts.)
 */
jest.setTimeout(120_000);

describeWithUpstream(['postgres', 'redis'], 'scale-out: budgets are atomic across replicas', () => {
  const env = upstreamEnv();
  let cluster: Cluster;
  beforeAll(async () => {
    await ensureBuiltCli();
    cluster = await startCluster({
      replicas: 3,
      redisUrl: env.REDIS_URL,
      adminDatabaseUrl: env.DATABASE_URL,
      label: 'budgets',
      extendPolicy: (policy) => {
        policy.tenants.globex.budgets = { daily: 9 };
        policy.tenants.globex.tools[TOOL].cost = 3;
      },
    });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  test('12 parallel calls over 3 replicas against a budget of 3 calls: exactly 3 allowed, 9 denied', async () => {
    const replicas = cluster.replicas;
    const token = await cluster.token(replicas[0]!, 'globex-agent');
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => cluster.authorize(replicas[i % 3]!, { token, tool: TOOL, arguments: { path: 'globex/x' }, call_id: `budget-${i}` })),
    );
    const allowed = answers.filter((a) => a.status === 200);
    expect(allowed).toHaveLength(3);
    expect(answers.filter((a) => a.status === 429).every((a) => a.body.reason === 'budget_exceeded')).toBe(true);
    const uses = await Promise.all(replicas.map(async (r) => (await cluster.operator(r, 'GET', '/v1/tenants/globex')).body.budget.daily.used));
    expect(uses).toEqual([9, 9, 9]);

    // Reported usage, completed on a replica that did not authorize the call, refunds everywhere.
    const first = allowed[0]!.body.call_id as string;
    const opener = answers.findIndex((a) => a.body.call_id === first) % 3;
    expect((await cluster.complete(replicas[(opener + 1) % 3]!, { call_id: first, status: 'success', usage: { cost: 0 } })).status).toBe(200);
    const after = await Promise.all(replicas.map(async (r) => (await cluster.operator(r, 'GET', '/v1/tenants/globex')).body.budget.daily.used));
    expect(after).toEqual([6, 6, 6]);
    const again = await cluster.authorize(replicas[2]!, { token, tool: TOOL, arguments: { path: 'globex/x' }, call_id: 'budget-after-refund' });
    expect(again.status).toBe(200);
    // acme has no budget and is not affected.
    const acme = await cluster.token(replicas[1]!, 'acme-agent');
    expect((await cluster.authorize(replicas[0]!, { token: acme, tool: TOOL, arguments: { path: 'acme/x' } })).status).toBe(200);
  });
});
