import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { Client } from 'pg';

/**
 * Private slices of the shared PostgreSQL and Redis, so engineers and test files running at the same
 * time never see each other's state: a database created per test file (dropped after) and a Redis key
 * prefix per test (its keys deleted after). Never FLUSHALL.
 */
export async function createScratchDatabase(adminUrl: string, label: string): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `bulkhead_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(5).toString('hex')}`;
  await withAdmin(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => withAdmin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

async function withAdmin<T>(adminUrl: string, run: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

export function scratchPrefix(label: string): string {
  return `bhtest-${label}-${randomBytes(5).toString('hex')}`;
}

/** Deletes every key under `prefix:` (SCAN, never FLUSHALL). */
export async function deleteRedisPrefix(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 3000, lazyConnect: true });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } catch {
    // Best effort: a test's cleanup must not hide its result.
  } finally {
    redis.disconnect();
  }
}
