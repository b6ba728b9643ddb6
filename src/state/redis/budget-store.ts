import type Redis from 'ioredis';
import { dayOf, hourOf, secondsUntilReset, type BudgetStore, type BudgetWindow } from '../../budgets/budget-store';
import type { Keyspace } from './keyspace';
import { luaScript } from './lua-script';

/**
 * Budgets shared by every replica: one Lua script checks every budget a call falls under and, only if
 * all admit it, adds the cost to each, so two replicas can never both spend the last unit. Windows are
 * UTC hours and days of the broker's clock (passed in, so replicas agree to within their clock skew at
 * a window's edge); each counter expires with its window.
 * KEYS: per charge, its hour counter then its day counter. ARGV: cost, hour ttl, day ttl, then per
 * charge its hourly and daily limit (-1: none).
 */
const CHARGE = luaScript(`
local cost = tonumber(ARGV[1])
local n = #KEYS / 2
for i = 1, n do
  local hourly = tonumber(ARGV[3 + 2 * i - 1])
  local daily = tonumber(ARGV[3 + 2 * i])
  local usedHour = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local usedDay = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  if daily >= 0 and usedDay + cost > daily then return {i, 'daily'} end
  if hourly >= 0 and usedHour + cost > hourly then return {i, 'hourly'} end
end
if cost ~= 0 then
  for i = 1, n do
    redis.call('INCRBYFLOAT', KEYS[2 * i - 1], cost)
    redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[2])
    redis.call('INCRBYFLOAT', KEYS[2 * i], cost)
    redis.call('PEXPIRE', KEYS[2 * i], ARGV[3])
  end
end
return {0, ''}
`);

const ADJUST = luaScript(`
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBYFLOAT', KEYS[i], ARGV[1]) end
end
return 1
`);

export function createRedisBudgetStore(options: { redis: Redis; keyspace: Keyspace }): BudgetStore {
  const { redis, keyspace } = options;
  const hourKey = (key: string, at: number) => keyspace.budget(key, `h${hourOf(at)}`);
  const dayKey = (key: string, at: number) => keyspace.budget(key, `d${dayOf(at)}`);
  // A little past the window's end, so a correction that arrives just after still finds its counter.
  const ttl = (size: number, now: number) => (Math.floor(now / size) + 1) * size - now + 60_000;

  return {
    async charge(charges, cost, now) {
      const keys = charges.flatMap(({ key }) => [hourKey(key, now), dayKey(key, now)]);
      const limits = charges.flatMap(({ limits }) => [limits.hourly ?? -1, limits.daily ?? -1]);
      const [index, window] = (await CHARGE(redis, keys, [cost, ttl(3_600_000, now), ttl(86_400_000, now), ...limits])) as [number, string];
      if (index === 0) return { allowed: true };
      return { allowed: false, key: charges[index - 1]!.key, window: window as BudgetWindow, retryAfterSeconds: secondsUntilReset(window as BudgetWindow, now) };
    },
    async adjust(keys, delta, at) {
      if (delta === 0) return;
      await ADJUST(redis, keys.flatMap((key) => [hourKey(key, at), dayKey(key, at)]), [delta]);
    },
    async usage(key, now) {
      const [h, d] = await redis.mget(hourKey(key, now), dayKey(key, now));
      return { hourly: Number(h ?? 0), daily: Number(d ?? 0) };
    },
    async forgetTenant(tenant) {
      // Tenant ids are letters, digits, ".", "_" and "-" (idSchema): nothing in them is a glob character.
      for (const match of keyspace.tenantBudgets(tenant)) {
        for (let cursor = '0'; ; ) {
          const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 500);
          if (keys.length > 0) await redis.unlink(...keys);
          if ((cursor = next) === '0') break;
        }
      }
    },
  };
}
