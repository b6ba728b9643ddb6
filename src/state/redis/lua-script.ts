import { createHash } from 'node:crypto';
import type Redis from 'ioredis';

/**
 * A Lua script, run atomically by Redis: the way shared counters, slots and approvals make their
 * check-then-change a single step across replicas. It runs by SHA (EVALSHA) and falls back to sending the
 * source when the server does not know it yet (a restarted Redis forgets its script cache).
 */
export type LuaScript = (redis: Redis, keys: string[], args: Array<string | number>) => Promise<unknown>;

export function luaScript(source: string): LuaScript {
  const sha = createHash('sha1').update(source).digest('hex');
  return async (redis, keys, args) => {
    try {
      return await redis.evalsha(sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
      return redis.eval(source, keys.length, ...keys, ...args);
    }
  };
}

/**
 * Lua preamble giving `now` in epoch milliseconds from the Redis server's clock, so every replica counts
 * time the same way whatever their own clocks say.
 */
export const REDIS_NOW = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;
