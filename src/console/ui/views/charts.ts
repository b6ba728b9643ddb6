import { api } from '../api';
import { h, replace, s } from '../dom';
import { barChart } from '../charts/bar-chart';
import { lineChart, type Series } from '../charts/line-chart';
import { increase, quantile, quantileSeries, ratesPerMinute, type Sample } from '../charts/metrics-math';
import type { ViewContext } from '../main';

const POLL_MS = 5000;
const MAX_SERIES = 6;

const ms = (v: number) => (v >= 1 ? `${v.toFixed(2)} s` : `${(v * 1000).toFixed(v < 0.01 ? 2 : 1)} ms`);
const perMin = (v: number) => `${v >= 100 ? v.toFixed(0) : v.toFixed(1)}/min`;
const count = (v: number) => v.toFixed(0);
const duration = (v: number) => (v >= 3600 ? `${(v / 3600).toFixed(1)} h` : v >= 60 ? `${(v / 60).toFixed(0)} min` : `${v.toFixed(0)} s`);

/**
 * Pictures from /metrics: decisions by reason (rate over time and totals over the window), authorize
 * latency p50/p99, and the rotation timelines (key and certificate ages rise and drop back at each
 * rotation; next-rotation countdowns). The broker keeps an hour of samples while a console watches.
 */
export function renderCharts(main: HTMLElement, _ctx: ViewContext): () => void {
  const body = h('div', { class: 'charts', 'data-samples': '0' }, h('p', {}, 'Loading…'));
  replace(main, h('h1', {}, 'Charts'), h('p', { class: 'muted' }, 'Drawn from this broker\u2019s /metrics, sampled every few seconds while a console is open; the last hour is kept.'), body);
  let timer: number | undefined;
  let stopped = false;

  async function poll(): Promise<void> {
    try {
      const { samples } = await api<{ samples: Sample[] }>('GET', '/metrics');
      draw(body, samples);
    } catch (err) {
      replace(body, h('p', { class: 'error' }, `Could not load metrics: ${(err as Error).message}`));
    }
    if (!stopped) timer = window.setTimeout(() => void poll(), POLL_MS);
  }
  void poll();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}

function figure(title: string, chart: SVGElement, note?: string): HTMLElement {
  return h('figure', { class: 'card' }, h('figcaption', {}, h('h2', {}, title), note ? h('p', { class: 'muted' }, note) : null), chart);
}

function draw(body: HTMLElement, samples: Sample[]): void {
  body.setAttribute('data-samples', String(samples.length));
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!last) return replace(body, h('p', { class: 'muted' }, 'No samples yet.'));
  const window = samples.length > 1 ? `over the last ${duration((last.t - first!.t) / 1000)}` : 'since the broker started';
  const from = samples.length > 1 ? first : undefined;

  const totals = increase(from, last, (x) => x.decisions);
  const bars = Object.entries(totals)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([key, value]) => ({ label: label(key), value, kind: key.startsWith('allow') ? 'allow' : 'deny' }));

  const rates = ratesPerMinute(samples, (x) => x.decisions);
  const top = [...rates].sort((a, b) => sum(b[1]) - sum(a[1]));
  const rateSeries: Series[] = top.slice(0, MAX_SERIES).map(([key, points]) => ({ name: label(key), points }));
  if (top.length > MAX_SERIES) {
    const rest = top.slice(MAX_SERIES);
    rateSeries.push({ name: 'other', points: rest[0]![1].map(([t], i) => [t, rest.reduce((acc, [, p]) => acc + (p[i]?.[1] ?? 0), 0)]) });
  }

  const p50 = quantile(0.5, from, last);
  const p99 = quantile(0.99, from, last);
  const latency: Series[] = [
    { name: 'p50 (1 min window)', points: quantileSeries(0.5, samples, 60_000) },
    { name: 'p99 (1 min window)', points: quantileSeries(0.99, samples, 60_000) },
  ];

  const rotation = (pick: (x: Sample) => Record<string, number>, prefix: string): Series[] => {
    const keys = [...new Set(samples.flatMap((x) => Object.keys(pick(x))))].sort();
    return keys.map((k) => ({ name: `${prefix}${k}`, points: samples.filter((x) => pick(x)[k] !== undefined).map((x) => [x.t, pick(x)[k]!] as [number, number]) }));
  };
  const ages = [...rotation((x) => x.keyAge, 'key '), ...rotation((x) => x.certificateAge, 'certificate ')];
  const next = rotation((x) => x.nextRotation, '');

  replace(
    body,
    h(
      'div',
      { class: 'columns' },
      figure(`Decisions by reason, ${window}`, barChart('Authorize decisions by reason', bars, count), 'Allows in green, denies in red.'),
      figure('Decision rate by reason', rateSeries.length ? lineChart({ title: 'Authorize decisions per minute by reason', series: rateSeries, format: perMin }) : waiting()),
    ),
    h(
      'div',
      { class: 'columns' },
      figure(
        'Authorize latency',
        latency[0]!.points.length ? lineChart({ title: 'Authorize latency p50 and p99', series: latency, format: ms }) : waiting(),
        p50 === null ? 'No authorize calls yet.' : `${window}: p50 ${ms(p50)}, p99 ${ms(p99!)} (from the histogram buckets).`,
      ),
      figure('Key and certificate age', ages.length ? lineChart({ title: 'Signing key and certificate age', series: ages, format: duration }) : waiting(), 'Each drop back to zero is a rotation.'),
    ),
    h('div', { class: 'columns' }, figure('Time to the next rotation', next.length ? lineChart({ title: 'Seconds until the next scheduled rotation', series: next, format: duration, step: true }) : waiting())),
  );
}

function waiting(): SVGElement {
  // A rate needs two samples: say so rather than draw an empty axis.
  return s('svg', { class: 'chart', viewBox: '0 0 560 40', role: 'img', 'aria-label': 'Collecting samples' }, s('text', { x: 8, y: 24, class: 'axis' }, 'Collecting samples\u2026 (a rate needs two)'));
}

function label(key: string): string {
  const [decision, reason] = key.split('/');
  return decision === 'allow' ? 'allow' : `deny: ${reason || 'unknown'}`;
}

function sum(points: Array<[number, number]>): number {
  return points.reduce((a, [, v]) => a + v, 0);
}
