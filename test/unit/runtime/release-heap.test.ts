import { execFileSync } from 'node:child_process';
import { getHeapStatistics } from 'node:v8';
import { releaseUnusedHeap } from '../../../src/runtime/release-heap';
import { ensureBuilt, ROOT } from '../../support/built-cli';

/**
 * What a large policy load leaves behind: a heap grown for data that survived while it was being built
 * and is garbage now. One release must give most of it back (heap committed and RSS both fall), with no
 * flag on the command line (jest runs this without --expose-gc), and must not touch live data.
 *
 * Whether a global `gc` appears is checked in a process of its own, started as a broker is (no flag):
 * in a jest worker another test file (upstream-timeouts-gc.test.ts) may have turned --expose-gc on, and a
 * context made meanwhile (this file's) has a `gc` that cannot be deleted.
 */
test('the heap a burst of surviving allocations grew is given back, live data intact', () => {
  const live = new Map<number, { id: number; name: string }>();
  for (let i = 0; i < 10_000; i++) live.set(i, { id: i, name: `tenant-${i}` });
  // ~200 MB of objects that are all still reachable while they are made (as a parsed policy is), then dropped.
  let burst: Array<{ i: number; text: string; more: number[] }> | null = [];
  for (let i = 0; i < 1_000_000; i++) burst.push({ i, text: `value-${i}`, more: [i, i + 1, i + 2] });
  burst = null;
  const committed = getHeapStatistics().total_heap_size;

  const released = releaseUnusedHeap();

  expect(released.released).toBe(true);
  expect(getHeapStatistics().total_heap_size).toBeLessThan(committed * 0.7);
  expect(released.rssAfterBytes).toBeLessThan(released.rssBeforeBytes);
  expect(released.ms).toBeGreaterThan(0);
  expect(live.size).toBe(10_000);
  expect(live.get(9_999)).toEqual({ id: 9_999, name: 'tenant-9999' });
});

test('below the threshold nothing is collected; at any heap above it the function is found again', () => {
  const skipped = releaseUnusedHeap(Number.MAX_SAFE_INTEGER);
  expect(skipped).toMatchObject({ released: false, ms: 0 });
  expect(skipped.rssAfterBytes).toBe(skipped.rssBeforeBytes);
  const first = releaseUnusedHeap(0);
  const second = releaseUnusedHeap(0);
  expect([first.released, second.released]).toEqual([true, true]);
  expect(second.rssAfterBytes).toBeLessThanOrEqual(first.rssBeforeBytes + 16 * 2 ** 20);
});

test('in a process started without --expose-gc, the release leaves no global gc: not in the main context, not in one made later', () => {
  ensureBuilt();
  const script = `
    const { runInNewContext } = require('node:vm');
    const { releaseUnusedHeap } = require('./dist/src/runtime/release-heap');
    const released = releaseUnusedHeap(0).released;
    process.stdout.write(JSON.stringify({ released, main: typeof globalThis.gc, later: runInNewContext('typeof gc') }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }));
  expect(out).toEqual({ released: true, main: 'undefined', later: 'undefined' });
});
