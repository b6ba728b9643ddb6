import type { Logger } from 'pino';
import type { Clock } from '../src/clock';
import type { KeyRing } from '../src/tokens/key-ring';
import type { LeaderLock } from './leader-lock';
import { createScheduledTask, type Timer } from './scheduler';

/**
 * The signing-key rotation timer. When the current key has signed for one period, it moves the ring one
 * step (src/tokens/key-ring.ts: previous → retired, current → previous, next → current, a new next).
 *
 * Why the order is safe (publish before sign, verify after retire):
 * - The key that starts signing has been `next` — in the JWKS and trusted by every replica that reloaded —
 *   for a whole period, since the previous step created it. SPIRE publishes at half-life and activates at
 *   5/6; here publication starts at the earlier step, so it leads activation by the full period.
 * - The key that stops signing stays in the JWKS as `previous` for one more period, then verifies (as
 *   `retired`) until max token TTL + clock skew after that: every token it signed has expired by then.
 * - One step per check, never several: catching up after downtime by rotating twice would promote a
 *   key nobody has fetched yet. An overdue ring (the broker was down) steps once at start.
 * - Each step is one persisted save done by the key ring from the stored ring, so it is idempotent and
 *   safe to retry, and a crash leaves either the old ring or the new one; the next check (at start)
 *   sees the age and rotates if still due.
 *
 * Only the replica holding the leader lock rotates; the others reload every `followIntervalMs` to
 * follow it (and take over the lock if the leader dies).
 */

export interface KeyRotationDeps {
  keyRing: Pick<KeyRing, 'rotate' | 'reload' | 'status'>;
  lock: LeaderLock;
  clock: Clock;
  timer?: Timer;
  /** How long a key signs before the next one takes over (`broker.rotation.signing_key`). */
  periodMs: number;
  /** How often to re-check the lock and reload the ring; default min(period / 4, 30s). */
  followIntervalMs?: number;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

export interface KeyRotation {
  /** Checks once now (an overdue ring rotates before this resolves), then keeps checking. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** One scheduled check now: rotate if due and leader, else follow. Rejects if it fails. */
  check(): Promise<void>;
  /** A forced step (`bulkhead keys rotate`): rotates now whatever the key's age, then reschedules. */
  rotateNow(): Promise<{ kid: string }>;
  /** When the current key is due to be replaced (epoch ms); undefined before the first check. */
  nextRotationAt(): number | undefined;
  isLeader(): boolean;
}

export function createKeyRotation(deps: KeyRotationDeps): KeyRotation {
  const { keyRing, lock, clock, periodMs } = deps;
  if (!(periodMs > 0)) throw new Error('signing key rotation period must be positive');
  const followIntervalMs = deps.followIntervalMs ?? Math.min(periodMs / 4, 30_000);
  // Longer than the interval between two checks, so a live leader keeps the lock across them.
  const lockTtlMs = Math.max(1000, followIntervalMs * 3);
  let leader = false;
  let dueAt: number | undefined;

  function currentKey() {
    const key = keyRing.status().find((k) => k.state === 'current');
    if (!key) throw new Error('key ring has no current key');
    return key;
  }

  const dueOf = () => {
    const key = currentKey();
    return (key.activatedAt ?? key.createdAt) + periodMs;
  };

  const task = createScheduledTask({
    name: 'signing-key rotation',
    clock,
    timer: deps.timer,
    retryMs: Math.min(1000, followIntervalMs),
    maxRetryMs: Math.max(followIntervalMs, 1000),
    onError: (err, attempt) => deps.logger?.warn({ err, attempt }, 'signing key rotation check failed; retrying'),
    async run() {
      leader = await lock.acquire(lockTtlMs);
      // The leader reloads too: another replica may have rotated while it did not hold the lock.
      await keyRing.reload();
      if (leader && clock.now() >= dueOf()) {
        await keyRing.rotate();
        deps.logger?.info({ kid: currentKey().kid }, 'signing key rotated');
      }
      dueAt = dueOf();
      // A follower may see the ring overdue until the leader steps it: check again later, not in a loop.
      const now = clock.now();
      return dueAt > now ? Math.min(dueAt, now + followIntervalMs) : now + followIntervalMs;
    },
  });

  return {
    start: () => task.start(),
    async stop() {
      await task.stop();
      if (leader) await lock.release().catch(() => undefined);
      leader = false;
    },
    check: () => task.runNow(),
    async rotateNow() {
      await keyRing.rotate();
      dueAt = dueOf();
      // Reschedule from the new current key; a failure here is retried by the task itself.
      await task.runNow().catch(() => undefined);
      return { kid: currentKey().kid };
    },
    nextRotationAt: () => dueAt,
    isLeader: () => leader,
  };
}
