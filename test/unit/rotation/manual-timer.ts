import type { manualClock } from '../../../src/clock';
import type { Timer } from '../../../rotation/scheduler';

/**
 * A Timer driven by a manual clock: nothing fires until the test moves time. `advanceTo` moves the
 * clock, fires what is due, and waits until the fired task has scheduled its next run (every task
 * reschedules itself at the end of a run, success or failure), so the test can look at the result.
 */
export interface ManualTimer extends Timer {
  /** Due times of pending callbacks, earliest first. */
  pending(): number[];
  /** Moves the clock to `at` (if later) and fires every callback due by then, one at a time. */
  advanceTo(at: number): Promise<void>;
  /** Moves the clock to the earliest pending callback and fires it. */
  fireNext(): Promise<void>;
}

export function manualTimer(clock: ReturnType<typeof manualClock>): ManualTimer {
  let nextId = 1;
  const entries = new Map<number, { at: number; fn: () => void }>();
  let onSet: (() => void) | undefined;

  const earliest = () => [...entries.entries()].sort((a, b) => a[1].at - b[1].at)[0];

  async function fire(id: number): Promise<void> {
    const entry = entries.get(id)!;
    entries.delete(id);
    const rescheduled = new Promise<void>((resolve) => (onSet = resolve));
    entry.fn();
    let guard: NodeJS.Timeout | undefined;
    const stuck = new Promise((_, reject) => (guard = setTimeout(() => reject(new Error('task did not reschedule itself')), 5000)));
    await Promise.race([rescheduled, stuck]).finally(() => clearTimeout(guard));
  }

  const timer: ManualTimer = {
    set(fn, delayMs) {
      const id = nextId++;
      entries.set(id, { at: clock.now() + Math.max(0, delayMs), fn });
      const notify = onSet;
      onSet = undefined;
      notify?.();
      return id;
    },
    clear(handle) {
      entries.delete(handle as number);
    },
    pending: () => [...entries.values()].map((e) => e.at).sort((a, b) => a - b),
    async advanceTo(at) {
      if (at > clock.now()) clock.set(at);
      for (let next = earliest(); next && next[1].at <= clock.now(); next = earliest()) await fire(next[0]);
    },
    async fireNext() {
      const next = earliest();
      if (!next) throw new Error('nothing scheduled');
      if (next[1].at > clock.now()) clock.set(next[1].at);
      await fire(next[0]);
    },
  };
  return timer;
}
