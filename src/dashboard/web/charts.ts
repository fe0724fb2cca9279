/// <reference lib="dom" />
// Inline SVG charts: sparklines for the fleet rows, line charts and the frontier scatter for the
// device page. Strings, not DOM calls, because a fleet row re-renders its three sparklines in
// one innerHTML assignment.
import type { FrontierPoint } from '../model.js';
import { esc, fmt } from './util.js';

export function sparkline(values: readonly (number | null)[], w: number, h: number, cls: string, limit?: number): string {
  const nums = values.filter((v): v is number => v !== null);
  if (nums.length < 2) return `<svg width="${w}" height="${h}" class="${cls}"></svg>`;
  let lo = Math.min(...nums);
  let hi = Math.max(...nums);
  if (limit !== undefined) {
    lo = Math.min(lo, limit);
    hi = Math.max(hi, limit);
  }
  if (hi - lo < 1e-9) {
    hi += 1;
    lo -= 1;
  }
  const step = w / Math.max(1, values.length - 1);
  const y = (v: number): number => h - 2 - ((v - lo) / (hi - lo)) * (h - 4);
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v === null) {
      pen = false;
      return;
    }
    d += `${pen ? 'L' : 'M'}${(i * step).toFixed(1)} ${y(v).toFixed(1)}`;
    pen = true;
  });
  const lim =
    limit !== undefined ? `<line x1="0" x2="${w}" y1="${y(limit).toFixed(1)}" y2="${y(limit).toFixed(1)}" class="budget-line"/>` : '';
  return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" class="${cls}">${lim}<path d="${d}" fill="none" stroke="var(--${cls})" stroke-width="1.5"/></svg>`;
}

interface Series {
  values: { t: number; v: number | null }[];
  color: string;
  name: string;
}

function niceTicks(lo: number, hi: number, n: number): number[] {
  const span = hi - lo || 1;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A time-series chart; `limit` draws a dashed budget line. */
export function lineChart(series: Series[], opts: { w: number; h: number; limit?: number; unit: string }): string {
  const { w, h } = opts;
  const L = 44,
    R = 8,
    T = 8,
    B = 20;
  const pts = series.flatMap((s) => s.values.filter((p) => p.v !== null)) as { t: number; v: number }[];
  if (!pts.length) return `<svg viewBox="0 0 ${w} ${h}"><text x="${w / 2}" y="${h / 2}" text-anchor="middle">no data yet</text></svg>`;
  const t0 = Math.min(...pts.map((p) => p.t));
  const t1 = Math.max(...pts.map((p) => p.t), t0 + 1000);
  let lo = Math.min(...pts.map((p) => p.v));
  let hi = Math.max(...pts.map((p) => p.v));
  if (opts.limit !== undefined) {
    lo = Math.min(lo, opts.limit);
    hi = Math.max(hi, opts.limit);
  }
  lo = Math.min(0, lo);
  if (hi - lo < 1e-9) hi = lo + 1;
  hi += (hi - lo) * 0.08;
  const x = (t: number): number => L + ((t - t0) / (t1 - t0)) * (w - L - R);
  const y = (v: number): number => T + (1 - (v - lo) / (hi - lo)) * (h - T - B);
  let g = '';
  for (const v of niceTicks(lo, hi, 4)) {
    g += `<line class="grid" x1="${L}" x2="${w - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>`;
    g += `<text x="${L - 4}" y="${(y(v) + 3).toFixed(1)}" text-anchor="end">${esc(fmt(v, v < 10 ? 1 : 0))}</text>`;
  }
  for (const f of [0, 0.5, 1]) {
    const t = t0 + f * (t1 - t0);
    const d = new Date(t);
    const label = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:${String(d.getSeconds()).padStart(2, '0')}`;
    g += `<text x="${x(t).toFixed(1)}" y="${h - 5}" text-anchor="${f === 0 ? 'start' : f === 1 ? 'end' : 'middle'}">${label}</text>`;
  }
  if (opts.limit !== undefined) {
    g += `<line class="budget-line" x1="${L}" x2="${w - R}" y1="${y(opts.limit).toFixed(1)}" y2="${y(opts.limit).toFixed(1)}"><title>budget ${esc(fmt(opts.limit))} ${esc(opts.unit)}</title></line>`;
  }
  for (const s of series) {
    // thin to about one point per pixel: 3,600 points would only blur together
    const every = Math.max(1, Math.floor(s.values.length / (w - L - R)));
    let d = '';
    let pen = false;
    s.values.forEach((p, i) => {
      if (i % every !== 0 && i !== s.values.length - 1) return;
      if (p.v === null) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)} ${y(p.v).toFixed(1)}`;
      pen = true;
    });
    g += `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"><title>${esc(s.name)}</title></path>`;
  }
  g += `<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${h - B}"/><line class="axis" x1="${L}" x2="${w - R}" y1="${h - B}" y2="${h - B}"/>`;
  return `<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none">${g}</svg>`;
}

/**
 * The frontier's latencies as the agent judges them: each level's ratio to the original timed
 * beside it, times the original's live p50 (the figure the page's latency budget is stated from),
 * where both are known; else the fit's raw p50.
 */
export function rebaseFrontier(points: readonly FrontierPoint[], originalMs: number | null): FrontierPoint[] {
  return points.map((p) =>
    p.ratio !== undefined && originalMs !== null && originalMs > 0 ? { ...p, latencyMs: p.ratio * originalMs } : p,
  );
}

/** Latency (x) against fidelity (y): every measured candidate, the frontier line, the chosen one. */
export function frontierPlot(points: FrontierPoint[], budgets: { latencyMs?: number; minFidelity?: number }, w = 520, h = 300): string {
  if (!points.length)
    return `<svg viewBox="0 0 ${w} ${h}"><text x="${w / 2}" y="${h / 2}" text-anchor="middle">no frontier reported yet</text></svg>`;
  const L = 48,
    R = 12,
    T = 12,
    B = 34;
  const xs = points.map((p) => p.latencyMs);
  const ys = points.map((p) => p.fidelity);
  if (budgets.latencyMs !== undefined) xs.push(budgets.latencyMs);
  if (budgets.minFidelity !== undefined) ys.push(budgets.minFidelity);
  const x0 = 0;
  let x1 = Math.max(...xs) * 1.1;
  let y0 = Math.min(...ys),
    y1 = Math.max(...ys);
  const pad = (y1 - y0) * 0.1 || 0.01;
  y0 -= pad;
  y1 = Math.min(1.0001, y1 + pad);
  if (x1 - x0 < 1e-9) x1 = x0 + 1;
  const x = (v: number): number => L + ((v - x0) / (x1 - x0)) * (w - L - R);
  const y = (v: number): number => T + (1 - (v - y0) / (y1 - y0)) * (h - T - B);
  let g = '';
  for (const v of niceTicks(x0, x1, 6))
    g += `<line class="grid" x1="${x(v).toFixed(1)}" x2="${x(v).toFixed(1)}" y1="${T}" y2="${h - B}"/><text x="${x(v).toFixed(1)}" y="${h - B + 13}" text-anchor="middle">${esc(fmt(v, 0))}</text>`;
  for (const v of niceTicks(y0, y1, 5))
    g += `<line class="grid" x1="${L}" x2="${w - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/><text x="${L - 4}" y="${(y(v) + 3).toFixed(1)}" text-anchor="end">${esc(v.toFixed(3))}</text>`;
  g += `<text x="${(L + w - R) / 2}" y="${h - 4}" text-anchor="middle">latency p50 (ms)</text>`;
  g += `<text x="12" y="${(T + h - B) / 2}" text-anchor="middle" transform="rotate(-90 12 ${(T + h - B) / 2})">fidelity</text>`;
  if (budgets.latencyMs !== undefined)
    g +=
      `<line class="budget-line" x1="${x(budgets.latencyMs).toFixed(1)}" x2="${x(budgets.latencyMs).toFixed(1)}" y1="${T}" y2="${h - B}">` +
      `<title>latency budget ${esc(fmt(budgets.latencyMs))} ms</title></line>`;
  if (budgets.minFidelity !== undefined)
    g +=
      `<line class="budget-line" x1="${L}" x2="${w - R}" y1="${y(budgets.minFidelity).toFixed(1)}" y2="${y(budgets.minFidelity).toFixed(1)}">` +
      `<title>fidelity budget ${esc(budgets.minFidelity)}</title></line>`;
  const sorted = [...points].sort((a, b) => a.latencyMs - b.latencyMs);
  g += `<path class="front" d="${sorted.map((p, i) => `${i ? 'L' : 'M'}${x(p.latencyMs).toFixed(1)} ${y(p.fidelity).toFixed(1)}`).join('')}"/>`;
  for (const p of sorted) {
    g +=
      `<circle class="pt${p.chosen ? ' chosen' : ''}" data-level="${p.level}"` +
      ` cx="${x(p.latencyMs).toFixed(1)}" cy="${y(p.fidelity).toFixed(1)}" r="${p.chosen ? 6 : 4}">` +
      `<title>L${p.level} ${esc(p.label)}: ${esc(fmt(p.latencyMs))} ms${p.ratio !== undefined ? ` (${esc(p.ratio.toFixed(2))}x the original)` : ''}, fidelity ${esc(p.fidelity.toFixed(4))}` +
      `${p.ramMb !== null ? `, ${esc(fmt(p.ramMb))} MB` : ''}${p.chosen ? ' (deployed)' : ''}</title></circle>`;
    if (p.chosen) {
      // on the side of the point with more room, below it at the top edge: right of a point in the
      // plot's right half the label ran past the chart (cut at 'L1 fp32 pruned 13% laten')
      const px = x(p.latencyMs),
        py = y(p.fidelity);
      const right = w - R - px >= px - L;
      g +=
        `<text class="chosen-label" x="${(right ? px + 9 : px - 9).toFixed(1)}" y="${(py - 8 < T + 8 ? py + 16 : py - 8).toFixed(1)}"` +
        ` text-anchor="${right ? 'start' : 'end'}">L${p.level} ${esc(p.label)} (deployed)</text>`;
    }
  }
  g += `<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${h - B}"/><line class="axis" x1="${L}" x2="${w - R}" y1="${h - B}" y2="${h - B}"/>`;
  return `<svg viewBox="0 0 ${w} ${h}">${g}</svg>`;
}

/**
 * A training run's loss by step: the batch loss (thin) and the held-out loss (dots joined).
 * `before`, the held-out loss of the weights training started from, is its first dot, at step 0:
 * without it the held-out line starts at the first evaluation, after the steep part of the drop,
 * and a run that cut its held-out loss 4x drew as flat.
 */
export function lossChart(curve: readonly { step: number; loss: number; heldOut?: number }[], w = 520, h = 200, before?: number): string {
  const L = 52,
    R = 8,
    T = 8,
    B = 22;
  const start = before !== undefined && Number.isFinite(before) && curve.length ? [{ s: 0, v: before }] : [];
  const vals = [...start.map((p) => p.v), ...curve.flatMap((p) => (p.heldOut !== undefined ? [p.loss, p.heldOut] : [p.loss]))];
  if (curve.length < 2 || !vals.length)
    return `<svg viewBox="0 0 ${w} ${h}"><text x="${w / 2}" y="${h / 2}" text-anchor="middle">no curve</text></svg>`;
  const s0 = Math.min(...start.map((p) => p.s), ...curve.map((p) => p.step));
  const s1 = Math.max(...curve.map((p) => p.step), s0 + 1);
  const lo = Math.min(0, ...vals);
  let hi = Math.max(...vals);
  if (hi - lo < 1e-12) hi = lo + 1;
  hi += (hi - lo) * 0.08;
  const x = (s: number): number => L + ((s - s0) / (s1 - s0)) * (w - L - R);
  const y = (v: number): number => T + (1 - (v - lo) / (hi - lo)) * (h - T - B);
  let g = '';
  for (const v of niceTicks(lo, hi, 4)) {
    g += `<line class="grid" x1="${L}" x2="${w - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>`;
    g += `<text x="${L - 4}" y="${(y(v) + 3).toFixed(1)}" text-anchor="end">${esc(v.toPrecision(2))}</text>`;
  }
  for (const f of [0, 0.5, 1]) {
    const s = Math.round(s0 + f * (s1 - s0));
    g += `<text x="${x(s).toFixed(1)}" y="${h - 6}" text-anchor="${f === 0 ? 'start' : f === 1 ? 'end' : 'middle'}">step ${s}</text>`;
  }
  const path = (pts: { s: number; v: number }[]) => pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.s).toFixed(1)} ${y(p.v).toFixed(1)}`).join('');
  g += `<path class="loss-train" d="${path(curve.map((p) => ({ s: p.step, v: p.loss })))}" fill="none" stroke="#8aa4c8" stroke-width="1"><title>batch loss</title></path>`;
  const held = [...start, ...curve.filter((p) => p.heldOut !== undefined).map((p) => ({ s: p.step, v: p.heldOut! }))];
  if (held.length) {
    g += `<path class="loss-held" d="${path(held)}" fill="none" stroke="#d9822b" stroke-width="2"><title>held-out loss</title></path>`;
    for (const p of held) g += `<circle cx="${x(p.s).toFixed(1)}" cy="${y(p.v).toFixed(1)}" r="2.5" fill="#d9822b"/>`;
  }
  g += `<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${h - B}"/><line class="axis" x1="${L}" x2="${w - R}" y1="${h - B}" y2="${h - B}"/>`;
  return `<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none">${g}</svg>`;
}
