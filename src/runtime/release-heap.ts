import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Gives back to the operating system the heap a policy load grew and no longer uses. Parsing and
 * validating a large policy (44 MB of JSON at 10,000 tenants × 100 tools) allocates hundreds of MB that
 * all survive their first collections, so V8 grows the young generation to its maximum (128 MB
 * committed) and keeps it, with the file's text in large-object space until the next full collection:
 * 336 MB RSS for a 45 MB live heap. One memory-reducing full collection (V8's "last resort" flavour, the
 * one a low-memory notification runs) shrinks the young generation and compacts the rest: RSS ~112 MB.
 * It stops the world once (~140 ms at that size), so `bulkhead serve` runs it after its start and after
 * each applied reload, never per request, and only when the heap committed at least RELEASE_ABOVE_BYTES.
 *
 * `gc` is reached the way `--expose-gc` would expose it, but from here, so operators need no heap flag:
 * the flag is set at run time, the function taken from a fresh context and the flag cleared again, so no
 * context's globals gain a `gc` (the main context's, or one made later). A runtime without the "last
 * resort" option runs a plain full collection instead.
 */
type Collect = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let collect: Collect | undefined;

function collector(): Collect {
  if (collect) return collect;
  const exposed = (globalThis as { gc?: Collect }).gc;
  if (typeof exposed === 'function') return (collect = exposed);
  setFlagsFromString('--expose-gc');
  try {
    return (collect = runInNewContext('gc') as Collect);
  } finally {
    // Off again at once: with the flag on, every context made later in the process (vm, a test runner's)
    // would get a global `gc` too.
    setFlagsFromString('--no-expose-gc');
  }
}

/**
 * Below this much committed heap there is nothing worth a stop-the-world collection, and it would cost
 * more than it returns: the collection also shrinks the young generation to its minimum and lowers the
 * old generation's limit, and a busy broker then collects more often until V8 has grown them back
 * (measured: ~5-10 % more CPU per call on the small bench policy, whose heap commits ~35 MB).
 */
export const RELEASE_ABOVE_BYTES = 64 * 2 ** 20;

export interface HeapReleased {
  /** False when the committed heap was below the threshold: nothing was collected. */
  released: boolean;
  committedBeforeBytes: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  ms: number;
}

export function releaseUnusedHeap(aboveBytes = RELEASE_ABOVE_BYTES): HeapReleased {
  const committedBeforeBytes = getHeapStatistics().total_heap_size;
  const rssBeforeBytes = process.memoryUsage.rss();
  if (committedBeforeBytes < aboveBytes) return { released: false, committedBeforeBytes, rssBeforeBytes, rssAfterBytes: rssBeforeBytes, ms: 0 };
  const started = process.hrtime.bigint();
  collector()({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  return { released: true, committedBeforeBytes, rssBeforeBytes, rssAfterBytes: process.memoryUsage.rss(), ms: Number(process.hrtime.bigint() - started) / 1e6 };
}
