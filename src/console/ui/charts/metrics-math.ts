// The broker's own sample type; a type-only import, so nothing of the server side reaches the bundle.
import type { MetricsSample as Sample } from '../../metrics-history';

/**
 * Rates and percentiles from cumulative Prometheus samples, the way PromQL's rate() and
 * histogram_quantile() compute them: counter deltas over time, and linear interpolation inside the
 * bucket where the wanted rank falls.
 */
export type { Sample };

/** Per-minute rate of each counter key between consecutive samples (a reset counts from zero). */
export function ratesPerMinute(samples: Sample[], pick: (s: Sample) => Record<string, number>): Map<string, Array<[number, number]>> {
  const out = new Map<string, Array<[number, number]>>();
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const minutes = (b.t - a.t) / 60_000;
    if (minutes <= 0) continue;
    const keys = new Set([...Object.keys(pick(a)), ...Object.keys(pick(b))]);
    for (const key of keys) {
      const before = pick(a)[key] ?? 0;
      const after = pick(b)[key] ?? 0;
      const delta = after >= before ? after - before : after;
      if (!out.has(key)) out.set(key, []);
      out.get(key)!.push([b.t, delta / minutes]);
    }
  }
  return out;
}

/** Counter increase between two samples (or since start when `from` is missing). */
export function increase(from: Sample | undefined, to: Sample, pick: (s: Sample) => Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(pick(to))) {
    const before = from ? (pick(from)[key] ?? 0) : 0;
    out[key] = value >= before ? value - before : value;
  }
  return out;
}

/** The q-quantile (0..1) of the observations between two histogram samples, in seconds; null when none. */
export function quantile(q: number, from: Sample | undefined, to: Sample): number | null {
  const base = new Map(from?.latency ?? []);
  const buckets = to.latency.map(([le, count]) => [le, Math.max(0, count - (base.get(le) ?? 0))] as [number, number]);
  const total = Math.max(0, to.latencyCount - (from?.latencyCount ?? 0));
  if (total === 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) return lowerBound + (le - lowerBound) * ((rank - lowerCount) / Math.max(1, count - lowerCount));
    lowerBound = le;
    lowerCount = count;
  }
  // Beyond the largest finite bucket: all we can say is "at least" that bound.
  return lowerBound;
}

/** The quantile over a sliding window ending at each sample. */
export function quantileSeries(q: number, samples: Sample[], windowMs: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 1; i < samples.length; i++) {
    const end = samples[i]!;
    let j = i - 1;
    while (j > 0 && end.t - samples[j - 1]!.t <= windowMs) j--;
    const v = quantile(q, samples[j], end);
    if (v !== null) out.push([end.t, v]);
  }
  return out;
}
