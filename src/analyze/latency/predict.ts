// Reading the latency tables: a layer's time at given widths, and a pruned model's predicted time.
// A layer's two sides are measured one at a time (input narrowed, output narrowed); their effects
// multiply (a Conv's work is cin x cout): t(ci, co) = t_in(ci) * t_out(co) / t_full. Between
// measured widths the time is interpolated linearly; the widths measured are the ones pruning may
// choose (block multiples), so the staircases between them do not matter to it.
import type { LatencyTables, LayerTable } from './types.js';

/** Piecewise-linear time at width `w` over measured (widths, ms); `full` when the side was not measured. */
function along(widths: readonly number[], ms: readonly number[], w: number, full: number): number {
  if (!widths.length) return full;
  if (w <= widths[0]!) return (ms[0]! * w) / widths[0]!; // below the first point: proportional, toward 0
  for (let i = 1; i < widths.length; i++) {
    if (w <= widths[i]!) {
      const a = widths[i - 1]!,
        b = widths[i]!;
      return ms[i - 1]! + ((ms[i]! - ms[i - 1]!) * (w - a)) / (b - a);
    }
  }
  return ms[ms.length - 1]!;
}

/** Estimated time of `t`'s layer with `cin` input and `cout` output channels, ms. */
export function layerMs(t: LayerTable, cin: number, cout: number): number {
  if (t.depthwise) return along(t.outWidths, t.outMs, Math.min(cin, cout), t.fullMs);
  const tin = along(t.inWidths, t.inMs, cin, t.fullMs);
  const tout = along(t.outWidths, t.outMs, cout, t.fullMs);
  return t.fullMs > 0 ? (tin * tout) / t.fullMs : 0;
}

/**
 * Predicted whole-model time with the layers at `widths` (node name -> channels; layers not
 * named keep their full widths): the measured model time less what the layers save. Savings,
 * not sums: what isolated layers cannot see (layout changes between them, the ops that pruning
 * does not touch) stays in the anchor.
 */
export function predictMs(tables: LatencyTables, widths: ReadonlyMap<string, { cin: number; cout: number }>): number {
  let saved = 0;
  for (const t of tables.layers) {
    const w = widths.get(t.node);
    if (!w) continue;
    saved += t.fullMs - layerMs(t, w.cin, w.cout);
  }
  return tables.modelMs - saved;
}
