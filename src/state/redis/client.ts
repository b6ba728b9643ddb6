import Redis from 'ioredis';
import { describeUrl } from '../safe-url';

/**
 * A Redis connection for shared state that never makes a caller wait unboundedly:
 * - no offline queue: while disconnected, commands fail at once instead of queueing until Redis returns;
 * - every command times out after `timeoutMs` (a Redis that stopped answering without closing the socket);
 * - commands in flight when the connection drops are failed, not silently re-sent after reconnecting
 *   (taking a call or a slot twice is worse than a 503);
 * - it reconnects by itself, forever, backing off to one attempt a second, so the broker recovers on its
 *   own when Redis comes back.
 */
export interface RedisClientOptions {
  url: string;
  timeoutMs: number;
  /** Connection name shown by CLIENT LIST, e.g. "bulkhead:commands". */
  name: string;
  onError?: (err: Error) => void;
}

export function createRedisClient(options: RedisClientOptions): Redis {
  const password = process.env.BULKHEAD_REDIS_PASSWORD;
  const client = new Redis(options.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.timeoutMs,
    connectTimeout: options.timeoutMs,
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
    connectionName: options.name,
    // A password can come from the environment instead of sitting in the policy file's URL.
    ...(password && !new URL(options.url).password ? { password } : {}),
  });
  // ioredis prints unhandled 'error' events to the console; route them to the caller (a logger) instead.
  client.on('error', (err: Error) => options.onError?.(err));
  return client;
}

/** Connects and waits until the server is ready, or fails after `timeoutMs` naming where (never the password). */
export async function connectRedis(client: Redis, url: string, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return;
  let timer: NodeJS.Timeout | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    timer = setTimeout(() => reject(new Error(`Redis at ${describeUrl(url)} did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    if (client.status === 'wait') client.connect().catch(() => undefined);
    await ready;
  } finally {
    clearTimeout(timer);
  }
}
