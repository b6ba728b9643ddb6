import { s } from '../dom';

export interface Series {
  name: string;
  points: Array<[number, number]>;
}

export interface LineChartOptions {
  title: string;
  series: Series[];
  /** Formats a y value for the axis and the accessible summary. */
  format: (v: number) => string;
  /** Draw steps (values that hold until the next sample) rather than straight segments. */
  step?: boolean;
  width?: number;
  height?: number;
}

const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

/**
 * A time-series line chart as SVG: shared time axis, a y axis from zero, one colour class per series
 * (colours live in app.css, never in a style attribute), a legend, and an accessible name that says
 * the latest value of each series for people who cannot see the lines.
 */
export function lineChart(options: LineChartOptions): SVGElement {
  const width = options.width ?? 560;
  const height = options.height ?? 220;
  const all = options.series.flatMap((x) => x.points);
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const yMax = niceMax(Math.max(0, ...all.map((p) => p[1])));
  const x = (t: number) => PAD.left + (t1 === t0 ? 0 : ((t - t0) / (t1 - t0)) * (width - PAD.left - PAD.right));
  const y = (v: number) => height - PAD.bottom - (yMax === 0 ? 0 : (v / yMax) * (height - PAD.top - PAD.bottom));
  const latest = options.series.map((x) => `${x.name} ${x.points.length ? options.format(x.points[x.points.length - 1]![1]) : 'no data'}`).join(', ');

  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height + 18 * Math.ceil(options.series.length / 2)}`, role: 'img', 'aria-label': `${options.title}. Latest: ${latest}.` }, s('title', {}, options.title));
  for (let i = 0; i <= 4; i++) {
    const v = (yMax / 4) * i;
    svg.append(s('line', { x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v), class: 'gridline' }), s('text', { x: PAD.left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, options.format(v)));
  }
  if (all.length) {
    svg.append(s('text', { x: PAD.left, y: height - 8, class: 'axis' }, clock(t0)), s('text', { x: width - PAD.right, y: height - 8, class: 'axis', 'text-anchor': 'end' }, clock(t1)));
  }
  options.series.forEach((series, i) => {
    if (series.points.length === 0) return;
    const d = series.points
      .map(([t, v], j) => {
        if (j === 0) return `M${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        return options.step ? `H${x(t).toFixed(1)}V${y(v).toFixed(1)}` : `L${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      })
      .join('');
    svg.append(s('path', { d, class: `line series-${i % 8}` }));
    if (series.points.length === 1) svg.append(s('circle', { cx: x(series.points[0]![0]), cy: y(series.points[0]![1]), r: 3, class: `dot series-${i % 8}` }));
    const lx = PAD.left + (i % 2) * 250;
    const ly = height + 4 + 18 * Math.floor(i / 2);
    svg.append(s('rect', { x: lx, y: ly, width: 12, height: 4, class: `swatch series-${i % 8}` }), s('text', { x: lx + 16, y: ly + 6, class: 'legend' }, series.name));
  });
  return svg;
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= v) return m * step;
  return 10 * step;
}

function clock(t: number): string {
  return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
