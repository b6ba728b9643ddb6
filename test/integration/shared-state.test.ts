import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import type { Pool } from 'pg';
import { systemClock } from '../../src/clock';
import { randomBytes } from 'node:crypto';
import { createLogger } from '../../src/observability/logger';
import { createPostgresKeyStorage } from '../../src/state/postgres/key-storage';
import { createPostgresLeaderLock } from '../../src/state/postgres/leader-lock';
import { createPgPool } from '../../src/state/postgres/pool';
import { createRevocationTable } from '../../src/state/postgres/revocation-table';
import { assertSchema, initSchema } from '../../src/state/postgres/schema';
import { createFeedSigner } from '../../src/state/redis/feed-signer';
import { createKeyspace } from '../../src/state/redis/keyspace';
import { createRevocationMessages } from '../../src/state/redis/revocation-messages';
import { createSharedState, type SharedState, type SharedStateOptions } from '../../src/state/shared-state';
import { MAX_LISTED_APPROVALS } from '../../src/approvals/approval-store';
import { createKeyRing } from '../../src/tokens/key-ring';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { createScratchDatabase, deleteRedisPrefix, scratchPrefix } from '../../bench/scratch-state';

/**
 * The shared-state stores against the real Redis and PostgreSQL, with two or three "replicas" (separate
 * SharedState instances, each with its own connections) in one process sharing one database and prefix.
 */
// A token issued after every revoke in this file (an hour ahead), so only an active revocation denies it.
const LATER = Math.floor(Date.now() / 1000) + 3600;
const subject = (sid: string) => ({ tid: 'acme', sub: 'acme-agent', sid, jti: `jti-${sid}`, iat: LATER });

describeWithUpstream(['postgres', 'redis'], 'shared state (Redis + PostgreSQL) across replicas', () => {
  const env = upstreamEnv();
  let db: Awaited<ReturnType<typeof createScratchDatabase>>;
  let pool: Pool;
  const opened: SharedState[] = [];
  const prefixes: string[] = [];
  const masterKey = randomBytes(32);

  async function replicas(n: number, prefix: string, extra: Partial<SharedStateOptions> = {}): Promise<SharedState[]> {
    const states = await Promise.all(
      Array.from({ length: n }, () =>
        createSharedState({ redisUrl: env.REDIS_URL, postgresUrl: db.url, redisPrefix: prefix, masterKey, clock: systemClock, logger: createLogger({ level: 'silent' }), ...extra }),
      ),
    );
    opened.push(...states);
    return states;
  }

  const newPrefix = (label: string) => {
    const p = scratchPrefix(label);
    prefixes.push(p);
    return p;
  };

  beforeAll(async () => {
    db = await createScratchDatabase(env.DATABASE_URL, 'shared_state');
    pool = createPgPool({ url: db.url, timeoutMs: 5000 });
    await initSchema(pool);
  });
  afterAll(async () => {
    for (const s of opened) await s.close().catch(() => undefined);
    await pool?.end();
    for (const p of prefixes) await deleteRedisPrefix(env.REDIS_URL, p);
    await db?.drop();
  });

  test('a replica refuses a database without the schema; state init is idempotent and safe to run concurrently', async () => {
    const empty = await createScratchDatabase(env.DATABASE_URL, 'no_schema');
    const emptyPool = createPgPool({ url: empty.url, timeoutMs: 5000 });
    try {
      await expect(assertSchema(emptyPool)).rejects.toThrow(/bulkhead state init/);
      const opening = createSharedState({ redisUrl: env.REDIS_URL, postgresUrl: empty.url, redisPrefix: newPrefix('noschema'), masterKey, clock: systemClock, logger: createLogger({ level: 'silent' }) });
      await expect(opening).rejects.toThrow(/no Bulkhead schema/);
      const results = await Promise.all([initSchema(emptyPool), initSchema(emptyPool), initSchema(emptyPool)]);
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect((await initSchema(emptyPool)).created).toBe(false);
      await expect(assertSchema(emptyPool)).resolves.toBeUndefined();
    } finally {
      await emptyPool.end();
      await empty.drop();
    }
  });

  test('replicas starting together on an empty database agree on one signing key ring', async () => {
    const states = await replicas(3, newPrefix('keys'));
    const rings = states.map((s) => createKeyRing({ store: s.keys, clock: systemClock, maxTokenTtlMs: 3_600_000, clockSkewMs: 30_000 }));
    await Promise.all(rings.map((r) => r.init()));
    const kids = rings.map((r) => r.signingKey().kid);
    expect(new Set(kids).size).toBe(1);
    expect(rings[2]!.verificationKey(kids[0]!)).toBeDefined();

    // A rotation on one replica is what the others load; a stale writer cannot overwrite it.
    await rings[0]!.rotate();
    await rings[1]!.reload();
    expect(rings[1]!.signingKey().kid).toBe(rings[0]!.signingKey().kid);
    const a = createPostgresKeyStorage(pool);
    const b = createPostgresKeyStorage(pool);
    const ringA = (await a.read())!;
    const ringB = (await b.read())!;
    await a.write(ringA);
    await expect(b.write(ringB)).rejects.toThrow(/changed by another replica/);
    // The first write of a fresh storage is insert-if-absent: it cannot replace an existing ring.
    const fresh = createPostgresKeyStorage(pool);
    await pool.query('SELECT 1');
    await expect(fresh.write(ringA)).rejects.toThrow(/read the key ring before writing/);
  });

  test('a revocation answered on one replica is enforced on the others at once, and a restore lifts it everywhere', async () => {
    const [a, b, c] = await replicas(3, newPrefix('revoke'));
    expect(await b!.revocations.check(subject('s1'))).toBeNull();
    await a!.revocations.revoke({ target: { kind: 'session', session: 's1' }, at: Date.now() });
    // No waiting: once revoke has resolved, every replica denies.
    expect(await b!.revocations.check(subject('s1'))).toBe('session_revoked');
    expect(await c!.revocations.check(subject('s1'))).toBe('session_revoked');

    await c!.revocations.revoke({ target: { kind: 'tenant', tenant: 'acme' }, at: Date.now() });
    expect(await a!.revocations.check(subject('other'))).toBe('tenant_revoked');
    expect(await b!.revocations.isTenantRevoked('acme')).toBe(true);
    expect(await b!.revocations.restoreTenant('acme')).toBe(true);
    expect(await a!.revocations.check(subject('other'))).toBeNull();
    expect(await c!.revocations.isTenantRevoked('acme')).toBe(false);
    expect(await a!.revocations.restoreTenant('acme')).toBe(false);
    // Sessions stay revoked whatever happens to the tenant.
    expect(await c!.revocations.check(subject('s1'))).toBe('session_revoked');
  });

  test('a replica whose subscription drops fails closed, then re-reads PostgreSQL and sees a revocation it never heard about', async () => {
    const prefix = newPrefix('resync');
    const [a] = await replicas(1, prefix);
    // Published nowhere: as if the revoking replica died between the commit and the publish.
    await createRevocationTable(pool).revoke({ target: { kind: 'session', session: 'missed' }, at: Date.now() });
    const admin = new Redis(env.REDIS_URL);
    try {
      const clients = (await admin.client('LIST')) as string;
      const ours = clients.split('\n').filter((line) => line.includes(`name=bulkhead:revocations:${prefix}`));
      expect(ours).toHaveLength(1);
      await admin.client('KILL', 'ID', /id=(\d+)/.exec(ours[0]!)![1]!);
    } finally {
      admin.disconnect();
    }
    // Until the replica notices the drop it still answers from a mirror it believes current (the change was
    // never published); from the moment it notices, every answer is "cannot know" (throws) or the
    // revocation, never an allow.
    let first = 'null';
    for (let i = 0; i < 400 && first === 'null'; i++) {
      first = await a!.revocations.check(subject('missed')).then(String, () => 'unavailable');
      if (first === 'null') await sleep(5);
    }
    const answers: string[] = [first];
    for (let i = 0; i < 400 && answers.at(-1) !== 'session_revoked'; i++) {
      await sleep(10);
      answers.push(await a!.revocations.check(subject('missed')).then(String, () => 'unavailable'));
    }
    expect(answers).not.toContain('null');
    expect(answers.at(-1)).toBe('session_revoked');
  });

  test('a forged "restore" published straight to Redis does not lift a revocation on any replica', async () => {
    const prefix = newPrefix('forged');
    const [a, b] = await replicas(2, prefix);
    await a!.revocations.revoke({ target: { kind: 'tenant', tenant: 'initech' }, at: Date.now() });
    // Someone who can publish to Redis but does not hold the master key.
    const forger = createRevocationMessages(createFeedSigner(randomBytes(32)));
    const unsigned = JSON.stringify({ id: 'x', key: 'tenant:initech', active: false, version: 1_000_000 });
    const admin = new Redis(env.REDIS_URL);
    try {
      await admin.publish(createKeyspace(prefix).revocationChannel, forger.encodeChange({ id: 'x', key: 'tenant:initech', active: false, version: 1_000_000 }));
      await admin.publish(createKeyspace(prefix).revocationChannel, unsigned);
    } finally {
      admin.disconnect();
    }
    const answers: string[] = [];
    for (let i = 0; i < 30; i++) {
      for (const s of [a!, b!]) answers.push(await s.revocations.check({ tid: 'initech', sub: 'p', sid: 's', jti: 'j', iat: LATER }).then(String, () => 'unavailable'));
      await sleep(10);
    }
    expect(answers).not.toContain('null');
    expect(answers.slice(-2)).toEqual(['tenant_revoked', 'tenant_revoked']);
  });

  test('periodic reconciliation picks up a revocation whose push was lost, without any reconnect', async () => {
    const [a] = await replicas(1, newPrefix('reconcile'), { revocations: { reconcileMs: 100 } });
    await createRevocationTable(pool).revoke({ target: { kind: 'jti', jti: 'jti-lost' }, at: Date.now() });
    let answer: string | null = null;
    for (let i = 0; i < 300 && answer !== 'token_revoked'; i++) {
      answer = await a!.revocations.check({ tid: 'acme', sub: 'x', sid: 'y', jti: 'jti-lost', iat: LATER });
      if (answer !== 'token_revoked') await sleep(10);
    }
    expect(answer).toBe('token_revoked');
  });

  test('calls per minute hold across replicas: N allowed in total, not N per replica', async () => {
    const [a, b, c] = await replicas(3, newPrefix('quota'));
    const stores = [a!, b!, c!];
    const decisions = await Promise.all(Array.from({ length: 60 }, (_, i) => stores[i % 3]!.quotas.takeCall('acme', 20)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(20);
    const denied = decisions.filter((d) => !d.allowed);
    expect(denied.every((d) => d.retryAfterSeconds >= 1 && d.retryAfterSeconds <= 60)).toBe(true);
    // Another tenant's budget is untouched.
    expect((await b!.quotas.takeCall('globex', 20)).allowed).toBe(true);
    expect(await c!.quotas.usage('acme')).toEqual({ calls_last_minute: 20, in_flight: 0 });
  });

  test('concurrency slots are shared: the limit holds across replicas and any replica can free a slot', async () => {
    const [a, b] = await replicas(2, newPrefix('slots'));
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a! : b!).quotas.acquireSlot('acme', `call-${i}`, 3, 60_000)));
    const held = results.map((ok, i) => (ok ? `call-${i}` : null)).filter((x): x is string => x !== null);
    expect(held).toHaveLength(3);
    // A call id in flight is not taken twice.
    expect(await a!.quotas.acquireSlot('acme', held[0]!, 3, 60_000)).toBe(false);
    expect(await b!.quotas.releaseSlot('acme', held[0]!)).toBe(true);
    expect(await b!.quotas.releaseSlot('acme', held[0]!)).toBe(false);
    expect(await a!.quotas.acquireSlot('acme', 'call-new', 3, 60_000)).toBe(true);
    expect((await a!.quotas.usage('acme')).in_flight).toBe(3);
    // An unreleased slot expires.
    expect(await a!.quotas.acquireSlot('globex', 'short', 1, 50)).toBe(true);
    await sleep(80);
    expect(await b!.quotas.acquireSlot('globex', 'next', 1, 60_000)).toBe(true);
  });

  test('calls and quarantines are shared; a quarantine survives Redis losing its copy', async () => {
    const prefix = newPrefix('sessions');
    const [a, b] = await replicas(2, prefix);
    const call = { call_id: 'c1', server: 'crm-mcp', tenant: 'acme', principal: 'acme-agent', session: 's1', tool: 'query_crm', lease_ids: ['lease-1'], started_at: Date.now() };
    await a!.sessions.putCall(call, 60_000);
    await expect(b!.sessions.putCall({ ...call, server: 'mail-mcp' }, 60_000)).rejects.toMatchObject({ reason: 'bad_request' });
    expect(await b!.sessions.hasCall('c1')).toBe(true);
    expect(await b!.sessions.leasesOf({ session: 's1' })).toEqual([call]);
    expect(await b!.sessions.leasesOf({ tenant: 'globex' })).toEqual([]);
    // Another server cannot take (or erase) it; its own server takes it exactly once.
    expect(await b!.sessions.takeCall('c1', 'mail-mcp')).toBeNull();
    expect(await b!.sessions.takeCall('c1', 'crm-mcp')).toEqual(call);
    expect(await a!.sessions.takeCall('c1', 'crm-mcp')).toBeNull();

    await a!.sessions.touch('acme', 's1', Date.now() + 60_000);
    await b!.sessions.touch('acme', 's2', Date.now() + 60_000);
    expect(await a!.sessions.liveSessions('acme', Date.now())).toBe(2);
    // Any replica can tell the kill switch whose session it is (to audit it in that tenant's stream).
    expect(await b!.sessions.tenantOfSession('s1', ['globex', 'acme'])).toBe('acme');
    expect(await b!.sessions.tenantOfSession('s1', ['globex'])).toBeNull();
    expect(await a!.sessions.tenantOfSession('nope', ['globex', 'acme'])).toBeNull();

    await a!.sessions.quarantine('acme', 's9', 'max_records_exceeded');
    expect(await b!.sessions.isQuarantined('acme', 's9')).toBe(true);
    expect(await b!.sessions.isQuarantined('globex', 's9')).toBe(false);
    const ks = createKeyspace(prefix);
    const admin = new Redis(env.REDIS_URL);
    await admin.del(ks.quarantined('acme'), ks.quarantineLoaded);
    admin.disconnect();
    expect(await b!.sessions.isQuarantined('acme', 's9')).toBe(true);
  });

  test('an approval asked on one replica, approved on another, is consumed exactly once across replicas', async () => {
    const [a, b, c] = await replicas(3, newPrefix('approvals'));
    const now = Date.now();
    const input = { tenant: 'acme', principal: 'acme-agent', session: 's1', tool: 'send_email', arguments_mac: 'f'.repeat(64), expires_at: now + 60_000 };
    const asked = await a!.approvals.request(input, now);
    expect(asked.status).toBe('pending');
    expect((await c!.approvals.request(input, now)).id).toBe(asked.id);
    expect(await b!.approvals.consume('acme', 's1', 'send_email', input.arguments_mac, now)).toBeNull();
    expect(await b!.approvals.decide(asked.id, 'approved', 'ops', now)).toMatchObject({ id: asked.id, status: 'approved', decided_by: 'ops' });
    expect(await c!.approvals.decide(asked.id, 'denied', 'ops', now)).toBeNull();
    const consumed = await Promise.all([a!, b!, c!].map((s) => s.approvals.consume('acme', 's1', 'send_email', input.arguments_mac, now)));
    expect(consumed.filter((x) => x !== null)).toHaveLength(1);
    expect(await a!.approvals.get(asked.id)).toMatchObject({ status: 'used' });
    // Another session's identical call does not match it.
    expect(await a!.approvals.consume('acme', 's2', 'send_email', input.arguments_mac, now)).toBeNull();
  });

  test("any replica lists a tenant's pending approvals, oldest first, never another tenant's", async () => {
    const prefix = newPrefix('approvals-list');
    const [a, b] = await replicas(2, prefix);
    const now = Date.now();
    const ask = (tenant: string, session: string, at: number, ttl = 60_000) =>
      a!.approvals.request({ tenant, principal: `${tenant}-agent`, session, tool: 'send_email', arguments_mac: 'e'.repeat(64), expires_at: at + ttl }, at);
    const late = await ask('acme', 'late', now + 2);
    const early = await ask('acme', 'early', now + 1);
    await ask('globex', 'g1', now);
    const approved = await ask('acme', 'approved', now);
    const denied = await ask('acme', 'denied', now);
    const short = await ask('acme', 'short', now, 10);
    await b!.approvals.decide(approved.id, 'approved', 'ops', now);
    await b!.approvals.decide(denied.id, 'denied', 'ops', now);

    const listed = await b!.approvals.listPending('acme', now + 20);
    expect(listed.map((x) => x.id)).toEqual([early.id, late.id]);
    expect(listed[0]).toMatchObject({ tenant: 'acme', principal: 'acme-agent', session: 'early', status: 'pending', created_at: now + 1, expires_at: now + 60_001 });
    expect((await a!.approvals.listPending('globex', now + 20)).map((x) => x.session)).toEqual(['g1']);
    expect(await a!.approvals.listPending('initech', now + 20)).toEqual([]);

    // The index holds only what can still be decided: decided and expired entries are gone from it,
    // and it expires with its longest-lived entry.
    const ks = createKeyspace(prefix);
    const admin = new Redis(env.REDIS_URL);
    try {
      expect((await admin.zrange(ks.approvalsPending('acme'), 0, -1)).sort()).toEqual([early.id, late.id].sort());
      expect(await admin.zscore(ks.approvalsPending('acme'), short.id)).toBeNull();
      expect(await admin.pttl(ks.approvalsPending('acme'))).toBeGreaterThan(0);
      // An entry whose approval Redis dropped is skipped and removed.
      await admin.del(ks.approval(early.id));
      expect((await b!.approvals.listPending('acme', now + 20)).map((x) => x.id)).toEqual([late.id]);
      expect(await admin.zrange(ks.approvalsPending('acme'), 0, -1)).toEqual([late.id]);
    } finally {
      admin.disconnect();
    }
  });

  test('the pending-approval list stops at MAX_LISTED_APPROVALS, keeping the oldest', async () => {
    const [a] = await replicas(1, newPrefix('approvals-bound'));
    const now = Date.now();
    const total = MAX_LISTED_APPROVALS + 3;
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        a!.approvals.request({ tenant: 'acme', principal: 'acme-agent', session: `s-${i}`, tool: 'send_email', arguments_mac: 'd'.repeat(64), expires_at: now + 60_000 }, now + i),
      ),
    );
    const listed = await a!.approvals.listPending('acme', now + total);
    expect(listed).toHaveLength(MAX_LISTED_APPROVALS);
    expect(listed.map((x) => x.session)).toEqual(Array.from({ length: MAX_LISTED_APPROVALS }, (_, i) => `s-${i}`));
  });

  test('concurrent audit writers on several replicas build one gap-free chain per tenant that verifies', async () => {
    const states = await replicas(3, newPrefix('audit'));
    const appends: Array<Promise<unknown>> = [];
    for (let i = 0; i < 300; i++) {
      const tenant = i % 3 === 0 ? 'globex' : 'acme';
      appends.push(states[i % 3]!.audit.append(tenant, { type: 'authorize', decision: 'allow', call_id: `call-${i}`, tool: 'query_crm' }));
    }
    await Promise.all(appends);
    const acme = await states[1]!.audit.verify('acme');
    expect(acme).toMatchObject({ ok: true, events: 200 });
    expect(await states[2]!.audit.verify('globex')).toMatchObject({ ok: true, events: 100 });
    const records = await states[0]!.audit.read('acme');
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(records.every((r) => r.tenant === 'acme')).toBe(true);
    expect(new Set(records.map((r) => r.call_id)).size).toBe(200);
    expect(await states[0]!.audit.tenants()).toEqual(['acme', 'globex']);
  });

  test('audit verify names an altered record and notices records cut from the end', async () => {
    const [a] = await replicas(1, newPrefix('tamper'));
    for (let i = 0; i < 5; i++) await a!.audit.append('initech', { type: 'authorize', decision: 'allow', call_id: `t-${i}` });
    await expect(pool.query("UPDATE bulkhead_audit SET record = replace(record, 't-2', 't-X') WHERE tenant = 'initech' AND seq = 3")).rejects.toThrow(/append-only/);
    await pool.query('ALTER TABLE bulkhead_audit DISABLE TRIGGER bulkhead_audit_append_only');
    try {
      await pool.query("UPDATE bulkhead_audit SET record = replace(record, 't-2', 't-X') WHERE tenant = 'initech' AND seq = 3");
      expect(await a!.audit.verify('initech')).toMatchObject({ ok: false, broken: { seq: 3 } });
      await pool.query("DELETE FROM bulkhead_audit WHERE tenant = 'initech' AND seq >= 3");
      expect(await a!.audit.verify('initech')).toMatchObject({ ok: false, broken: { seq: 3, problem: expect.stringMatching(/missing/) } });
    } finally {
      await pool.query('ALTER TABLE bulkhead_audit ENABLE TRIGGER bulkhead_audit_append_only');
    }
  });

  test('exactly one replica holds the rotation lease; when its lease runs out another takes it', async () => {
    const name = `test-lock-${randomBytes(4).toString('hex')}`;
    const first = createPostgresLeaderLock({ pool, name });
    const second = createPostgresLeaderLock({ pool, name });
    const both = await Promise.all([first.acquire(300), second.acquire(300)]);
    expect(both.filter(Boolean)).toHaveLength(1);
    const [holder, other] = both[0] ? [first, second] : [second, first];
    expect(await holder.acquire(300)).toBe(true);
    expect(await other.acquire(300)).toBe(false);
    // The holder "dies": stops renewing.
    await sleep(400);
    expect(await other.acquire(300)).toBe(true);
    expect(await holder.acquire(300)).toBe(false);
    await other.release();
    expect(await holder.acquire(300)).toBe(true);
  });
});
