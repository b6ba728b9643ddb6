import type { Clock } from '../clock';

/**
 * The console's charts are drawn from /metrics: the same Prometheus text a scraper reads, parsed here
 * and kept as a ring of samples (one hour by default), so a rate or a percentile "over the last hour"
 * needs no Prometheus server beside the broker. A sample is taken when a console asks and the last
 * one is older than `minIntervalMs`, so an unwatched broker does no work; the history of one replica
 * starts when a console first looks at it.
 *
 * Only the series the console draws are kept, and their labels are the bounded enums /metrics already
 * has (decision, reason, state, kind): no tenant, principal, session or tool can be in a sample.
 */
export interface MetricsSample {
  t: number;
  /** Cumulative authorize decisions by `decision/reason`. */
  decisions: Record<string, number>;
  /** Cumulative authorize latency histogram over all decisions: [upper bound in seconds, count ≤ bound]. */
  latency: Array<[number, number]>;
  latencyCount: number;
  /** Youngest signing key's age by lifecycle state, seconds. */
  keyAge: Record<string, number>;
  /** Seconds to the next rotation by kind. */
  nextRotation: Record<string, number>;
  /** Certificate ages by kind, seconds. */
  certificateAge: Record<string, number>;
}

export interface MetricsHistoryOptions {
  clock: Clock;
  /** The text /metrics serves. */
  scrape: () => Promise<string>;
  minIntervalMs?: number;
  windowMs?: number;
}

export interface PromLine {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition format, the subset prom-client writes (no timestamps, no exemplars). */
export function parsePrometheusText(text: string): PromLine[] {
  const out: PromLine[] = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split('\n')) {
    if (!raw || raw.startsWith('#')) continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(label)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    if (!Number.isNaN(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

export function sampleOf(t: number, lines: PromLine[]): MetricsSample {
  const sample: MetricsSample = { t, decisions: {}, latency: [], latencyCount: 0, keyAge: {}, nextRotation: {}, certificateAge: {} };
  const buckets = new Map<number, number>();
  for (const { name, labels, value } of lines) {
    if (name === 'bulkhead_authorize_decisions_total') {
      const key = `${labels.decision ?? ''}/${labels.reason ?? ''}`;
      sample.decisions[key] = (sample.decisions[key] ?? 0) + value;
    } else if (name === 'bulkhead_authorize_duration_seconds_bucket') {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + value);
    } else if (name === 'bulkhead_authorize_duration_seconds_count') {
      sample.latencyCount += value;
    } else if (name === 'bulkhead_signing_key_age_seconds' && labels.state) {
      sample.keyAge[labels.state] = value;
    } else if (name === 'bulkhead_next_rotation_seconds' && labels.kind) {
      sample.nextRotation[labels.kind] = value;
    } else if (name === 'bulkhead_certificate_age_seconds' && labels.kind) {
      sample.certificateAge[labels.kind] = value;
    }
  }
  // JSON has no Infinity: the +Inf bucket is the count, so it is left out.
  sample.latency = [...buckets].filter(([le]) => Number.isFinite(le)).sort((a, b) => a[0] - b[0]);
  return sample;
}

export function createMetricsHistory(options: MetricsHistoryOptions) {
  // Below the page's 5 s poll, so each poll of a watching console adds a sample.
  const minIntervalMs = options.minIntervalMs ?? 4000;
  const windowMs = options.windowMs ?? 60 * 60_000;
  const samples: MetricsSample[] = [];
  let inFlight: Promise<void> | null = null;

  async function take(): Promise<void> {
    const t = options.clock.now();
    samples.push(sampleOf(t, parsePrometheusText(await options.scrape())));
    while (samples.length > 0 && samples[0]!.t < t - windowMs) samples.shift();
  }

  return {
    /** The window's samples, oldest first, after taking a fresh one if the last is old enough. */
    async read(): Promise<MetricsSample[]> {
      const last = samples[samples.length - 1];
      if (!last || options.clock.now() - last.t >= minIntervalMs) {
        // Two consoles polling at once share one scrape.
        inFlight ??= take().finally(() => (inFlight = null));
        await inFlight;
      }
      return samples.slice();
    },
  };
}
