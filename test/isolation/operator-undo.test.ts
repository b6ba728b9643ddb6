import { randomBytes } from 'node:crypto';
import { createScratchDatabase, deleteRedisPrefix, scratchPrefix } from '../../bench/scratch-state';
import type { Clock } from '../../src/clock';
import { createPgPool } from '../../src/state/postgres/pool';
import { initSchema } from '../../src/state/postgres/schema';
import { startHarness, type Harness } from '../support/broker-harness';
import { auditEvents, callId, claimsOf, expectAllow, expectDeny } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * Operator verbs that undo mistakes, tried as an operator under pressure would get them wrong:
 * - a typo in the kill switch (wrong case, a trailing space, one letter off, an unknown tenant) is
 *   refused 404 and revokes nothing, while the real agent stays served; `force` gets past it on purpose;
 * - what is revoked can be listed (by kind and tenant), a revocation with a TTL stops denying on every
 *   replica once it expires and leaves the list;
 * - a principal or session revocation and a quarantine can be lifted, with a reason, audited with the
 *   operator's id in the tenant's stream, and the same token is served again on every replica.
 * Run on the embedded default (one broker) and scaled out (three replicas on Redis and PostgreSQL). Time
 * is injected (the real clock, frozen by the TTL test at the expiry's edges), so "expired" needs no sleeping.
 */
jest.setTimeout(90_000);

// Real time, unless a test freezes it at a moment of its choosing (so "one millisecond before the
// expiry" holds however slow the machine is).
let frozen: number | null = null;
const clock: Clock = { now: () => frozen ?? Date.now() };

interface Deployment {
  replicas: Harness[];
  close(): Promise<void>;
}

async function embedded(): Promise<Deployment> {
  const h = await startHarness({ brokerOptions: { clock } });
  return { replicas: [h], close: () => h.close() };
}

async function scaledOut(): Promise<Deployment> {
  const env = upstreamEnv();
  const db = await createScratchDatabase(env.DATABASE_URL, 'operator_undo');
  const pool = createPgPool({ url: db.url, timeoutMs: 5000 });
  await initSchema(pool).finally(() => pool.end());
  const prefix = scratchPrefix('operator-undo');
  const brokerOptions = { clock, env: { BULKHEAD_MASTER_KEY: randomBytes(32).toString('base64') } };
  const a = await startHarness({ overrides: (p) => (p.broker.state = { redis_url: env.REDIS_URL, postgres_url: db.url, redis_prefix: prefix }), brokerOptions });
  const b = await startHarness({ replicaOf: a, brokerOptions });
  const c = await startHarness({ replicaOf: a, brokerOptions });
  return {
    replicas: [a, b, c],
    async close() {
      for (const r of [c, b, a]) await r.close();
      await db.drop();
      await deleteRedisPrefix(env.REDIS_URL, prefix);
    },
  };
}

function suite(name: string, start: () => Promise<Deployment>, describeIt: (name: string, fn: () => void) => void) {
  describeIt(name, () => {
    let d: Deployment;
    let a: Harness;
    beforeAll(async () => {
      frozen = null;
      d = await start();
      a = d.replicas[0]!;
    });
    afterAll(async () => {
      await d?.close();
    });

    // Every replica answers the operator API; each action is made on a different one than the checks.
    const last = () => d.replicas[d.replicas.length - 1]!;
    const revoke = (body: Record<string, unknown>) => last().post('/v1/revoke', { reason: 'operator-undo test', ...body }, a.operatorToken);
    const restore = (body: Record<string, unknown>) => last().post('/v1/restore', body, a.operatorToken);
    const list = async (query = '') => {
      const answer = await a.get(`/v1/revocations${query}`, a.operatorToken);
      expect(answer.status).toBe(200);
      return answer.body.revocations as Array<Record<string, string>>;
    };
    const call = (token: string, tenant: string) => ({ token, tool: 'query_crm', arguments: { path: `${tenant}/x` }, call_id: callId('undo') });
    const servedEverywhere = async (token: string, tenant: string) => {
      for (const r of d.replicas) expectAllow(r, await r.authorize('crm-mcp', call(token, tenant)), tenant);
    };
    const deniedEverywhere = async (token: string, tenant: string, reason: string) => {
      for (const r of d.replicas) expectDeny(r, await r.authorize('crm-mcp', call(token, tenant)), 403, reason);
    };
    const records = async (tenant: string, type: string) => (await auditEvents(a, tenant)).filter((e: { type?: string }) => e.type === type);

    describe('the typo guard', () => {
      it.each([
        ['one letter too many', 'acme/acme-agentt'],
        ['wrong case', 'acme/Acme-agent'],
        ['a trailing space', 'acme/acme-agent '],
        ['a leading space in the principal', 'acme/ acme-agent'],
      ])('refuses to revoke a principal nobody has seen (%s) with 404 unknown_target, suggests the real one, and the real agent stays served', async (_label, typo) => {
        const token = await a.token('acme-agent', 'crm-mcp');
        const answer = await revoke({ principal: typo });
        expect(answer.status).toBe(404);
        expect(answer.body).toMatchObject({ error: 'unknown_target', target: 'principal' });
        expect(answer.body.message).toContain('nothing was revoked');
        expect(answer.body.message).toContain('did you mean "acme/acme-agent"');
        await servedEverywhere(token, 'acme');
        expect(await list()).toEqual([]);
        expect(await records('acme', 'revoke')).toEqual([]);
      });

      it.each([
        ['the issue\'s own typo, an unknown tenant', 'delta/delta-bott', /unknown tenant "delta"/],
        ['a tenant one letter off', 'acmee/acme-agent', /unknown tenant "acmee" \(did you mean "acme"\?\)/],
        ['a tenant in the wrong case', 'Acme/acme-agent', /unknown tenant "Acme" \(did you mean "acme"\?\)/],
        ['a tenant with a trailing space', 'acme /acme-agent', /unknown tenant "acme "/],
      ])('refuses a principal of an unknown tenant (%s) with 404 not_found, even forced', async (_label, typo, message) => {
        for (const force of [false, true]) {
          const answer = await revoke({ principal: typo, force });
          expect(answer.status).toBe(404);
          expect(answer.body).toMatchObject({ error: 'not_found', message: expect.stringMatching(message) });
        }
        expect(await list()).toEqual([]);
      });

      it('refuses an unknown or mistyped session, and a bare jti, unless forced; forced, they are revoked and listed', async () => {
        const token = await a.token('globex-agent', 'crm-mcp');
        const sid = claimsOf(token).sid as string;
        for (const typo of [`${sid}x`, sid.toUpperCase(), `${sid} `]) {
          const answer = await revoke({ session: typo });
          expect(answer.status).toBe(404);
          expect(answer.body).toMatchObject({ error: 'unknown_target', target: 'session' });
        }
        const jti = await revoke({ jti: claimsOf(token).jti });
        expect(jti.status).toBe(404);
        expect(jti.body).toMatchObject({ error: 'unknown_target', target: 'jti' });
        await servedEverywhere(token, 'globex');
        expect(await list()).toEqual([]);

        expect((await revoke({ session: 'from-an-old-log', force: true })).status).toBe(200);
        expect((await revoke({ jti: claimsOf(token).jti, force: true })).status).toBe(200);
        await deniedEverywhere(token, 'globex', 'token_revoked');
        expect((await list()).map((r) => [r.kind, r.target])).toEqual([
          ['session', 'from-an-old-log'],
          ['jti', claimsOf(token).jti],
        ]);
        // Cleaned up for the tests below (the token stays revoked: it is this test's own).
        expect((await restore({ session: 'from-an-old-log', reason: 'test cleanup' })).status).toBe(200);
      });

      it('forces a principal that is not in policy (a federated one that has no token yet)', async () => {
        const answer = await revoke({ principal: 'initech/contractor-7', force: true });
        expect(answer.status).toBe(200);
        expect(answer.body.revoked).toEqual({ principal: 'initech/contractor-7' });
        expect((await list('?kind=principal')).map((r) => [r.target, r.tenant])).toEqual([['initech/contractor-7', 'initech']]);
        expect((await restore({ principal: 'initech/contractor-7', reason: 'test cleanup' })).status).toBe(200);
      });
    });

    describe('listing, TTL and lifting', () => {
      // Issued before its principal is revoked (a revoked principal gets no new token).
      let readerToken: string;
      let readerExpiresAt: number;
      it('lists revocations with kind, tenant, reason and expiry, filtered by kind and tenant; only operators may read it', async () => {
        readerToken = await a.token('globex-reader', 'crm-mcp');
        const session = claimsOf(await a.token('initech-agent', 'crm-mcp')).sid as string;
        const ttl = await revoke({ principal: 'globex/globex-reader', ttl: '1m', reason: 'suspicious reads' });
        expect(ttl.status).toBe(200);
        expect(Date.parse(ttl.body.expires_at) - Date.parse(ttl.body.effective_at)).toBe(60_000);
        readerExpiresAt = Date.parse(ttl.body.expires_at);
        expect((await revoke({ session, reason: 'leaked transcript' })).status).toBe(200);

        const all = (await list()).filter((r) => r.kind !== 'jti');
        expect(all).toEqual([
          { kind: 'principal', target: 'globex/globex-reader', tenant: 'globex', reason: 'suspicious reads', revoked_at: ttl.body.effective_at, expires_at: ttl.body.expires_at },
          { kind: 'session', target: session, tenant: 'initech', reason: 'leaked transcript', revoked_at: expect.any(String) },
        ]);
        expect((await list('?kind=session')).map((r) => r.target)).toEqual([session]);
        expect((await list('?tenant=globex')).map((r) => r.target)).toEqual(['globex/globex-reader']);
        expect(await list('?tenant=acme')).toEqual([]);
        expect((await a.get('/v1/revocations?tenant=nobody', a.operatorToken)).status).toBe(404);
        expect((await a.get('/v1/revocations?kind=tenants', a.operatorToken)).status).toBe(400);
        expect((await a.get('/v1/revocations')).status).toBe(401);
        expect((await a.get('/v1/revocations', a.serverKeys['crm-mcp'])).status).toBe(401);
        // A tenant revocation has no TTL: it is restored instead.
        expect((await revoke({ tenant: 'acme', ttl: '1h' })).status).toBe(400);
        await restore({ session, reason: 'test cleanup' });
      });

      it('a revocation with a TTL denies on every replica until it expires, then serves the same token and leaves the list', async () => {
        const token = readerToken;
        await deniedEverywhere(token, 'globex', 'principal_revoked');
        frozen = readerExpiresAt - 1;
        await deniedEverywhere(token, 'globex', 'principal_revoked');
        expect((await list('?kind=principal')).map((r) => r.target)).toEqual(['globex/globex-reader']);
        frozen = readerExpiresAt;
        try {
          await servedEverywhere(token, 'globex');
          expect(await list('?kind=principal')).toEqual([]);
          // Expired is not in force: nothing to lift.
          expect((await restore({ principal: 'globex/globex-reader', reason: 'too late' })).status).toBe(404);
        } finally {
          frozen = null;
        }
      });

      it('lifts a session revocation with a reason: the same token is served on every replica, and the lift is audited in its tenant', async () => {
        const token = await a.token('initech-reader', 'crm-mcp');
        const sid = claimsOf(token).sid as string;
        expect((await revoke({ session: sid })).status).toBe(200);
        await deniedEverywhere(token, 'initech', 'session_revoked');

        const noReason = await restore({ session: sid });
        expect(noReason.status).toBe(400);
        expect(noReason.body.message).toMatch(/needs a reason/);
        expect((await restore({ session: sid, reason: '   ' })).status).toBe(400);
        await deniedEverywhere(token, 'initech', 'session_revoked');

        const lifted = await restore({ session: sid, reason: 'revoked the wrong session (ticket 7)' });
        expect(lifted.status).toBe(200);
        expect(lifted.body).toEqual({ restored: true, session: sid });
        await servedEverywhere(token, 'initech');
        expect((await list('?kind=session')).map((r) => r.target)).not.toContain(sid);
        expect((await records('initech', 'restore')).filter((e) => e.detail === `session ${sid}`)).toEqual([
          expect.objectContaining({ operator: 'ops', reason: 'revoked the wrong session (ticket 7)' }),
        ]);
        for (const other of ['acme', 'globex']) expect((await records(other, 'restore')).filter((e) => e.detail === `session ${sid}`)).toEqual([]);
        // Lifting twice, or a typo of it, finds nothing.
        expect((await restore({ session: sid, reason: 'again' })).status).toBe(404);
        expect((await restore({ session: `${sid} `, reason: 'typo' })).status).toBe(404);
      });

      it('lifts a principal revocation: old tokens work again on every replica; a typo in the restore is 404', async () => {
        const token = await a.token('acme-reader', 'crm-mcp');
        expect((await revoke({ principal: 'acme/acme-reader' })).status).toBe(200);
        await deniedEverywhere(token, 'acme', 'principal_revoked');
        expect((await restore({ principal: 'acme/acme-readr', reason: 'typo' })).status).toBe(404);
        expect((await restore({ principal: 'acme/acme-reader', reason: 'wrong principal' })).body).toEqual({ restored: true, principal: 'acme/acme-reader' });
        await servedEverywhere(token, 'acme');
        expect((await records('acme', 'restore')).filter((e) => e.detail === 'principal acme/acme-reader')).toEqual([expect.objectContaining({ operator: 'ops', reason: 'wrong principal' })]);
      });
    });

    describe('quarantine', () => {
      it('lists a quarantined session, lifts it with a reason on every replica, and audits the lift in its tenant only', async () => {
        const token = await a.token('acme-agent', 'crm-mcp');
        const sid = claimsOf(token).sid as string;
        const exportCall = await a.authorize('crm-mcp', { token, tool: 'export_report', arguments: {}, call_id: callId('export') });
        expect(exportCall.status).toBe(200);
        const done = await last().post('/v1/complete', { call_id: exportCall.body.call_id, status: 'success', records: 5000 }, a.serverKeys['crm-mcp']);
        expect(done.body).toMatchObject({ quarantined: true });
        await deniedEverywhere(token, 'acme', 'session_quarantined');

        const listed = await a.get('/v1/quarantines', a.operatorToken);
        expect(listed.status).toBe(200);
        expect(listed.body.quarantines).toEqual([{ tenant: 'acme', session: sid, reason: expect.stringContaining('5000 records'), quarantined_at: expect.any(String) }]);
        expect((await a.get('/v1/quarantines?tenant=globex', a.operatorToken)).body.quarantines).toEqual([]);
        expect((await a.get('/v1/quarantines')).status).toBe(401);

        const lift = (body: Record<string, unknown>) => last().post('/v1/quarantines/lift', body, a.operatorToken);
        expect((await lift({ session: sid })).status).toBe(400);
        expect((await lift({ session: sid, tenant: 'globex', reason: 'wrong tenant' })).status).toBe(404);
        expect((await lift({ session: `${sid}x`, reason: 'typo' })).status).toBe(404);
        await deniedEverywhere(token, 'acme', 'session_quarantined');

        const lifted = await lift({ session: sid, reason: 'export was an approved backfill' });
        expect(lifted.status).toBe(200);
        expect(lifted.body).toEqual({ lifted: true, tenant: 'acme', session: sid });
        await servedEverywhere(token, 'acme');
        expect((await a.get('/v1/quarantines', a.operatorToken)).body.quarantines).toEqual([]);
        expect(await records('acme', 'quarantine_lift')).toEqual([expect.objectContaining({ operator: 'ops', session: sid, reason: 'export was an approved backfill' })]);
        for (const other of ['globex', 'initech']) expect(await records(other, 'quarantine_lift')).toEqual([]);
        expect((await lift({ session: sid, reason: 'again' })).status).toBe(404);
      });

      it('a lifted quarantine stays lifted across a restart, and a quarantine still in force survives one', async () => {
        const token = await a.token('globex-agent', 'crm-mcp');
        const sid = claimsOf(token).sid as string;
        const exportCall = await a.authorize('crm-mcp', { token, tool: 'export_report', arguments: {}, call_id: callId('export') });
        await a.post('/v1/complete', { call_id: exportCall.body.call_id, status: 'success', records: 2000 }, a.serverKeys['crm-mcp']);
        const other = await a.token('initech-agent', 'crm-mcp');
        const otherCall = await a.authorize('crm-mcp', { token: other, tool: 'export_report', arguments: {}, call_id: callId('export') });
        await a.post('/v1/complete', { call_id: otherCall.body.call_id, status: 'success', records: 2000 }, a.serverKeys['crm-mcp']);
        expect((await last().post('/v1/quarantines/lift', { session: sid, reason: 'reviewed' }, a.operatorToken)).status).toBe(200);
        for (const r of d.replicas) await r.restart();
        await servedEverywhere(token, 'globex');
        await deniedEverywhere(other, 'initech', 'session_quarantined');
        expect((await a.get('/v1/quarantines', a.operatorToken)).body.quarantines.map((q: { session: string }) => q.session)).toEqual([claimsOf(other).sid]);
      });
    });

    it('leaks no secret into any answer or the log', async () => {
      for (const r of d.replicas) expect(await findLeaks(r)).toEqual([]);
    });
  });
}

suite('operator verbs that undo mistakes: embedded default', embedded, describe);
suite('operator verbs that undo mistakes: scaled out, three replicas', scaledOut, (name, fn) => describeWithUpstream(['postgres', 'redis'], name, fn));
