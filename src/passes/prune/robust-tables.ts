// Reading measured latency tables robustly before an allocation optimises against them. A
// knapsack maximises predicted savings, so it chases every timing outlier: on a shared box one
// det layer (96 -> 96 channels) timed 15.4 ms at full width and 5.3 ms at 80 output channels,
// so one step looked like a 10 ms saving where its neighbours' points say about 2. Two rules:
// - each side of a layer (time vs input width, time vs output width) is read as a line fitted by
//   Theil-Sen (median of pairwise slopes, median intercept): one outlier among 6-8 points moves it
//   little. The widths pruning chooses are block multiples, where the kernels' staircases do not
//   show, so a line is the shape left; a slope <= 0 (narrower is not faster) saves nothing.
// - the layers cannot take more than the model: when the units' full-width times add up to more
//   than the whole model's measured time (units timed under a heavier load), every layer time is
//   scaled down to fit, so savings are never larger than the model could give.
import type { LatencyTables, LayerTable } from '../../analyze/latency/types.js';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Theil-Sen line through (w, t): slope clamped at >= 0, the value at each w clamped at >= 0. */
export function theilSen(ws: readonly number[], ts: readonly number[]): (w: number) => number {
  const slopes: number[] = [];
  for (let i = 0; i < ws.length; i++)
    for (let j = i + 1; j < ws.length; j++) if (ws[j] !== ws[i]) slopes.push((ts[j]! - ts[i]!) / (ws[j]! - ws[i]!));
  const b = slopes.length ? Math.max(0, median(slopes)) : 0;
  const a = median(ts.map((t, i) => t - b * ws[i]!));
  return (w) => Math.max(0, a + b * w);
}

function side(widths: readonly number[], ms: readonly number[], full: number): { ms: number[]; atFull: number } | null {
  if (widths.length < 2) return null;
  const f = theilSen(widths, ms);
  return { ms: widths.map(f), atFull: f(full) };
}

/** A copy of `tables` with every layer's sides read as robust lines and the layers' total fitted under the model's time. */
export function robustTables(tables: LatencyTables): LatencyTables {
  const layers: LayerTable[] = tables.layers.map((l) => {
    const ins = l.depthwise ? null : side(l.inWidths, l.inMs, l.inChannels);
    const outs = side(l.outWidths, l.outMs, l.depthwise ? Math.min(l.inChannels, l.outChannels) : l.outChannels);
    const fulls = [ins?.atFull, outs?.atFull].filter((x): x is number => x !== undefined);
    const full = fulls.length ? fulls.reduce((a, b) => a + b, 0) / fulls.length : l.fullMs;
    // both sides end at the same full-width time (layerMs multiplies them over it)
    const scaled = (s: { ms: number[]; atFull: number } | null, raw: number[]) =>
      s ? s.ms.map((t) => (s.atFull > 0 ? (t * full) / s.atFull : 0)) : raw;
    return { ...l, inMs: scaled(ins, l.inMs), outMs: scaled(outs, l.outMs), fullMs: full };
  });
  const total = layers.reduce((a, l) => a + l.fullMs, 0);
  const k = total > tables.modelMs && total > 0 ? tables.modelMs / total : 1;
  if (k < 1)
    for (const l of layers) {
      l.inMs = l.inMs.map((t) => t * k);
      l.outMs = l.outMs.map((t) => t * k);
      l.fullMs *= k;
    }
  return { ...tables, layers };
}
