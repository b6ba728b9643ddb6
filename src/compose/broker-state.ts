import type { Logger } from 'pino';
import type { Clock } from '../clock';
import type { Policy } from '../policy/schema';
import type { BrokerState } from '../state/broker-state';
import { createEmbeddedState } from '../state/embedded-state';

/** Embedded state under --data-dir, or shared state in Redis + PostgreSQL when `broker.state` names them. */
export async function createBrokerState(options: { policy: Policy; dataDir: string; masterKey: Buffer; clock: Clock; logger: Logger }): Promise<BrokerState> {
  return createEmbeddedState({ dataDir: options.dataDir, masterKey: options.masterKey, clock: options.clock });
}
