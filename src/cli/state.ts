import { connectRedis, createRedisClient } from '../state/redis/client';
import { createPgPool } from '../state/postgres/pool';
import { initSchema } from '../state/postgres/schema';
import { describeUrl } from '../state/safe-url';
import { loadConfig } from './load-config';
import { parseVerb, stateOptions } from './options';
import { report } from './output';
import { UsageError } from './usage-error';

export const STATE_HELP = `Usage: bulkhead state init --config FILE

Scale-out: creates (or completes) Bulkhead's schema in the PostgreSQL database named by
broker.state.postgres_url, and checks that broker.state.redis_url answers. Safe to run again and
from several machines at once. Brokers refuse to start on a database that was not initialised.
Passwords can come from PGPASSWORD and BULKHEAD_REDIS_PASSWORD instead of the URLs.
Exit code 0 when the schema is ready, 1 when a backend cannot be reached, 2 for a usage error.`;

const TIMEOUT_MS = 10_000;

export async function state(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') {
    process.stdout.write(STATE_HELP + '\n');
    return action === undefined ? 2 : 0;
  }
  if (action !== 'init') throw new UsageError(`bulkhead state: unknown action "${action}" (see bulkhead state --help)`);
  const { values } = parseVerb('state init', rest, stateOptions);
  if (values.help) {
    process.stdout.write(STATE_HELP + '\n');
    return 0;
  }
  if (!values.config) throw new UsageError('bulkhead state init: --config FILE is required (a policy with broker.state)');
  const { policy } = loadConfig(values);
  const { redis_url, postgres_url } = policy!.broker.state;
  if (!postgres_url || !redis_url) throw new UsageError(`${values.config}: broker.state.${postgres_url ? 'redis_url' : 'postgres_url'}: required for scale-out (bulkhead state init)`);

  let postgres: { url: string; schema_version: number; created: boolean } | undefined;
  const pool = createPgPool({ url: postgres_url, timeoutMs: TIMEOUT_MS, max: 2 });
  try {
    const result = await initSchema(pool);
    postgres = { url: describeUrl(postgres_url), schema_version: result.version, created: result.created };
    if (!values.json) process.stdout.write(`${postgres.url}: Bulkhead schema version ${result.version} ${result.created ? 'created' : 'already present'}\n`);
  } catch (err) {
    throw new Error(`PostgreSQL at ${describeUrl(postgres_url)}: ${(err as Error).message}`, { cause: err });
  } finally {
    await pool.end().catch(() => undefined);
  }

  const redis = createRedisClient({ url: redis_url, timeoutMs: TIMEOUT_MS, name: 'bulkhead:state-init' });
  try {
    await connectRedis(redis, redis_url, TIMEOUT_MS);
    await redis.ping();
    report(values.json, { postgres, redis: { url: describeUrl(redis_url), prefix: policy!.broker.state.redis_prefix } }, `${describeUrl(redis_url)}: Redis answers (key prefix "${policy!.broker.state.redis_prefix}")`);
  } finally {
    redis.disconnect();
  }
  return 0;
}
