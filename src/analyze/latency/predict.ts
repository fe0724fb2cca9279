// Reading the latency tables: a layer's time at given widths, and a pruned model's predicted time.
// A layer's two sides are measured one at a time (input narrowed, output narrowed). Their effects
// multiply where the work is cin x cout (t_in * t_out / t_full) and add where it is per side (a
// HardSwish tail after the Conv scales with cout alone); the table's `interaction` (measured with
// both narrowed) says how much of each: t = t_in + t_out - t_full + k (t_full - t_in)(t_full - t_out) / t_full,
// k = 1 being the product. Between
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
  if (!(t.fullMs > 0)) return 0;
  const k = t.interaction ?? 1;
  return Math.max(0, tin + tout - t.fullMs + (k * (t.fullMs - tin) * (t.fullMs - tout)) / t.fullMs);
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
