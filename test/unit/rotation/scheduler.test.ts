import { manualClock } from '../../../src/clock';
import { createRenewal, createScheduledTask, renewalTime } from '../../../rotation/scheduler';
import { manualTimer } from './manual-timer';

const T0 = Date.UTC(2030, 0, 1);

describe('scheduled task', () => {
  it('runs once at start, then again exactly when the run asked to', async () => {
    const clock = manualClock(T0);
    const timer = manualTimer(clock);
    const runs: number[] = [];
    const task = createScheduledTask({ name: 't', clock, timer, run: async () => (runs.push(clock.now()), clock.now() + 10_000) });
    await task.start();
    expect(runs).toEqual([T0]);
    expect(task.nextRunAt()).toBe(T0 + 10_000);
    await timer.advanceTo(T0 + 9_999);
    expect(runs).toHaveLength(1);
    await timer.advanceTo(T0 + 10_000);
    expect(runs).toEqual([T0, T0 + 10_000]);
    await task.stop();
  });

  it('retries a failed run with a doubling back-off instead of waiting for the next due time', async () => {
    const clock = manualClock(T0);
    const timer = manualTimer(clock);
    let failuresLeft = 3;
    const attempts: number[] = [];
    const task = createScheduledTask({
      name: 't',
      clock,
      timer,
      retryMs: 1000,
      run: async () => {
        attempts.push(clock.now() - T0);
        if (failuresLeft-- > 0) throw new Error('store unavailable');
        return clock.now() + 3_600_000;
      },
    });
    await task.start();
    for (let i = 0; i < 3; i++) await timer.fireNext();
    expect(attempts).toEqual([0, 1000, 3000, 7000]);
    expect(task.nextRunAt()).toBe(T0 + 7000 + 3_600_000);
    await task.stop();
  });

  it('never overlaps runs: runNow during a run joins it, and stop waits for it', async () => {
    const clock = manualClock(T0);
    const timer = manualTimer(clock);
    let active = 0;
    let maxActive = 0;
    let release!: () => void;
    const task = createScheduledTask({
      name: 't',
      clock,
      timer,
      run: async () => {
        active += 1;
        maxActive = Math.max(maxActive, active);
        await new Promise<void>((resolve) => (release = resolve));
        active -= 1;
        return clock.now() + 1000;
      },
    });
    const first = task.runNow();
    const second = task.runNow();
    const stopped = task.stop();
    let stopResolved = false;
    void stopped.then(() => (stopResolved = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopResolved).toBe(false);
    release();
    await Promise.all([first, second, stopped]);
    expect(maxActive).toBe(1);
    expect(timer.pending()).toEqual([]);
  });
});

describe('renewal before expiry', () => {
  it('renews at two thirds of the lifetime, not before, and then from the new lifetime', async () => {
    const clock = manualClock(T0);
    const timer = manualTimer(clock);
    const renewedAt: number[] = [];
    const renewal = createRenewal({
      name: 'lease',
      clock,
      timer,
      current: { issuedAt: T0, expiresAt: T0 + 90_000 },
      renew: async () => {
        renewedAt.push(clock.now() - T0);
        return { issuedAt: clock.now(), expiresAt: clock.now() + 90_000 };
      },
    });
    await renewal.start();
    expect(renewedAt).toEqual([]);
    await timer.advanceTo(T0 + 59_999);
    expect(renewedAt).toEqual([]);
    await timer.advanceTo(T0 + 60_000);
    await timer.advanceTo(T0 + 120_000);
    expect(renewedAt).toEqual([60_000, 120_000]);
    expect(renewal.current()).toEqual({ issuedAt: T0 + 120_000, expiresAt: T0 + 210_000 });
    await renewal.stop();
  });

  it('renews at once when nothing is held, and on renewNow whatever the age', async () => {
    const clock = manualClock(T0);
    const timer = manualTimer(clock);
    let count = 0;
    const renewal = createRenewal({ name: 'token', clock, timer, renew: async () => (count++, { issuedAt: clock.now(), expiresAt: clock.now() + 3_600_000 }) });
    await renewal.start();
    expect(count).toBe(1);
    await renewal.renewNow();
    expect(count).toBe(2);
    expect(renewal.nextRunAt()).toBe(renewalTime({ issuedAt: T0, expiresAt: T0 + 3_600_000 }));
    await renewal.stop();
  });

  it('keeps retrying a failed renewal well inside the remaining third of the lifetime', async () => {
    const clock = manualClock(T0);
    const timer = manualTimer(clock);
    const attempts: number[] = [];
    const renewal = createRenewal({
      name: 'lease',
      clock,
      timer,
      current: { issuedAt: T0, expiresAt: T0 + 120_000 },
      renew: async () => {
        attempts.push(clock.now() - T0);
        throw new Error('vault sealed');
      },
    });
    await renewal.start();
    await timer.advanceTo(T0 + 80_000);
    while (clock.now() < T0 + 120_000) await timer.fireNext();
    // From the 2/3 point until expiry it kept trying, never waiting more than 1/12 of the lifetime.
    expect(attempts[0]).toBe(80_000);
    const gaps = attempts.slice(1).map((a, i) => a - attempts[i]!);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(10_000);
    expect(attempts.length).toBeGreaterThanOrEqual(6);
    await renewal.stop();
  });
});
