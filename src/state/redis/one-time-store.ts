import type Redis from 'ioredis';
import type { OneTimeStore } from '../../oauth/one-time-store';
import type { Keyspace } from './keyspace';

/**
 * Pending logins and authorization codes shared by every replica: /authorize on one, the IdP's
 * callback on a second, the code redeemed on a third. `GETDEL` is one atomic step, so two replicas
 * redeeming one code concurrently cannot both get it. Redis drops each key at its TTL. A Redis that
 * cannot answer makes the caller fail closed (the command rejects; the routes answer 503).
 */
export function createRedisOneTimeStore(deps: { redis: Redis; keyspace: Keyspace }): OneTimeStore {
  const { redis, keyspace } = deps;
  return {
    async put(key, value, ttlMs) {
      // NX: a key is a digest of 32 random bytes, so a collision means something is badly wrong: refuse it.
      return (await redis.set(keyspace.oneTime(key), value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK';
    },
    async take(key) {
      return redis.getdel(keyspace.oneTime(key));
    },
  };
}
