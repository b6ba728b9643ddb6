import type { Logger } from 'pino';
import type { Clock } from '../clock';
import type { Policy } from '../policy/schema';
import type { BrokerState } from '../state/broker-state';
import { createEmbeddedState } from '../state/embedded-state';

/** Embedded state under --data-dir, or shared state in Redis + PostgreSQL when `broker.state` names them. */
export async function createBrokerState(options: { policy: Policy; dataDir: string; masterKey: Buffer; clock: Clock; logger: Logger }): Promise<BrokerState> {
  const { redis_url, postgres_url, redis_prefix } = options.policy.broker.state;
  // Both or neither: the policy schema refuses one without the other.
  if (redis_url && postgres_url) {
    // Required only when scaled out, so the embedded default never loads the Redis and PostgreSQL clients.
    const { createSharedState } = require('../state/shared-state') as typeof import('../state/shared-state');
    return createSharedState({ redisUrl: redis_url, postgresUrl: postgres_url, redisPrefix: redis_prefix, masterKey: options.masterKey, clock: options.clock, logger: options.logger });
  }
  return createEmbeddedState({ dataDir: options.dataDir, masterKey: options.masterKey, clock: options.clock });
}
