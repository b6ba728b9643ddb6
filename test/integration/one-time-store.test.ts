import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { manualClock } from '../../src/clock';
import { createMemoryOneTimeStore, type OneTimeStore } from '../../src/oauth/one-time-store';
import { createKeyspace } from '../../src/state/redis/keyspace';
import { createRedisOneTimeStore } from '../../src/state/redis/one-time-store';
import { describeWithUpstream, requireUpstream } from '../support/upstreams';

/**
 * The store that makes a login's `state` and an authorization code single use: of any number of
 * concurrent takes of one key exactly one gets the value (the memory store in one process, Redis's
 * GETDEL across replicas), a taken or expired key is gone, and a full memory store refuses rather
 * than grows.
 */

async function exactlyOneTakes(store: OneTimeStore): Promise<void> {
  const key = randomBytes(16).toString('hex');
  expect(await store.put(key, 'the-grant', 60_000)).toBe(true);
  const takes = await Promise.all(Array.from({ length: 20 }, () => store.take(key)));
  expect(takes.filter((v) => v === 'the-grant')).toHaveLength(1);
  expect(takes.filter((v) => v === null)).toHaveLength(19);
  expect(await store.take(key)).toBeNull();
}

describe('one-time store (memory)', () => {
  it('gives a value to exactly one of many concurrent takes', () => exactlyOneTakes(createMemoryOneTimeStore({ clock: manualClock(0) })));

  it('forgets a value at its TTL, and refuses new values when full of live ones', async () => {
    const clock = manualClock(0);
    const store = createMemoryOneTimeStore({ clock, maxEntries: 2 });
    expect(await store.put('a', '1', 1000)).toBe(true);
    expect(await store.put('b', '2', 5000)).toBe(true);
    expect(await store.put('c', '3', 1000)).toBe(false);
    clock.advance(1000);
    expect(await store.take('a')).toBeNull();
    expect(await store.put('c', '3', 1000)).toBe(true); // the expired entry was swept to make room
    expect(await store.put('b', 'overwrite', 5000)).toBe(false); // never overwritten, as in Redis
    expect(await store.take('b')).toBe('2');
  });
});

describeWithUpstream(['redis'], 'one-time store (Redis, shared by replicas)', () => {
  let redis: Redis;
  let other: Redis;
  beforeAll(() => {
    const env = requireUpstream('redis');
    redis = new Redis(env.REDIS_URL);
    other = new Redis(env.REDIS_URL);
  });
  afterAll(async () => {
    await redis?.quit();
    await other?.quit();
  });

  it('gives a value to exactly one take across two replicas\' connections', async () => {
    const keyspace = createKeyspace(`test-once-${randomBytes(4).toString('hex')}`);
    const one = createRedisOneTimeStore({ redis, keyspace });
    const two = createRedisOneTimeStore({ redis: other, keyspace });
    await exactlyOneTakes(one);
    const key = randomBytes(16).toString('hex');
    expect(await one.put(key, 'code', 60_000)).toBe(true);
    expect(await one.put(key, 'another', 60_000)).toBe(false); // never overwritten
    const [a, b] = await Promise.all([one.take(key), two.take(key)]);
    expect([a, b].sort()).toEqual(['code', null].sort());
    expect(await redis.pttl(keyspace.oneTime(key))).toBe(-2);
  });

  it('stores with the TTL asked for, so Redis drops what nobody takes', async () => {
    const keyspace = createKeyspace(`test-once-${randomBytes(4).toString('hex')}`);
    const store = createRedisOneTimeStore({ redis, keyspace });
    await store.put('k', 'v', 60_000);
    const ttl = await redis.pttl(keyspace.oneTime('k'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });
});
