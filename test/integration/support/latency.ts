import { performance } from 'node:perf_hooks';

/**
 * Observed latency of a resolve path, printed for the report — never asserted (timing thresholds make
 * tests flaky on a loaded machine). Runs `fn` sequentially `n` times after one warm-up call.
 */
export async function observeLatency(label: string, n: number, fn: () => Promise<unknown>): Promise<string> {
  await fn();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!.toFixed(1);
  const line = `[latency] ${label}: n=${n} p50=${at(0.5)}ms p95=${at(0.95)}ms min=${samples[0]!.toFixed(1)}ms max=${samples[samples.length - 1]!.toFixed(1)}ms`;
  console.log(line);
  return line;
}
