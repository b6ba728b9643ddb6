import { readFileSync, writeFileSync } from 'node:fs';
import { createLocalSecretStore } from '../../adapters/local';
import { startCluster, SERVER, TOOL, type Cluster, type Replica } from '../../bench/cluster';
import { sha256Hex } from '../../src/crypto/hash';
import { ensureBuiltCli } from '../support/built-cli';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { until } from '../support/until';

/**
 * Live policy reload on three real `bulkhead serve` replicas sharing Redis and PostgreSQL and one policy
 * file: a reload asked of one replica is announced, the others reload their own file, and /readyz and
 * /metrics show them converge on one version; a new tenant serves on every replica, a removed principal
 * is denied on every replica, and a bad file is refused everywhere while the old policy keeps serving.
 */
jest.setTimeout(120_000);

const HOOLI_SECRET = 'hooli-client-secret-0123456789abcdefghij';

describeWithUpstream(['postgres', 'redis'], 'scale-out: live policy reload converges on three replicas', () => {
  const env = upstreamEnv();
  let cluster: Cluster;
  let replicas: Replica[];
  let original: string;

  beforeAll(async () => {
    await ensureBuiltCli();
    cluster = await startCluster({ replicas: 3, redisUrl: env.REDIS_URL, adminDatabaseUrl: env.DATABASE_URL, label: 'reload' });
    replicas = cluster.replicas;
    original = readFileSync(cluster.policyFile, 'utf8');
  });
  afterAll(async () => {
    await cluster?.close();
  });

  const versions = () => Promise.all(replicas.map(async (r) => ((await (await fetch(`${r.url}/readyz`)).json()) as { policy_version: string }).policy_version));
  const metricVersions = () => Promise.all(replicas.map(async (r) => /bulkhead_policy_info\{version="([0-9a-f]+)"\} 1/.exec(await (await fetch(`${r.url}/metrics`)).text())?.[1]));
  const authorize = (r: Replica, token: string, tenant: string) => cluster.authorize(r, { token, tool: TOOL, arguments: { path: `${tenant}/accounts/1` } });

  test('one reload request: every replica converges on the new version and serves it', async () => {
    const [first] = await versions();
    expect(new Set(await versions())).toEqual(new Set([first]));
    const globexToken = await cluster.token(replicas[1]!, 'globex-agent');
    expect((await authorize(replicas[2]!, globexToken, 'globex')).status).toBe(200);

    const doc = JSON.parse(original);
    doc.tenants.hooli = structuredClone(doc.tenants.acme);
    doc.tenants.hooli.principals = { 'hooli-agent': { secret_sha256: sha256Hex(HOOLI_SECRET), tools: [TOOL] } };
    doc.tenants.hooli.tools[TOOL].resource.prefix = 'hooli/';
    delete doc.tenants.globex.principals['globex-agent'];
    for (const r of replicas) await createLocalSecretStore({ dataDir: r.dataDir, masterKey: cluster.masterKey }).set('hooli', 'crm', 'hooli-upstream');
    writeFileSync(cluster.policyFile, JSON.stringify(doc, null, 2));

    const answer = await cluster.operator(replicas[0]!, 'POST', '/v1/policy/reload', {});
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ changed: true, previous_version: first, diff: { tenants: { added: ['hooli'], changed: ['globex'] } } });
    const next = answer.body.version as string;
    await until(async () => (await versions()).every((v) => v === next), 'replicas did not converge', 400);
    expect(await metricVersions()).toEqual([next, next, next]);

    const issued = await fetch(`${replicas[2]!.url}/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'hooli-agent', client_secret: HOOLI_SECRET, audience: SERVER }),
    });
    const hooliToken = ((await issued.json()) as { access_token: string }).access_token;
    for (const r of replicas) {
      const allowed = await authorize(r, hooliToken, 'hooli');
      expect([allowed.status, allowed.body.tenant, allowed.body.credential?.value]).toEqual([200, 'hooli', 'hooli-upstream']);
      const denied = await authorize(r, globexToken, 'globex');
      expect([denied.status, denied.body.reason]).toEqual([403, 'token_revoked']);
    }
  });

  test('a bad file is refused by the replica asked and on SIGHUP; no replica changes version', async () => {
    const serving = await versions();
    expect(new Set(serving).size).toBe(1);
    const doc = JSON.parse(original);
    doc.tenants.acme.tools[TOOL].credential = 'gone';
    writeFileSync(cluster.policyFile, JSON.stringify(doc, null, 2));

    const answer = await cluster.operator(replicas[1]!, 'POST', '/v1/policy/reload', {});
    expect([answer.status, answer.body.error]).toEqual([422, 'policy_invalid']);
    expect(answer.body.issues).toEqual([expect.stringMatching(/tenants\.acme\.tools\.query_crm\.credential: unknown credential "gone"/)]);
    process.kill(replicas[2]!.pid, 'SIGHUP');
    await until(async () => readFileSync(replicas[2]!.logFile, 'utf8').includes('policy reload refused'), 'replica 3 did not log the refused reload', 400);

    expect(await versions()).toEqual(serving);
    const token = await cluster.token(replicas[0]!, 'acme-agent');
    for (const r of replicas) expect((await authorize(r, token, 'acme')).status).toBe(200);
    expect(replicas.every((r) => !r.exited())).toBe(true);
  });
});
