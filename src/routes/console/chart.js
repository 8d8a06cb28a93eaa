'use strict';
// Charts of counts per minute, drawn as plain SVG.

const SVG = 'http://www.w3.org/2000/svg';
const COMPACT = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

/** The smallest of 1, 2, 5 × 10^k at or above `n` (at least 1). */
function niceAbove(n) {
  if (n <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(n));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= n);
}
const COLOURS = ['#3b6fd6', '#c2410c', '#15803d', '#7e22ce', '#b91c1c', '#0e7490', '#a16207', '#be185d'];

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * A line chart of `series` ({name, points: [[minute_ms, n]], colour?}) over
 * `from`..`to` in steps of `step` ms; `threshold` ({value, label}) draws a
 * dashed line. Returns a <figure> with the chart and its legend (totals).
 */
function lineChart({ title, from, to, step, series, threshold }) {
  const W = 760, H = 200, L = 44, R = 8, T = 10, B = 24;
  const slots = Math.max(1, Math.round((to - from) / step));
  let max = threshold ? threshold.value : 0;
  for (const s of series) for (const [, n] of s.points) max = Math.max(max, n);
  max = niceAbove(max);
  const x = (ms) => L + ((ms - from) / (to - from)) * (W - L - R);
  const y = (n) => T + (1 - n / max) * (H - T - B);
  const total = (s) => s.points.reduce((a, [, n]) => a + n, 0);
  const summary = series.map((s) => `${s.name} ${total(s)}`).join(', ');
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${summary || 'no data'}` });
  for (const n of [0, max / 2, max]) {
    chart.append(svg('line', { x1: L, x2: W - R, y1: y(n), y2: y(n), stroke: '#e3e6ec' }));
    chart.append(svg('text', { x: L - 6, y: y(n) + 4, 'text-anchor': 'end' }, COMPACT.format(n)));
  }
  const hours = (to - from) / 3_600_000;
  const tick = hours > 12 ? 4 : hours > 4 ? 1 : 0.25;
  for (let t = Math.ceil(from / (tick * 3_600_000)) * tick * 3_600_000; t <= to; t += tick * 3_600_000) {
    chart.append(svg('text', { x: x(t), y: H - 6, 'text-anchor': 'middle' }, new Date(t).toISOString().slice(11, 16)));
  }
  series.forEach((s, i) => {
    const counts = new Map(s.points);
    const points = [];
    for (let k = 0; k < slots; k++) {
      const t = from + k * step;
      points.push(`${x(t).toFixed(1)},${y(counts.get(t) || 0).toFixed(1)}`);
    }
    const colour = s.colour || COLOURS[i % COLOURS.length];
    chart.append(svg('polyline', { points: points.join(' '), fill: 'none', stroke: colour, 'stroke-width': 1.5, 'data-series': s.name }));
  });
  if (threshold) {
    chart.append(svg('line', { x1: L, x2: W - R, y1: y(threshold.value), y2: y(threshold.value), stroke: '#b91c1c', 'stroke-dasharray': '6 4', 'data-threshold': threshold.value }));
  }
  const legend = el('ul', { class: 'legend' }, series.map((s, i) => {
    const li = el('li', {}, `${s.name}: ${total(s).toLocaleString('en')}`);
    li.style.setProperty('--swatch', s.colour || COLOURS[i % COLOURS.length]);
    return li;
  }));
  if (threshold) {
    const li = el('li', {}, threshold.label);
    li.style.setProperty('--swatch', '#b91c1c');
    legend.append(li);
  }
  return el('figure', {}, el('figcaption', { class: 'muted' }, title), chart, legend);
}
