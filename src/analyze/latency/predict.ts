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

/** Estimated time of `t`'s layer with `cin` input and `cout` output channels (in `groups` groups, when known), ms. */
export function layerMs(t: LayerTable, cin: number, cout: number, groups?: number): number {
  if (t.depthwise) return along(t.outWidths, t.outMs, Math.min(cin, cout), t.fullMs);
  if (t.groupWidth) {
    // whole groups gone: the measured line; the same groups each narrower: no faster (types.ts)
    if (groups !== undefined && groups * t.groupWidth !== cout) return t.fullMs;
    return along(t.outWidths, t.outMs, cout, t.fullMs);
  }
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
export function predictMs(tables: LatencyTables, widths: ReadonlyMap<string, { cin: number; cout: number; groups?: number }>): number {
  let saved = 0;
  for (const t of tables.layers) {
    const w = widths.get(t.node);
    if (!w) continue;
    saved += t.fullMs - layerMs(t, w.cin, w.cout, w.groups);
  }
  return tables.modelMs - saved;
}

/** The probe points as a monotone curve through (1, 1): sorted by prediction, measured never decreasing. */
function probeCurve(tables: LatencyTables): { p: number[]; m: number[] } | null {
  const pts = (tables.probes ?? []).filter((q) => q.predicted > 0 && q.predicted < 1 && q.measured > 0);
  if (!pts.length) return null;
  pts.sort((a, b) => a.predicted - b.predicted);
  const p = [...pts.map((q) => q.predicted), 1];
  const m = [...pts.map((q) => Math.min(1, q.measured)), 1];
  // timing noise can make a deeper cut measure slower than a lighter one: pool such pairs
  // (pool-adjacent-violators, the least-squares monotone fit), so the map stays invertible
  const blocks: { sum: number; n: number }[] = [];
  for (const v of m) {
    blocks.push({ sum: v, n: 1 });
    while (
      blocks.length > 1 &&
      blocks[blocks.length - 2]!.sum / blocks[blocks.length - 2]!.n > blocks[blocks.length - 1]!.sum / blocks[blocks.length - 1]!.n
    ) {
      const b = blocks.pop()!;
      blocks[blocks.length - 1]!.sum += b.sum;
      blocks[blocks.length - 1]!.n += b.n;
    }
  }
  const mono = blocks.flatMap((b) => Array<number>(b.n).fill(b.sum / b.n));
  return { p, m: mono };
}

/** Piecewise-linear through (xs, ys), proportional toward (0, 0) below the first point. */
function through(xs: readonly number[], ys: readonly number[], x: number): number {
  if (x <= xs[0]!) return (ys[0]! * x) / xs[0]!;
  for (let i = 1; i < xs.length; i++) {
    if (x <= xs[i]!) {
      const d = xs[i]! - xs[i - 1]!;
      return d > 0 ? ys[i - 1]! + ((ys[i]! - ys[i - 1]!) * (x - xs[i - 1]!)) / d : ys[i]!;
    }
  }
  return ys[ys.length - 1]!;
}

/** A raw prediction (predictMs) mapped through the whole-model probes, ms; unchanged without probes. */
export function calibratedMs(tables: LatencyTables, rawMs: number): number {
  const c = probeCurve(tables);
  if (!c || !(tables.modelMs > 0)) return rawMs;
  return tables.modelMs * through(c.p, c.m, rawMs / tables.modelMs);
}

/** The raw prediction (predictMs) whose calibrated value is `ms`: what the allocation must reach. */
export function rawForCalibratedMs(tables: LatencyTables, ms: number): number {
  const c = probeCurve(tables);
  if (!c || !(tables.modelMs > 0)) return ms;
  return tables.modelMs * through(c.m, c.p, ms / tables.modelMs);
}
