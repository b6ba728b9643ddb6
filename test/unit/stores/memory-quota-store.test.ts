import { manualClock } from '../../../src/clock';
import { createMemoryQuotaStore } from '../../../src/quotas/memory-quota-store';

describe('memory quota store: calls per minute', () => {
  test('denies the N+1th call within a minute and allows again once the window has passed', async () => {
    const clock = manualClock(1_000_000);
    const quotas = createMemoryQuotaStore({ clock });
    for (let i = 0; i < 5; i++) {
      expect((await quotas.takeCall('acme', 5)).allowed).toBe(true);
      clock.advance(1_000);
    }
    const denied = await quotas.takeCall('acme', 5);
    expect(denied.allowed).toBe(false);
    // The oldest call was at +0 s and it is now +5 s: the next slot opens at +60 s.
    expect(denied.retryAfterSeconds).toBe(55);

    clock.advance(55_000);
    expect((await quotas.takeCall('acme', 5)).allowed).toBe(true);
    // Only the oldest call left the window, so the one after is denied again.
    expect((await quotas.takeCall('acme', 5)).allowed).toBe(false);
  });

  test('the window slides: no burst at a minute boundary exceeds N in any 60 s', async () => {
    const clock = manualClock(0);
    const quotas = createMemoryQuotaStore({ clock });
    clock.set(59_000);
    for (let i = 0; i < 3; i++) expect((await quotas.takeCall('acme', 3)).allowed).toBe(true);
    clock.set(61_000);
    expect((await quotas.takeCall('acme', 3)).allowed).toBe(false);
  });

  test('retryAfterSeconds is at least 1 when denied', async () => {
    const clock = manualClock(0);
    const quotas = createMemoryQuotaStore({ clock });
    await quotas.takeCall('acme', 1);
    clock.advance(59_999);
    expect(await quotas.takeCall('acme', 1)).toEqual({ allowed: false, retryAfterSeconds: 1 });
  });

  test('denied calls do not count against the window', async () => {
    const clock = manualClock(0);
    const quotas = createMemoryQuotaStore({ clock });
    await quotas.takeCall('acme', 1);
    for (let i = 0; i < 10; i++) {
      clock.advance(5_000);
      await quotas.takeCall('acme', 1);
    }
    clock.set(60_000);
    expect((await quotas.takeCall('acme', 1)).allowed).toBe(true);
  });

  test("one tenant's budget is not another's", async () => {
    const quotas = createMemoryQuotaStore({ clock: manualClock(0) });
    expect((await quotas.takeCall('acme', 1)).allowed).toBe(true);
    expect((await quotas.takeCall('acme', 1)).allowed).toBe(false);
    expect((await quotas.takeCall('globex', 1)).allowed).toBe(true);
  });

  test('a lowered limit after a policy reload applies to calls already made', async () => {
    const quotas = createMemoryQuotaStore({ clock: manualClock(0) });
    for (let i = 0; i < 4; i++) await quotas.takeCall('acme', 10);
    expect((await quotas.takeCall('acme', 3)).allowed).toBe(false);
    expect((await quotas.takeCall('acme', 10)).allowed).toBe(true);
  });

  test('usage counts only calls within the last minute', async () => {
    const clock = manualClock(0);
    const quotas = createMemoryQuotaStore({ clock });
    await quotas.takeCall('acme', 10);
    clock.advance(30_000);
    await quotas.takeCall('acme', 10);
    expect((await quotas.usage('acme')).calls_last_minute).toBe(2);
    clock.advance(30_000);
    expect((await quotas.usage('acme')).calls_last_minute).toBe(1);
  });
});

describe('memory quota store: concurrency slots', () => {
  test('denies a slot beyond the limit and frees it on release', async () => {
    const quotas = createMemoryQuotaStore({ clock: manualClock(0) });
    expect(await quotas.acquireSlot('acme', 'c1', 2, 60_000)).toBe(true);
    expect(await quotas.acquireSlot('acme', 'c2', 2, 60_000)).toBe(true);
    expect(await quotas.acquireSlot('acme', 'c3', 2, 60_000)).toBe(false);
    expect(await quotas.releaseSlot('acme', 'c1')).toBe(true);
    expect(await quotas.releaseSlot('acme', 'c1')).toBe(false);
    expect(await quotas.acquireSlot('acme', 'c3', 2, 60_000)).toBe(true);
    expect((await quotas.usage('acme')).in_flight).toBe(2);
  });

  test('a slot never released frees itself after its TTL', async () => {
    const clock = manualClock(0);
    const quotas = createMemoryQuotaStore({ clock });
    expect(await quotas.acquireSlot('acme', 'stuck', 1, 10_000)).toBe(true);
    expect(await quotas.acquireSlot('acme', 'next', 1, 10_000)).toBe(false);
    clock.advance(10_000);
    expect((await quotas.usage('acme')).in_flight).toBe(0);
    expect(await quotas.acquireSlot('acme', 'next', 1, 10_000)).toBe(true);
    expect(await quotas.releaseSlot('acme', 'stuck')).toBe(false);
  });

  test('a call id already in flight cannot take a second slot', async () => {
    const quotas = createMemoryQuotaStore({ clock: manualClock(0) });
    expect(await quotas.acquireSlot('acme', 'c1', 5, 60_000)).toBe(true);
    expect(await quotas.acquireSlot('acme', 'c1', 5, 60_000)).toBe(false);
    expect((await quotas.usage('acme')).in_flight).toBe(1);
  });

  test("slots are per tenant: acme's full house does not block globex, nor can globex release acme's", async () => {
    const quotas = createMemoryQuotaStore({ clock: manualClock(0) });
    expect(await quotas.acquireSlot('acme', 'c1', 1, 60_000)).toBe(true);
    expect(await quotas.acquireSlot('globex', 'c2', 1, 60_000)).toBe(true);
    expect(await quotas.releaseSlot('globex', 'c1')).toBe(false);
    expect((await quotas.usage('acme')).in_flight).toBe(1);
  });
});
