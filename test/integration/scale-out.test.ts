import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { startCluster, TOOL, type Cluster, type Replica } from '../../bench/cluster';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * Three real broker processes (`bulkhead serve`) on loopback, sharing one Redis and one PostgreSQL and
 * one master key, behave as one broker: tokens, revocations, quotas, audit and key rotation.
 */
jest.setTimeout(120_000);

const args = (tenant: string) => ({ path: `${tenant}/accounts/42` });

async function authorizeWith(cluster: Cluster, replica: Replica, token: string, tenant: string, extra: Record<string, unknown> = {}) {
  return cluster.authorize(replica, { token, tool: TOOL, arguments: args(tenant), ...extra });
}

describeWithUpstream(['postgres', 'redis'], 'scale-out: three replicas sharing Redis and PostgreSQL', () => {
  const env = upstreamEnv();
  let cluster: Cluster;
  let r1: Replica, r2: Replica, r3: Replica;

  beforeAll(async () => {
    await ensureBuiltCli();
    cluster = await startCluster({
      replicas: 3,
      redisUrl: env.REDIS_URL,
      adminDatabaseUrl: env.DATABASE_URL,
      label: 'scaleout',
      quotas: { globex: { calls_per_minute: 12, concurrency: 1000 }, initech: { calls_per_minute: 1000, concurrency: 3 } },
    });
    [r1, r2, r3] = cluster.replicas as [Replica, Replica, Replica];
  });
  afterAll(async () => {
    await cluster?.close();
  });

  test('a token issued by replica 1 is accepted by replica 3 (shared sealed signing keys)', async () => {
    const token = await cluster.token(r1, 'acme-agent');
    const onThree = await authorizeWith(cluster, r3, token, 'acme');
    expect(onThree.status).toBe(200);
    expect(onThree.body).toMatchObject({ decision: 'allow', tenant: 'acme', principal: 'acme-agent' });
    expect(onThree.body.credential.value).toBe(cluster.upstream.acme);
    expect((await authorizeWith(cluster, r2, token, 'acme')).status).toBe(200);
    // All three publish the same keys.
    const jwks = await Promise.all([r1, r2, r3].map((r) => fetch(`${r.url}/.well-known/jwks.json`).then((res) => res.json())));
    expect(jwks[1]).toEqual(jwks[0]);
    expect(jwks[2]).toEqual(jwks[0]);
  });

  test('a revoke answered by replica 2 is enforced by replicas 1 and 3 on the very next call', async () => {
    const token = await cluster.token(r1, 'acme-agent');
    expect((await authorizeWith(cluster, r1, token, 'acme')).status).toBe(200);
    expect((await authorizeWith(cluster, r3, token, 'acme')).status).toBe(200);
    const session = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sid as string;

    const revoked = await cluster.operator(r2, 'POST', '/v1/revoke', { session, reason: 'scale-out test' });
    expect(revoked.status).toBe(200);
    // No polling, no sleep: "answered" means enforced everywhere.
    const [one, three] = await Promise.all([authorizeWith(cluster, r1, token, 'acme'), authorizeWith(cluster, r3, token, 'acme')]);
    expect([one.status, one.body.reason]).toEqual([403, 'session_revoked']);
    expect([three.status, three.body.reason]).toEqual([403, 'session_revoked']);

    // A tenant revocation, and its restore, travel the same way.
    const other = await cluster.token(r2, 'acme-agent');
    expect((await cluster.operator(r3, 'POST', '/v1/revoke', { tenant: 'acme' })).status).toBe(200);
    expect((await authorizeWith(cluster, r1, other, 'acme')).body.reason).toBe('tenant_revoked');
    expect((await cluster.operator(r2, 'GET', '/v1/tenants/acme')).body.revoked).toBe(true);
    expect((await cluster.operator(r1, 'POST', '/v1/restore', { tenant: 'acme' })).status).toBe(200);
    // The restore lets in new tokens only (test/isolation/restore-not-before.test.ts): the old one stays dead everywhere.
    expect((await authorizeWith(cluster, r3, other, 'acme')).body.reason).toBe('tenant_revoked');
    expect((await authorizeWith(cluster, r3, await cluster.token(r2, 'acme-agent'), 'acme')).status).toBe(200);
    // The session revoked above stays dead (its token predates the tenant revoke, whose reason comes first).
    expect((await authorizeWith(cluster, r2, token, 'acme')).body.reason).toBe('tenant_revoked');
  });

  test('calls per minute hold across replicas: N allowed in total, not N per replica', async () => {
    const token = await cluster.token(r2, 'globex-agent');
    const replicas = [r1, r2, r3];
    const answers = await Promise.all(Array.from({ length: 36 }, (_, i) => authorizeWith(cluster, replicas[i % 3]!, token, 'globex')));
    const allowed = answers.filter((a) => a.status === 200);
    expect(allowed).toHaveLength(12);
    const denied = answers.filter((a) => a.status !== 200);
    expect(denied.every((a) => a.status === 429 && a.body.reason === 'quota_exceeded')).toBe(true);
  });

  test('concurrency slots hold across replicas, and a call completed on another replica frees its slot', async () => {
    const token = await cluster.token(r3, 'initech-agent');
    const replicas = [r1, r2, r3];
    const answers = await Promise.all(Array.from({ length: 9 }, (_, i) => authorizeWith(cluster, replicas[i % 3]!, token, 'initech', { call_id: `slot-${i}` })));
    const allowed = answers.filter((a) => a.status === 200);
    expect(allowed).toHaveLength(3);
    expect(answers.filter((a) => a.status === 429).every((a) => a.body.reason === 'concurrency_exceeded')).toBe(true);
    expect((await cluster.operator(r1, 'GET', '/v1/tenants/initech')).body.quota.in_flight).toBe(3);

    // Complete one on a replica that did not authorize it (any replica can).
    const callId = allowed[0]!.body.call_id as string;
    const opener = answers.findIndex((a) => a.body.call_id === callId) % 3;
    const done = await cluster.complete(replicas[(opener + 1) % 3]!, { call_id: callId, status: 'success' });
    expect(done.status).toBe(200);
    const again = await authorizeWith(cluster, replicas[(opener + 2) % 3]!, token, 'initech', { call_id: 'slot-after' });
    expect(again.status).toBe(200);
  });

  test('concurrent audit writes on three replicas verify as one chain per tenant (API and CLI)', async () => {
    const tokens = await Promise.all([cluster.token(r1, 'acme-agent'), cluster.token(r2, 'acme-agent'), cluster.token(r3, 'acme-agent')]);
    const replicas = [r1, r2, r3];
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => authorizeWith(cluster, replicas[i % 3]!, tokens[(i + 1) % 3]!, 'acme')));
    expect(answers.every((a) => a.status === 200)).toBe(true);

    const verify = await cluster.operator(r2, 'GET', '/v1/audit/verify?tenant=acme');
    expect(verify.body).toMatchObject({ ok: true });
    const events = (await cluster.operator(r3, 'GET', '/v1/audit?tenant=acme&limit=10000')).body.events as Array<{ seq: number; call_id?: string }>;
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
    expect(verify.body.events).toBe(events.length);
    for (const a of answers) expect(events.some((e) => e.call_id === a.body.call_id)).toBe(true);

    // The sealed audit keys open with the replicas' master key (or pass --keys with the published set).
    const cli = await runCli(['audit', 'verify', '--config', cluster.policyFile], { BULKHEAD_MASTER_KEY: cluster.masterKey.toString('base64') });
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/^acme: ok, \d+ events/m);
    expect(cli.stdout).toMatch(/^globex: ok/m);
    expect(cli.stdout).toMatch(/^initech: ok/m);
  });

  test('a key rotation on one replica is followed by the others without waiting for their rotation timer', async () => {
    const jwks = (r: Replica) => fetch(`${r.url}/.well-known/jwks.json`).then((res) => res.json());
    const before = await jwks(r2);
    // Two steps: the new signing key was created by the first of them, so only a replica that followed
    // knows it. The follow timer here is 30 s; the bounded polls below are far shorter than that.
    for (let i = 0; i < 2; i++) expect((await cluster.operator(r1, 'POST', '/v1/keys/rotate')).status).toBe(200);
    const leaderJwks = await jwks(r1);
    expect(leaderJwks).not.toEqual(before);
    const token = await cluster.token(r1, 'acme-agent');
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await authorizeWith(cluster, r3, token, 'acme')).status;
      if (status !== 200) await sleep(20);
    }
    expect(status).toBe(200);
    let followed: unknown = before;
    for (let i = 0; i < 100 && JSON.stringify(followed) !== JSON.stringify(leaderJwks); i++) {
      followed = await jwks(r2);
      if (JSON.stringify(followed) !== JSON.stringify(leaderJwks)) await sleep(20);
    }
    expect(followed).toEqual(leaderJwks);
  });

  test('no secret, token or master key appears in any replica log', async () => {
    await sleep(200);
    const logs = await Promise.all(cluster.replicas.map((r) => readFile(r.logFile, 'utf8')));
    for (const secret of cluster.secrets()) for (const log of logs) expect(log.includes(secret)).toBe(false);
    // Nor the database password of the URL.
    for (const log of logs) expect(log).not.toMatch(/bulkhead:bulkhead@/);
  });
});

describeWithUpstream(['postgres', 'redis'], 'scale-out: signing-key rotation leadership', () => {
  const env = upstreamEnv();
  let cluster: Cluster;

  beforeAll(async () => {
    await ensureBuiltCli();
    // A 3 s rotation period: the leader checks every 750 ms and holds a 2.25 s lease.
    cluster = await startCluster({ replicas: 3, redisUrl: env.REDIS_URL, adminDatabaseUrl: env.DATABASE_URL, label: 'rotation', signingKeyRotation: '3s' });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  async function lease(db: Client): Promise<{ pid: number } | null> {
    const result = await db.query("SELECT holder FROM bulkhead_leases WHERE name = 'signing-key-rotation' AND expires_at > now()");
    const holder = result.rows[0]?.holder as string | undefined;
    return holder ? { pid: Number(holder.split(':')[1]) } : null;
  }

  async function currentActivatedAt(db: Client): Promise<number> {
    const ring = (await db.query('SELECT ring FROM bulkhead_signing_keys WHERE id = 1')).rows[0].ring as { keys: Array<{ state: string; activated_at?: number; created_at: number }> };
    const current = ring.keys.find((k) => k.state === 'current')!;
    return current.activated_at ?? current.created_at;
  }

  async function waitFor<T>(what: string, probe: () => Promise<T | null | false>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  test('exactly one replica rotates; killing it hands rotation to another replica', async () => {
    const db = new Client({ connectionString: cluster.databaseUrl });
    await db.connect();
    try {
      const first = await waitFor('a lease holder', () => lease(db));
      const leader = cluster.replicas.find((r) => r.pid === first.pid)!;
      expect(leader).toBeDefined();
      // Let the leader rotate at least once, then check nobody else did.
      const startedAt = await currentActivatedAt(db);
      await waitFor('a rotation by the first leader', async () => (await currentActivatedAt(db)) > startedAt);
      // When each replica logged a rotation (its log line's time). Logs reach the file within 100 ms of
      // the event (buffered), so the lines are waited for, and who rotated when is read from their times.
      const rotations = async (r: Replica) =>
        (await readFile(r.logFile, 'utf8'))
          .split('\n')
          .filter((line) => line.includes('"msg":"signing key rotated"'))
          .map((line) => (JSON.parse(line) as { time: number }).time);
      await waitFor('the first leader logging its rotation', async () => (await rotations(leader)).length > 0);

      await leader.kill();
      const killedAt = Date.now();
      const next = await waitFor('a new lease holder', async () => {
        const held = await lease(db);
        return held && held.pid !== first.pid ? held : null;
      });
      const successor = cluster.replicas.find((r) => r.pid === next.pid)!;
      expect(successor).toBeDefined();
      expect(successor.exited()).toBe(false);
      await waitFor('a rotation by the new leader', async () => (await currentActivatedAt(db)) > killedAt);
      await waitFor('the new leader logging its rotation', async () => (await rotations(successor)).some((at) => at > killedAt));
      // Nobody but the first leader rotated while it held the lease (those lines, had there been any,
      // were logged before the kill and have long reached the files).
      for (const r of cluster.replicas.filter((x) => x !== leader)) expect((await rotations(r)).filter((at) => at < killedAt)).toEqual([]);

      // The survivors still accept each other's tokens after the new leader's rotations.
      const [a, b] = cluster.replicas.filter((r) => r !== leader) as [Replica, Replica];
      const token = await cluster.token(a, 'acme-agent');
      const answer = await cluster.authorize(b, { token, tool: TOOL, arguments: args('acme') });
      expect(answer.status).toBe(200);
    } finally {
      await db.end();
    }
  });
});
