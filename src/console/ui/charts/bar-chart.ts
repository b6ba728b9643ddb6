import { s } from '../dom';

/**
 * Horizontal bars, one per label, longest first: "which reasons dominate" at a glance. Each bar's
 * class comes from the caller (allow vs deny), so colour carries meaning and the label still says it.
 */
export function barChart(title: string, bars: Array<{ label: string; value: number; kind: string }>, format: (v: number) => string): SVGElement {
  const width = 560;
  const row = 24;
  const labelWidth = 200;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const height = Math.max(1, bars.length) * row + 8;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `${title}: ${bars.map((b) => `${b.label} ${format(b.value)}`).join(', ') || 'none'}.` }, s('title', {}, title));
  bars.forEach((b, i) => {
    const top = 4 + i * row;
    const w = Math.max(b.value > 0 ? 2 : 0, ((width - labelWidth - 70) * b.value) / max);
    svg.append(
      s('text', { x: labelWidth - 8, y: top + 15, class: 'legend', 'text-anchor': 'end' }, b.label),
      s('rect', { x: labelWidth, y: top + 3, width: w, height: row - 8, rx: 2, class: `bar ${b.kind}` }),
      s('text', { x: labelWidth + w + 6, y: top + 15, class: 'axis' }, format(b.value)),
    );
  });
  if (bars.length === 0) svg.append(s('text', { x: labelWidth, y: 18, class: 'axis' }, 'no decisions yet'));
  return svg;
}
