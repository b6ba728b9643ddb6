import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import type { QuotaStore, QuotaUsage, RateDecision } from '../../quotas/quota-store';
import type { Keyspace } from './keyspace';
import { luaScript, REDIS_NOW } from './lua-script';

/**
 * Per-tenant quotas shared by every replica, each check-and-count one Lua script so two replicas can
 * never both take the last unit.
 *
 * Calls per minute is the same exact sliding window as the embedded store (memory-quota-store.ts): a
 * sorted set holds the times of the tenant's recent allowed calls, and a call is allowed when fewer than
 * N fall within the last 60 s. A fixed-window limiter (rate-limiter-flexible's RateLimiterRedis) would
 * let a tenant make 2N calls across a window boundary; this never allows more than N in any 60 s.
 * Denied calls are not recorded. Time is the Redis server's, so replicas' clocks need not agree.
 *
 * Concurrency slots are a sorted set of call ids scored by expiry: a slot a server never releases is
 * dropped after its TTL.
 */
export const WINDOW_MS = 60_000;

const TAKE_CALL = luaScript(`${REDIS_NOW}
local window = tonumber(ARGV[3])
local limit = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end
-- The call whose expiry brings the count below the limit (the oldest one when the limit is unchanged).
local edge = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return {0, tonumber(edge[2]) + window - now}
`);

const ACQUIRE_SLOT = luaScript(`${REDIS_NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
-- A call id already in flight is not taken twice (a replayed id must not be able to free it later).
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + math.max(1, tonumber(ARGV[3])), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2])))
return 1
`);

const RELEASE_SLOT = luaScript(`${REDIS_NOW}
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(expires) > now then return 1 end
return 0
`);

const USAGE = luaScript(`${REDIS_NOW}
local calls = redis.call('ZCOUNT', KEYS[1], '(' .. (now - tonumber(ARGV[1])), '+inf')
local inflight = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
return {calls, inflight}
`);

export function createRedisQuotaStore(options: { redis: Redis; keyspace: Keyspace }): QuotaStore {
  const { redis, keyspace } = options;

  return {
    async takeCall(tenant, perMinute): Promise<RateDecision> {
      if (!(perMinute >= 1)) return { allowed: false, retryAfterSeconds: WINDOW_MS / 1000 };
      const [allowed, retryMs] = (await TAKE_CALL(redis, [keyspace.rate(tenant)], [Math.floor(perMinute), randomUUID(), WINDOW_MS])) as [number, number];
      return allowed === 1 ? { allowed: true, retryAfterSeconds: 0 } : { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(retryMs / 1000)) };
    },

    async acquireSlot(tenant, callId, limit, ttlMs) {
      return (await ACQUIRE_SLOT(redis, [keyspace.slots(tenant)], [callId, limit, Math.ceil(ttlMs)])) === 1;
    },

    async releaseSlot(tenant, callId) {
      return (await RELEASE_SLOT(redis, [keyspace.slots(tenant)], [callId])) === 1;
    },

    async usage(tenant): Promise<QuotaUsage> {
      const [calls, inFlight] = (await USAGE(redis, [keyspace.rate(tenant), keyspace.slots(tenant)], [WINDOW_MS])) as [number, number];
      return { calls_last_minute: calls, in_flight: inFlight };
    },
    async forgetTenant(tenant) {
      await redis.unlink(keyspace.rate(tenant), keyspace.slots(tenant));
    },
  };
}
