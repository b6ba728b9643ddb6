import type { Logger } from 'pino';
import { BrokerError } from '../errors';
import { systemClock, type Clock } from '../clock';
import { assertRevocation, untilPastSecond, type RevocationStore } from '../revocation/revocation-store';
import type { RevocationTable } from './postgres/revocation-table';
import type { RevocationFeed, RevocationFeedOptions } from './redis/revocation-feed';
import { createRevocationMirror, type RevocationChange, type RevocationMirror } from './revocation-mirror';

/**
 * Revocation for many replicas: durable in PostgreSQL, pushed through Redis, checked in memory.
 *
 * - `revoke`: commit the row (durable) → apply to this replica's mirror → publish and wait for the other
 *   replicas to acknowledge (see revocation-feed.ts for why that makes "answered" mean "enforced
 *   everywhere") → resolve.
 * - `check` (every authorize): an in-memory lookup, but only while the feed is live; when the mirror may
 *   be stale (subscription down, not yet resynced, heartbeat overdue) it throws, and the pipeline answers
 *   503 state_unavailable. A replica that cannot know never allows.
 * - Every `reconcileMs` the whole table is re-read and merged, a backstop for anything pub/sub dropped.
 */
export interface SharedRevocationStoreOptions {
  table: RevocationTable;
  createFeed: (hooks: Pick<RevocationFeedOptions, 'apply' | 'settle' | 'resync'>) => RevocationFeed;
  logger: Pick<Logger, 'info' | 'warn'>;
  reconcileMs?: number;
  clock?: Clock;
}

export interface SharedRevocationStore extends RevocationStore {
  /** Subscribes and loads the table; rejects if that does not happen within timeoutMs. */
  start(timeoutMs: number): Promise<void>;
  /** Called with every newly active revocation key (pushed or re-read) before this replica acknowledges it. */
  onKill(listener: (key: string) => Promise<void>): void;
  /** Broadcasts a kill that is not a revocation (a quarantine) to every replica's `onKill`; resolves when all have acknowledged. */
  announceKill(key: string): Promise<void>;
  live(): boolean;
  close(): Promise<void>;
}

const STALE = 'revocation state may be stale (shared state unreachable); failing closed';

export function createSharedRevocationStore(options: SharedRevocationStoreOptions): SharedRevocationStore {
  const { table, logger } = options;
  const clock = options.clock ?? systemClock;
  const mirror: RevocationMirror = createRevocationMirror(clock);
  let killListener: (key: string) => Promise<void> = async () => undefined;
  const settle = (change: RevocationChange) => (change.active ? killListener(change.key) : Promise.resolve());
  // A revocation this replica missed on the feed and learns from the table still reaches its calls in flight.
  const merge = (changes: RevocationChange[]) => changes.forEach((c) => mirror.apply(c) && void settle(c).catch(() => undefined));
  const feed = options.createFeed({
    // Announced kills (quarantines) live in the session store, not in the revocation table or the mirror.
    apply: (change) => void (isAnnouncedKill(change.key) || mirror.apply(change)),
    settle,
    resync: async () => merge(await table.readAll()),
  });
  let reconciler: NodeJS.Timeout | undefined;

  function assertLive(): void {
    if (!feed.live()) throw new BrokerError('state_unavailable', STALE);
  }

  async function propagate(change: RevocationChange, what: string): Promise<void> {
    let result;
    try {
      result = await feed.publish(change);
    } catch (err) {
      // Durable already: replicas pick it up when they next resync or reconcile. Until the operator sees
      // success, they must assume some replica has not heard of it yet, so this is an error.
      throw new BrokerError('state_unavailable', `the ${what} is stored but could not be pushed to every replica; retry to confirm`, { cause: err });
    }
    if (result.acknowledged < result.receivers) {
      logger.warn({ receivers: result.receivers, acknowledged: result.acknowledged }, `${what} not acknowledged by every replica in time; the others are failing closed until they resync`);
    }
  }

  return {
    async start(timeoutMs) {
      await feed.start(timeoutMs);
      const every = options.reconcileMs ?? 30_000;
      reconciler = setInterval(() => {
        table.readAll().then(merge, (err) => logger.warn({ err }, 'revocation reconciliation failed; will retry'));
      }, every);
      reconciler.unref();
    },

    async revoke(record) {
      assertRevocation(record);
      const change = await table.revoke(record);
      mirror.apply(change);
      await propagate(change, 'revocation');
    },

    async lift(target) {
      assertRevocation({ target, at: 0 });
      const lifted = await table.lift(target, clock.now());
      if (!lifted) return null;
      mirror.apply(lifted.change);
      await propagate(lifted.change, 'lift');
      return lifted.record;
    },

    // From PostgreSQL, not the mirror: the mirror holds keys and states, not reasons and tenants.
    list: (now) => table.list(now),

    onKill(listener) {
      killListener = listener;
    },

    async announceKill(key) {
      if (!isAnnouncedKill(key)) throw new Error(`not an announced kill key: ${key}`);
      await propagate({ key, active: true, version: 0 }, 'kill');
    },

    async restoreTenant(tenant) {
      const change = await table.restoreTenant(tenant);
      if (!change) return false;
      mirror.apply(change);
      await propagate(change, 'restore');
      if (change.notBefore !== undefined) await untilPastSecond(clock, change.notBefore);
      return true;
    },

    async check(subject) {
      assertLive();
      return mirror.check(subject);
    },

    async isTenantRevoked(tenant) {
      assertLive();
      return mirror.isTenantRevoked(tenant);
    },

    live: () => feed.live(),

    async close() {
      clearInterval(reconciler);
      await feed.close();
    },
  };
}

/** Keys of kills that are announced on the feed but kept elsewhere (quarantines: the session store). */
function isAnnouncedKill(key: string): boolean {
  return key.startsWith('quarantine:');
}
