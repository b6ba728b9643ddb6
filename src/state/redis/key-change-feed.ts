import type Redis from 'ioredis';
import type { Logger } from 'pino';

/**
 * Tells every replica that the shared signing key ring changed (a rotation on another replica), so they
 * reload it at once instead of at their next follow tick. Best effort by design: a replica that misses
 * the message still reloads on its rotation timer, and every (re)subscription counts as a change, since
 * one may have happened while it was not listening.
 */
export interface KeyChangeFeed {
  /** Called after the ring was written; never throws. */
  announce(): Promise<void>;
  onChange(listener: () => void): void;
  close(): void;
}

export function createKeyChangeFeed(options: { redis: Redis; subscriber: Redis; channel: string; logger: Pick<Logger, 'warn'> }): KeyChangeFeed {
  const { redis, subscriber, channel, logger } = options;
  const listeners: Array<() => void> = [];
  const fire = () => listeners.forEach((listener) => listener());

  const onMessage = (from: string) => {
    if (from === channel) fire();
  };
  const onReady = () => {
    subscriber.subscribe(channel).then(fire, (err) => logger.warn({ err }, 'could not subscribe to key ring changes; following on the rotation timer'));
  };
  subscriber.on('message', onMessage);
  subscriber.on('ready', onReady);
  if (subscriber.status === 'ready') onReady();

  return {
    async announce() {
      await redis.publish(channel, String(process.pid)).catch((err) => logger.warn({ err }, 'could not announce a key ring change; replicas follow on their rotation timer'));
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
