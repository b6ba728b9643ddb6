import type Redis from 'ioredis';
import { BrokerError } from '../../errors';
import type { CallRecord, SessionStore } from '../../sessions/session-store';
import type { QuarantineTable } from '../postgres/quarantine-table';
import type { Keyspace } from './keyspace';
import { luaScript } from './lua-script';

/**
 * Sessions and in-flight calls shared by every replica, so /v1/complete can land on any replica and the
 * kill switch on one replica finds leases opened on another.
 *
 * - Live sessions: a sorted set per tenant scored by expiry (a refreshed token never shortens one);
 *   the principals that hold live tokens likewise, so the kill switch can tell a typo from a federated principal.
 * - Calls: one hash per call id with a TTL; creating one is NX, so a live call id belongs to whoever
 *   opened it, and taking one is atomic, so a call completes once.
 * - Quarantine: written to Redis first (in effect at once on every replica) and then to PostgreSQL
 *   (durable before `quarantine` resolves). A marker key says the Redis copy was loaded from
 *   PostgreSQL; after a Redis restart the marker is gone and the next check reloads the copy first,
 *   so a restart never releases a quarantined session. A lift deletes the PostgreSQL row first (the
 *   truth), then the Redis member, which every replica's next check reads.
 */
// ARGV: expiry, now, then one member per key. Members already expired are dropped as it goes.
const TOUCH = luaScript(`
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[2])
  redis.call('ZADD', KEYS[i], 'GT', ARGV[1], ARGV[i + 2])
  local last = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[i], math.ceil(tonumber(last[2])))
end
return 1
`);

const IS_QUARANTINED = luaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('SISMEMBER', KEYS[2], ARGV[1])
`);

const PUT_CALL = luaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'server', ARGV[1], 'json', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == '1' then redis.call('SADD', KEYS[2], ARGV[5]) end
return 1
`);

const TAKE_CALL = luaScript(`
local server = redis.call('HGET', KEYS[1], 'server')
if not server then return false end
if ARGV[1] ~= '' and server ~= ARGV[1] then return false end
local json = redis.call('HGET', KEYS[1], 'json')
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return json
`);

export function createRedisSessionStore(options: { redis: Redis; keyspace: Keyspace; quarantines: QuarantineTable; clock: { now(): number } }): SessionStore {
  const { redis, keyspace: ks, quarantines, clock } = options;
  let reloading: Promise<void> | undefined;

  /** Rebuilds Redis's quarantine sets from PostgreSQL; concurrent callers share one reload. */
  function reloadQuarantines(): Promise<void> {
    reloading ??= (async () => {
      try {
        const all = await quarantines.all();
        const tx = redis.multi();
        for (const q of all) tx.sadd(ks.quarantined(q.tenant), q.session);
        tx.set(ks.quarantineLoaded, String(clock.now()));
        await tx.exec();
      } finally {
        reloading = undefined;
      }
    })();
    return reloading;
  }

  return {
    async touch(tenant, session, expiresAt, principal) {
      const keys = principal === undefined ? [ks.sessions(tenant)] : [ks.sessions(tenant), ks.principals(tenant)];
      await TOUCH(redis, keys, [Math.trunc(expiresAt), Math.trunc(clock.now()), session, ...(principal === undefined ? [] : [principal])]);
    },

    async hasLivePrincipal(tenant, principal, now) {
      const expiresAt = await redis.zscore(ks.principals(tenant), principal);
      return expiresAt !== null && Number(expiresAt) > now;
    },

    async liveSessions(tenant, now) {
      const result = await redis.multi().zremrangebyscore(ks.sessions(tenant), '-inf', Math.trunc(now)).zcard(ks.sessions(tenant)).exec();
      return Number(result?.[1]?.[1] ?? 0);
    },

    async tenantOfSession(session, tenants) {
      if (tenants.length === 0) return null;
      // One round trip: a ZSCORE per tenant, pipelined (only the kill switch asks, never the hot path).
      const pipeline = redis.pipeline();
      for (const tenant of tenants) pipeline.zscore(ks.sessions(tenant), session);
      const answers = (await pipeline.exec()) ?? [];
      const index = answers.findIndex(([err, score]) => !err && score !== null);
      if (index >= 0) return tenants[index]!;
      // "Not found" only if every tenant was asked and answered: a failed lookup is not an unknown session.
      const failed = answers.find(([err]) => err);
      if (failed || answers.length < tenants.length) throw failed?.[0] ?? new Error('session lookup got no answer');
      return null;
    },

    async quarantine(tenant, session, reason) {
      await redis.sadd(ks.quarantined(tenant), session);
      await quarantines.add({ tenant, session, reason, at: clock.now() });
    },

    quarantines: (tenant) => quarantines.all(tenant),

    async liftQuarantine(tenant, session) {
      const removed = await quarantines.remove(tenant, session);
      // Removed from Redis even without a row: a reload racing an earlier lift could have put it back there.
      const released = await redis.srem(ks.quarantined(tenant), session);
      return removed ?? (released > 0 ? { tenant, session, reason: '', at: 0 } : null);
    },

    async isQuarantined(tenant, session) {
      const keys = [ks.quarantineLoaded, ks.quarantined(tenant)];
      let answer = (await IS_QUARANTINED(redis, keys, [session])) as number;
      if (answer === -1) {
        await reloadQuarantines();
        answer = (await IS_QUARANTINED(redis, keys, [session])) as number;
        // Still unloaded means Redis lost it again mid-way: do not guess.
        if (answer === -1) throw new Error('quarantine state could not be loaded into Redis');
      }
      return answer === 1;
    },

    async putCall(call, ttlMs) {
      const leased = call.lease_ids.length > 0 ? '1' : '0';
      const created = await PUT_CALL(redis, [ks.call(call.call_id), ks.leasedCalls], [call.server, JSON.stringify(call), Math.max(1, Math.ceil(ttlMs)), leased, call.call_id]);
      if (created !== 1) throw new BrokerError('bad_request', 'call_id is already in use');
    },

    async hasCall(callId) {
      return (await redis.exists(ks.call(callId))) === 1;
    },

    async takeCall(callId, server) {
      const json = (await TAKE_CALL(redis, [ks.call(callId), ks.leasedCalls], [server ?? '', callId])) as string | null;
      return json ? parseCall(json) : null;
    },

    async tenantSessions(tenant, now) {
      if ((await redis.exists(ks.quarantineLoaded)) === 0) await reloadQuarantines();
      const [live, quarantined] = await Promise.all([redis.zrangebyscore(ks.sessions(tenant), `(${Math.trunc(now)}`, '+inf', 'WITHSCORES'), redis.smembers(ks.quarantined(tenant))]);
      const sessions: Array<{ session: string; expires_at: number }> = [];
      for (let i = 0; i + 1 < live.length; i += 2) sessions.push({ session: live[i]!, expires_at: Number(live[i + 1]) });
      return { live: sessions, quarantined };
    },

    async forgetTenant(tenant) {
      // PostgreSQL first: if Redis then fails, a reload from PostgreSQL cannot bring the quarantines back.
      await quarantines.forgetTenant(tenant);
      await redis.unlink(ks.sessions(tenant), ks.principals(tenant), ks.quarantined(tenant));
      // Calls are keyed by call id: every live one is visited (a rare operator action, never the hot path).
      for (let cursor = '0'; ; ) {
        const [next, keys] = await redis.scan(cursor, 'MATCH', ks.call('*'), 'COUNT', 500);
        for (const key of keys) {
          const json = await redis.hget(key, 'json');
          if (json === null || parseCall(json).tenant !== tenant) continue;
          await TAKE_CALL(redis, [key, ks.leasedCalls], ['', key.slice(ks.call('').length)]);
        }
        if ((cursor = next) === '0') break;
      }
    },

    async leasesOf(filter) {
      const ids = await redis.smembers(ks.leasedCalls);
      if (ids.length === 0) return [];
      const pipeline = redis.pipeline();
      for (const id of ids) pipeline.hget(ks.call(id), 'json');
      const replies = (await pipeline.exec()) ?? [];
      const out: CallRecord[] = [];
      const gone: string[] = [];
      replies.forEach(([err, json], i) => {
        if (err) throw err;
        if (typeof json !== 'string') {
          gone.push(ids[i]!);
          return;
        }
        const call = parseCall(json);
        if (filter.tenant !== undefined && call.tenant !== filter.tenant) return;
        if (filter.session !== undefined && call.session !== filter.session) return;
        if (filter.principal !== undefined && call.principal !== filter.principal) return;
        out.push(call);
      });
      // Calls that expired without completing: drop them from the index.
      if (gone.length > 0) await redis.srem(ks.leasedCalls, ...gone).catch(() => undefined);
      return out;
    },
  };
}

function parseCall(json: string): CallRecord {
  const call = JSON.parse(json) as CallRecord;
  return { ...call, lease_ids: [...call.lease_ids] };
}
