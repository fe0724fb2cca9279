// Allocation under a latency target (issue 17; NetAdapt / HALP): choose every group's kept width,
// in block multiples, so the latency the tables predict meets the target while keeping the most
// importance per millisecond saved. A greedy knapsack: repeatedly take one block (one step) from
// the group whose next cut saves the most predicted ms per unit of importance lost, until the
// prediction meets the target or no cut saves anything. After a cut only the groups sharing a
// layer with the cut group have new marginal figures (a layer's time couples its input and output
// widths), so only those are recomputed.
import type { LatencyTables } from '../../analyze/latency/types.js';
import { layerMs, predictMs } from '../../analyze/latency/predict.js';
import type { Model } from '../../ir/model.js';
import type { GroupAnalysis } from './groups.js';
import type { GroupSensitivity } from './sensitivity.js';
import { topK, unitRound } from './select.js';
import { layersByGroup, weightLayers, widthsFor, countsAsKeep, type LayerWidths } from './widths.js';

export interface LatencyAllocOptions {
  tables: LatencyTables;
  /** Predicted whole-model latency to reach, ms. */
  targetMs: number;
  /** Kept widths are multiples of this (the kernels' channel block). */
  block: number;
  /** Channel scores per prunable group id (higher = more important). */
  scores: ReadonlyMap<number, Float64Array>;
  /** Measured per-group fidelity drops: when given, the loss of a cut is the drop it adds, not importance. */
  sensitivity?: readonly GroupSensitivity[];
  /** No group keeps less than this fraction of its channels (default 0.1). */
  minKeep?: number;
}

export interface LatencyAllocation {
  /** Kept indices per cut group id (groups left whole are absent). */
  keep: Map<number, number[]>;
  /** Kept channel count per prunable group id. */
  counts: Map<number, number>;
  /** Predicted latency with these widths, ms. */
  predictedMs: number;
  /** Predicted latency of the model as given (before this allocation), ms. */
  startMs: number;
  /** Whether the prediction meets the target (false: every cut that saves time was taken). */
  met: boolean;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The widths a group may keep, descending from its full size: block multiples above its floor. */
export function widthLadder(size: number, block: number, chunks: number, minKeep: number): number[] {
  // grouped Conv chunks keep equal counts per chunk: the total moves in steps that are block
  // multiples and divisible by the chunk count (select.ts keepCount's rule)
  const step = chunks > 1 ? chunks * (block / gcd(block, chunks)) : block;
  if (size <= step) return [size]; // narrow: stays whole
  const floor = Math.max(step, Math.ceil((minKeep * size) / step) * step);
  const out = [size];
  for (let k = Math.floor((size - 1) / step) * step; k >= floor; k -= step) out.push(k);
  return out;
}

/**
 * Importance lost by keeping `k` of a group's channels, normalised as the fraction of the group's
 * total score: channel scores (weight norms, activation magnitudes) differ by orders of magnitude
 * between layers (fan-in, normalisation), so raw sums would make every cut look free in a layer of
 * small numbers; a fraction of its own total says how much of that layer's signal goes, on one
 * scale for all groups. The channels lost are the lowest-scored (what topK leaves out).
 */
function importanceLoss(sortedDesc: Float64Array, total: number): (k: number) => number {
  const suffix = new Float64Array(sortedDesc.length + 1);
  for (let i = sortedDesc.length - 1; i >= 0; i--) suffix[i] = suffix[i + 1]! + sortedDesc[i]!;
  return (k) => (total > 0 ? suffix[k]! / total : (sortedDesc.length - k) / sortedDesc.length);
}

/** Fidelity drop at keep fraction `k/size` from the probe: linear between probed ratios, 0 at none removed. */
function sensitivityLoss(s: GroupSensitivity): (k: number) => number {
  const pts = [{ ratio: 0, drop: 0 }, ...s.drops].sort((a, b) => a.ratio - b.ratio);
  return (k) => {
    const r = 1 - k / s.size;
    for (let i = 1; i < pts.length; i++) {
      const a = pts[i - 1]!,
        b = pts[i]!;
      if (r <= b.ratio) return Math.max(0, a.drop + ((b.drop - a.drop) * (r - a.ratio)) / (b.ratio - a.ratio || 1));
    }
    // beyond the last probed ratio: extend the last segment's slope (a cut there is never cheaper)
    const a = pts[pts.length - 2] ?? pts[0]!,
      b = pts[pts.length - 1]!;
    const slope = b.ratio > a.ratio ? Math.max(0, (b.drop - a.drop) / (b.ratio - a.ratio)) : 0;
    return Math.max(0, b.drop + slope * (r - b.ratio));
  };
}

/** A tie-breaker small enough never to outweigh a real difference in loss. */
const EPS = 1e-9;

export function allocateByLatency(model: Model, ga: GroupAnalysis, o: LatencyAllocOptions): LatencyAllocation {
  const minKeep = o.minKeep ?? 0.1;
  const layers = weightLayers(model, ga);
  const touches = layersByGroup(ga, layers);
  const tableOf = new Map(o.tables.layers.map((t) => [t.node, t]));
  const sensOf = new Map((o.sensitivity ?? []).map((s) => [ga.groups[s.index]?.id, s]));

  interface State {
    id: number;
    ladder: number[];
    /** Position on the ladder (0 = whole). */
    at: number;
    loss: (k: number) => number;
    /** The best next cut (`steps` down the ladder): predicted ms saved and loss added; null when no cut saves time. */
    next: { saved: number; lost: number; steps: number } | null;
  }
  const states = new Map<number, State>();
  const counts = new Map<number, number>();
  for (const grp of ga.groups) {
    const s = o.scores.get(grp.id);
    if (!grp.prunable || !s) continue;
    counts.set(grp.id, grp.size);
    const names = touches.get(grp.id);
    if (!names || ![...names].some((n) => tableOf.has(n))) continue; // saves nothing the tables know of
    const sorted = Float64Array.from(s).sort().reverse();
    const imp = importanceLoss(
      sorted,
      sorted.reduce((a, b) => a + b, 0),
    );
    const sens = sensOf.get(grp.id);
    const sl = sens ? sensitivityLoss(sens) : null;
    // with sensitivity, importance stays a tiny tie-breaker between cuts the probe cannot tell apart
    const loss = sl ? (k: number) => sl(k) + 1e-6 * imp(k) : imp;
    states.set(grp.id, {
      id: grp.id,
      ladder: widthLadder(grp.size, unitRound(o.block, grp.unit), grp.chunks, minKeep),
      at: 0,
      loss,
      next: null,
    });
  }

  const timeOf = (names: Iterable<string>, widths: ReadonlyMap<string, LayerWidths>): number => {
    let ms = 0;
    for (const n of names) {
      const t = tableOf.get(n);
      const w = widths.get(n);
      if (t && w) ms += layerMs(t, w.cin, w.cout, w.groups);
    }
    return ms;
  };
  // Measured times are not monotone in width (kernel staircases, timing noise): one step down
  // the ladder may cost time where two save a lot. So a group's next cut is the best ratio over
  // every deeper width, not just the next one; a group none of whose deeper widths saves time
  // (a cut that saves nothing, or costs time off the kernels' fast path) is never cut.
  /** Predicted ms saved by taking `st` from its current width to ladder position `j`. */
  const savedAt = (st: State, j: number, now?: number): number => {
    const names = touches.get(st.id)!;
    const before = now ?? timeOf(names, widthsFor(ga, layers, countsAsKeep(counts), names));
    const trial = new Map(counts).set(st.id, st.ladder[j]!);
    return before - timeOf(names, widthsFor(ga, layers, countsAsKeep(trial), names));
  };
  const marginal = (st: State): State['next'] => {
    const names = touches.get(st.id)!;
    const k = st.ladder[st.at]!;
    const now = timeOf(names, widthsFor(ga, layers, countsAsKeep(counts), names));
    let best: State['next'] = null;
    for (let j = st.at + 1; j < st.ladder.length; j++) {
      const k2 = st.ladder[j]!;
      const saved = savedAt(st, j, now);
      if (!(saved > EPS)) continue;
      const lost = Math.max(0, st.loss(k2) - st.loss(k));
      // (a deeper cut must be better beyond rounding: equal ratios take the smaller cut, a little at a time)
      if (!best || saved / (lost + EPS) > (best.saved / (best.lost + EPS)) * (1 + 1e-6)) best = { saved, lost, steps: j - st.at };
    }
    return best;
  };
  for (const st of states.values()) st.next = marginal(st);
  const groupsOfLayer = new Map<string, number[]>();
  for (const [id, names] of touches) for (const n of names) groupsOfLayer.set(n, [...(groupsOfLayer.get(n) ?? []), id]);
  const neighbours = (id: number): Set<number> => new Set([...touches.get(id)!].flatMap((n) => groupsOfLayer.get(n)!));

  const predicted = (): number => predictMs(o.tables, widthsFor(ga, layers, countsAsKeep(counts)));
  const startMs = predicted();
  let ms = startMs;
  while (ms > o.targetMs) {
    let best: State | null = null;
    let bestScore = -Infinity;
    for (const st of states.values()) {
      if (!st.next) continue;
      // saved ms per loss; ties (equal ratios) go to the larger saving, then the earlier group
      const score = st.next.saved / (st.next.lost + EPS);
      if (score > bestScore || (score === bestScore && best && st.next.saved > best.next!.saved)) {
        best = st;
        bestScore = score;
      }
    }
    if (!best) break;
    let { steps, saved } = best.next!;
    // a deep cut that overshoots the target: the fewest of its steps that still reach it
    for (let j = 1; j < steps && ms - saved < o.targetMs; j++) {
      const s = savedAt(best, best.at + j);
      if (ms - s <= o.targetMs) {
        steps = j;
        saved = s;
      }
    }
    if (ms - saved < o.targetMs) {
      // the last cut overshoots the target (one block of a costly layer can save far more than
      // what is left to save): of every group's cuts that reach the target, the one losing least
      let lost = best.loss(best.ladder[best.at + steps]!) - best.loss(best.ladder[best.at]!);
      for (const st of states.values()) {
        for (let j = st.at + 1; j < st.ladder.length; j++) {
          const sv = savedAt(st, j);
          if (ms - sv > o.targetMs) continue;
          const l = st.loss(st.ladder[j]!) - st.loss(st.ladder[st.at]!);
          if (l < lost) [best, steps, saved, lost] = [st, j - st.at, sv, l];
          break; // deeper cuts of this group lose more
        }
      }
    }
    best.at += steps;
    counts.set(best.id, best.ladder[best.at]!);
    ms -= saved;
    // only groups sharing a layer with the cut one see different marginal figures
    for (const id of neighbours(best.id)) {
      const st = states.get(id);
      if (st) st.next = marginal(st);
    }
  }
  ms = predicted(); // the exact figure (the running one sums per-group savings)

  const keep = new Map<number, number[]>();
  for (const grp of ga.groups) {
    const k = counts.get(grp.id);
    if (k !== undefined && k < grp.size) keep.set(grp.id, topK(o.scores.get(grp.id)!, k, grp.chunks));
  }
  return { keep, counts, predictedMs: ms, startMs, met: ms <= o.targetMs };
}
