import { s } from '../dom';

/** A horizontal use-of-limit bar (quota, concurrency, budget): one glance says how close to the limit. */
export function gauge(label: string, used: number, limit: number): SVGElement {
  const width = 240;
  const share = limit > 0 ? Math.min(1, used / limit) : 0;
  const level = share >= 0.9 ? 'hot' : share >= 0.6 ? 'warm' : 'cool';
  return s(
    'svg',
    { class: 'gauge', viewBox: `0 0 ${width} 30`, width, height: 30, role: 'img', 'aria-label': `${label}: ${used} of ${limit}` },
    s('text', { x: 0, y: 10, class: 'axis' }, `${label}`),
    s('text', { x: width, y: 10, class: 'axis', 'text-anchor': 'end' }, `${used} / ${limit}`),
    s('rect', { x: 0, y: 16, width, height: 10, rx: 3, class: 'track' }),
    s('rect', { x: 0, y: 16, width: Math.max(share > 0 ? 2 : 0, Math.round(share * width)), height: 10, rx: 3, class: `fill ${level}` }),
  );
}
