import type { Clock } from '../src/clock';

/**
 * Time-driven work, with the clock and the timer injected so tests can move time by hand.
 *
 * A scheduled task runs `run()`, which does its work and answers when it wants to run next (epoch ms).
 * A failed run is retried with a doubling back-off instead of waiting for the next due time, because a
 * rotation that did not happen is exactly what must not be left until later. Runs never overlap:
 * `runNow()` while a run is in flight joins it, and `stop()` waits for it, so a shutdown cannot cut a
 * persisted step in half.
 *
 * `createRenewal` is the generic "renew before expiry" helper (certificates, Vault tokens, leases): it
 * renews at `fraction` (default 2/3) of each lifetime, and retries a failed renewal well before the
 * old credential expires.
 */

export interface Timer {
  set(callback: () => void, delayMs: number): unknown;
  clear(handle: unknown): void;
}

/** setTimeout caps delays at 2^31-1 ms (about 24.8 days); longer waits are taken in steps. */
const MAX_DELAY_MS = 2_147_483_647;

export const systemTimer: Timer = {
  set(callback, delayMs) {
    const handle = setTimeout(callback, Math.min(Math.max(0, delayMs), MAX_DELAY_MS));
    // A pending rotation must not keep a CLI or a test process alive on its own.
    handle.unref();
    return handle;
  },
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface ScheduledTaskOptions {
  /** For log lines and errors (never a secret). */
  name: string;
  clock: Clock;
  timer?: Timer;
  /** Does the work; resolves with when to run next (epoch ms). */
  run: () => Promise<number>;
  /** First retry delay after a failure; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  onError?: (err: unknown, attempt: number) => void;
}

export interface ScheduledTask {
  /** Runs once now (awaited, errors reported not thrown), then keeps itself scheduled. */
  start(): Promise<void>;
  /** Runs now, out of schedule (joins a run in flight); rejects if the run fails. */
  runNow(): Promise<void>;
  /** Epoch ms of the next scheduled run, undefined when stopped. */
  nextRunAt(): number | undefined;
  stop(): Promise<void>;
}

export function createScheduledTask(options: ScheduledTaskOptions): ScheduledTask {
  const { clock, run } = options;
  const timer = options.timer ?? systemTimer;
  const retryMs = options.retryMs ?? 1000;
  const maxRetryMs = options.maxRetryMs ?? 60_000;
  let handle: unknown;
  let nextAt: number | undefined;
  let inFlight: Promise<void> | undefined;
  let failures = 0;
  let running = false;

  function schedule(at: number): void {
    if (handle !== undefined) timer.clear(handle);
    handle = undefined;
    if (!running) return;
    nextAt = at;
    handle = timer.set(() => {
      handle = undefined;
      tick().catch(() => undefined);
    }, at - clock.now());
  }

  function tick(): Promise<void> {
    inFlight ??= (async () => {
      try {
        const at = await run();
        failures = 0;
        schedule(at);
      } catch (err) {
        failures += 1;
        options.onError?.(err, failures);
        schedule(clock.now() + Math.min(retryMs * 2 ** (failures - 1), maxRetryMs));
        throw err;
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  }

  return {
    async start() {
      if (running) return;
      running = true;
      await tick().catch(() => undefined);
    },
    runNow: () => tick(),
    nextRunAt: () => (running ? nextAt : undefined),
    async stop() {
      running = false;
      if (handle !== undefined) timer.clear(handle);
      handle = undefined;
      nextAt = undefined;
      await inFlight?.catch(() => undefined);
    },
  };
}

/** A credential's validity, epoch ms. */
export interface Lifetime {
  issuedAt: number;
  expiresAt: number;
}

/** When to renew: `fraction` of the way through the lifetime (2/3 leaves a third for retries). */
export function renewalTime(lifetime: Lifetime, fraction = 2 / 3): number {
  return lifetime.issuedAt + Math.max(0, lifetime.expiresAt - lifetime.issuedAt) * fraction;
}

export interface RenewalOptions {
  name: string;
  clock: Clock;
  timer?: Timer;
  /** The lifetime of what is held now; when omitted, the first run renews at once. */
  current?: Lifetime;
  /** Renews (or re-issues) and answers the new lifetime. */
  renew: () => Promise<Lifetime>;
  fraction?: number;
  onError?: (err: unknown, attempt: number) => void;
}

/**
 * Keeps a credential renewed before it expires. Retries back off from 1s up to a twelfth of the lifetime
 * (a quarter of the third left after the renewal point), so several attempts fit before it lapses.
 */
export function createRenewal(options: RenewalOptions): ScheduledTask & { current(): Lifetime | undefined; renewNow(): Promise<void> } {
  let held = options.current;
  let forced = false;
  const fraction = options.fraction ?? 2 / 3;
  const task = createScheduledTask({
    name: options.name,
    clock: options.clock,
    timer: options.timer,
    retryMs: 1000,
    maxRetryMs: held ? Math.max(1000, (held.expiresAt - held.issuedAt) / 12) : 60_000,
    onError: options.onError,
    async run() {
      if (forced || !held || options.clock.now() >= renewalTime(held, fraction)) {
        forced = false;
        held = await options.renew();
      }
      return renewalTime(held, fraction);
    },
  });
  return {
    ...task,
    current: () => held,
    /** Renews now whatever the age, and reschedules from the new lifetime. */
    async renewNow() {
      forced = true;
      await task.runNow();
    },
  };
}
