import { manualClock } from '../../../src/clock';
import { createMemoryQuotaStore } from '../../../src/quotas/memory-quota-store';

// Expired slots are pruned lazily (only when they could be what fills the limit); these prove that
// laziness never changes an answer.
test('expired slots never count against the limit, however many there are', async () => {
  const clock = manualClock(0);
  const quotas = createMemoryQuotaStore({ clock });
  for (let i = 0; i < 3; i++) expect(await quotas.acquireSlot('acme', `old-${i}`, 3, 1_000)).toBe(true);
  expect(await quotas.acquireSlot('acme', 'refused', 3, 1_000)).toBe(false);
  clock.advance(1_000);
  for (let i = 0; i < 3; i++) expect(await quotas.acquireSlot('acme', `new-${i}`, 3, 1_000)).toBe(true);
  expect(await quotas.acquireSlot('acme', 'refused-again', 3, 1_000)).toBe(false);
  expect((await quotas.usage('acme')).in_flight).toBe(3);
});

test('a call id whose slot expired may take a slot again; a live one may not', async () => {
  const clock = manualClock(0);
  const quotas = createMemoryQuotaStore({ clock });
  expect(await quotas.acquireSlot('acme', 'call-1', 10, 1_000)).toBe(true);
  expect(await quotas.acquireSlot('acme', 'call-1', 10, 1_000)).toBe(false);
  clock.advance(1_000);
  expect(await quotas.acquireSlot('acme', 'call-1', 10, 1_000)).toBe(true);
  expect(await quotas.releaseSlot('acme', 'call-1')).toBe(true);
});
