import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type Redis from 'ioredis';
import type { Logger } from 'pino';
import type { RevocationChange } from '../revocation-mirror';
import type { FeedSigner } from './feed-signer';
import type { Keyspace } from './keyspace';
import { createRevocationMessages, type ChangeMessage } from './revocation-messages';

/**
 * Pushes revocation changes to every replica over Redis pub/sub, and tells its own replica whether its
 * mirror can be trusted right now (`live()`).
 *
 * Why "once /v1/revoke has answered, no replica allows the target again" holds:
 * 1. The change is committed in PostgreSQL before it is published.
 * 2. `publish` waits until every replica that Redis delivered it to has applied it and acknowledged, or
 *    until `ackTimeoutMs` has passed.
 * 3. A replica is live only while (a) it is subscribed, (b) it has re-read the whole table from
 *    PostgreSQL since subscribing — so nothing committed before the subscription is missed — and (c) a
 *    heartbeat PING sent on the subscriber connection less than `staleAfterMs` ago has been answered.
 *    Redis answers on one connection in order, so a PONG for a PING sent after a publish arrives after
 *    that publish's message, which the replica applied first.
 * A replica that did not acknowledge within ackTimeoutMs (> staleAfterMs) therefore either applied the
 * change or has no heartbeat newer than the publish — and is failing closed — by the time revoke answers.
 * 4. A replica acknowledges only after `settle`: its calls in flight for the key that had not made their
 *    final check are killed, and those that had are durable in the audit stream (see in-flight-calls.ts).
 * Changes and acknowledgements are HMAC-signed (revocation-messages.ts), and acknowledgements are counted once
 * per replica, so nobody who can merely publish to Redis can lift a revocation or fake the agreement.
 * The liveness clock is monotonic (performance.now), not the broker's injectable clock: it measures how
 * long this process has gone without hearing from Redis, which must not jump with wall-clock time.
 */
export interface RevocationFeedOptions {
  /** For publishing changes and acknowledgements. */
  redis: Redis;
  /** A dedicated connection: a subscribed connection cannot run other commands. */
  subscriber: Redis;
  keyspace: Keyspace;
  signer: FeedSigner;
  /** This replica's id in acknowledgements (random per process). */
  replicaId?: string;
  /** Applies a change to the local mirror (synchronously: it must be in effect before the ack). */
  apply(change: RevocationChange): void;
  /**
   * Runs after `apply` and before the ack: settles this replica's calls in flight for the change's key
   * (kills those not yet at their final check, waits for those past it), so the revoking replica, which
   * records the revoke only after every ack, never records it before an allow it covers.
   */
  settle?(change: RevocationChange): Promise<void>;
  /** Re-reads the whole table into the mirror; the feed is not live until it has succeeded after subscribing. */
  resync(): Promise<void>;
  logger: Pick<Logger, 'info' | 'warn'>;
  heartbeatMs?: number;
  staleAfterMs?: number;
  ackTimeoutMs?: number;
}

export interface PublishResult {
  /** Replicas subscribed when it was published (this one included). */
  receivers: number;
  acknowledged: number;
}

export interface RevocationFeed {
  /** Subscribes and resyncs; resolves once live, rejects if that takes longer than `timeoutMs`. */
  start(timeoutMs: number): Promise<void>;
  publish(change: RevocationChange): Promise<PublishResult>;
  live(): boolean;
  close(): Promise<void>;
}

export function createRevocationFeed(options: RevocationFeedOptions): RevocationFeed {
  const { redis, subscriber, keyspace, logger } = options;
  const messages = createRevocationMessages(options.signer);
  const replicaId = options.replicaId ?? randomUUID();
  const heartbeatMs = options.heartbeatMs ?? 500;
  const staleAfterMs = options.staleAfterMs ?? 2000;
  const ackTimeoutMs = options.ackTimeoutMs ?? Math.max(staleAfterMs + 500, 2500);
  if (ackTimeoutMs <= staleAfterMs) throw new Error('ackTimeoutMs must be longer than staleAfterMs, or an unacknowledged replica could still look live');

  const now = () => performance.now();
  let subscribed = false;
  let synced = false;
  /** Bumped on every (dis)connection, so a resync that started on an older connection cannot mark this one live. */
  let generation = 0;
  /** Send time of the newest heartbeat (or subscription) Redis has answered. */
  let lastHeard = -Infinity;
  let resyncing: Promise<void> | undefined;
  let rerun = false;
  let heartbeat: NodeJS.Timeout | undefined;
  let closed = false;
  let wasLive = false;
  const pendingAcks = new Map<string, { expected: number; replicas: Set<string>; done: () => void }>();

  const live = () => subscribed && synced && now() - lastHeard <= staleAfterMs;

  function noteLiveness(): void {
    const isLive = live();
    if (isLive !== wasLive) {
      wasLive = isLive;
      if (isLive) logger.info('revocation feed live: mirror resynced from PostgreSQL');
      else logger.warn('revocation feed lost: failing closed until it is resubscribed and resynced');
    }
  }

  function lost(): void {
    generation++;
    subscribed = false;
    synced = false;
    noteLiveness();
  }

  async function subscribeAndResync(): Promise<void> {
    const gen = ++generation;
    const sentAt = now();
    await subscriber.subscribe(keyspace.revocationChannel, keyspace.revocationAckChannel);
    if (gen !== generation) return;
    subscribed = true;
    lastHeard = sentAt;
    await resync();
  }

  /**
   * One resync at a time; a request while one runs makes it run once more, since its snapshot may
   * predate what prompted the request. Live only if no disconnection happened since the last read began.
   */
  function resync(): Promise<void> {
    if (resyncing) {
      rerun = true;
      return resyncing;
    }
    resyncing = (async () => {
      try {
        let startedAt: number;
        do {
          rerun = false;
          startedAt = generation;
          await options.resync();
        } while (rerun);
        if (startedAt === generation && subscribed) synced = true;
      } finally {
        resyncing = undefined;
        noteLiveness();
      }
    })();
    return resyncing;
  }

  function onMessage(channel: string, text: string): void {
    if (channel === keyspace.revocationAckChannel) {
      const ack = messages.decodeAck(text);
      const pending = ack && pendingAcks.get(ack.id);
      if (!ack || !pending) return;
      pending.replicas.add(ack.replica);
      if (pending.replicas.size >= pending.expected) pending.done();
      return;
    }
    if (channel !== keyspace.revocationChannel) return;
    const message = messages.decodeChange(text);
    if (!message) {
      // A change we cannot read could be a revocation: stop trusting the mirror and re-read the table.
      logger.warn('unreadable or unsigned revocation message; resyncing from PostgreSQL');
      synced = false;
      resync().catch(() => undefined);
      return;
    }
    options.apply(message);
    const settled = message.active && options.settle ? options.settle(message).catch((err) => logger.warn({ err }, 'settling calls in flight for a revocation failed')) : Promise.resolve();
    void settled.then(() => redis.publish(keyspace.revocationAckChannel, messages.encodeAck(message.id, replicaId)).catch(() => undefined));
  }

  async function beat(): Promise<void> {
    if (closed || subscriber.status !== 'ready') return;
    if (!subscribed) {
      await subscribeAndResync();
      return;
    }
    if (!synced) {
      await resync();
      return;
    }
    const sentAt = now();
    const gen = generation;
    try {
      await subscriber.ping();
      if (gen === generation) lastHeard = sentAt;
    } catch {
      // No answer within the command timeout: the connection is probably dead without having closed.
      // Reconnect now rather than wait for TCP to notice; `lost` runs from the close event.
      if (!closed) subscriber.disconnect(true);
    }
    noteLiveness();
  }

  // ioredis does not resubscribe by itself here (autoResubscribe is off): every new connection
  // subscribes and resyncs before this replica trusts its mirror again.
  const onReady = () => {
    if (!closed) subscribeAndResync().catch((err) => logger.warn({ err }, 'revocation feed could not resubscribe; retrying'));
  };
  subscriber.on('message', onMessage);
  subscriber.on('close', lost);
  subscriber.on('ready', onReady);

  return {
    async start(timeoutMs) {
      heartbeat = setInterval(() => {
        beat().catch((err) => logger.warn({ err }, 'revocation feed heartbeat failed'));
      }, heartbeatMs);
      heartbeat.unref();
      const deadline = now() + timeoutMs;
      if (subscriber.status === 'ready' && !subscribed) await subscribeAndResync().catch(() => undefined);
      while (!live()) {
        if (now() > deadline) throw new Error(`revocations could not be synchronised within ${timeoutMs} ms (Redis subscription or PostgreSQL read failing)`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(heartbeatMs, 50)));
      }
    },

    async publish(change) {
      const id = randomUUID();
      const message: ChangeMessage = {
        id,
        key: change.key,
        active: change.active,
        version: change.version,
        ...(change.notBefore === undefined ? {} : { notBefore: change.notBefore }),
        ...(change.expiresAt === undefined ? {} : { expiresAt: change.expiresAt }),
      };
      let done!: () => void;
      const allAcked = new Promise<void>((resolve) => (done = resolve));
      const pending = { expected: Number.POSITIVE_INFINITY, replicas: new Set<string>(), done };
      // Registered before publishing: an acknowledgement can arrive before PUBLISH's own reply.
      pendingAcks.set(id, pending);
      let timer: NodeJS.Timeout | undefined;
      try {
        const receivers = await redis.publish(keyspace.revocationChannel, messages.encodeChange(message));
        pending.expected = receivers;
        if (pending.replicas.size >= receivers) done();
        await Promise.race([allAcked, new Promise<void>((resolve) => (timer = setTimeout(resolve, ackTimeoutMs)))]);
        return { receivers, acknowledged: Math.min(pending.replicas.size, receivers) };
      } finally {
        clearTimeout(timer);
        pendingAcks.delete(id);
      }
    },

    live() {
      const isLive = live();
      if (isLive !== wasLive) noteLiveness();
      return isLive;
    },

    async close() {
      closed = true;
      clearInterval(heartbeat);
      subscriber.off('message', onMessage);
      subscriber.off('close', lost);
      subscriber.off('ready', onReady);
      for (const pending of pendingAcks.values()) pending.done();
      await resyncing?.catch(() => undefined);
    },
  };
}
