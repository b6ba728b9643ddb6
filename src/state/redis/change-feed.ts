import type Redis from 'ioredis';
import type { Logger } from 'pino';

/**
 * Tells every replica that something shared changed, so they follow at once instead of at their next
 * timer tick: the signing key ring (a rotation on another replica) or the policy (a reload on another
 * replica; each replica then reloads its own policy file). Best effort by design: a replica that misses
 * the message follows on its own timer or at the next reload, and every (re)subscription counts as a
 * change, since one may have happened while it was not listening.
 */
export interface ChangeFeed {
  /** Called after the change was made; never throws. */
  announce(): Promise<void>;
  onChange(listener: () => void): void;
  close(): void;
}

export function createChangeFeed(options: { redis: Redis; subscriber: Redis; channel: string; what: string; logger: Pick<Logger, 'warn'> }): ChangeFeed {
  const { redis, subscriber, channel, what, logger } = options;
  const listeners: Array<() => void> = [];
  const fire = () => listeners.forEach((listener) => listener());

  const onMessage = (from: string) => {
    if (from === channel) fire();
  };
  const onReady = () => {
    subscriber.subscribe(channel).then(fire, (err) => logger.warn({ err }, `could not subscribe to ${what} changes`));
  };
  subscriber.on('message', onMessage);
  subscriber.on('ready', onReady);
  if (subscriber.status === 'ready') onReady();

  return {
    async announce() {
      await redis.publish(channel, String(process.pid)).catch((err) => logger.warn({ err }, `could not announce a ${what} change to the other replicas`));
    },
    onChange(listener) {
      listeners.push(listener);
    },
    close() {
      subscriber.off('message', onMessage);
      subscriber.off('ready', onReady);
    },
  };
}
