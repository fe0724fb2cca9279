// Which channels each group keeps: per-group counts from a global ratio (uniform, with optional
// SIMD-friendly rounding) and the top-scoring channels under the chosen importance.
import type { Group } from './groups.js';

/** Channels to keep out of `size` when removing fraction `ratio`; never zero, rounded to `round` when asked. */
export function keepCount(size: number, ratio: number, round = 1): number {
  let k = Math.round(size * (1 - ratio));
  if (round > 1) {
    if (size <= round) return size; // too narrow to round: leave it whole
    k = Math.max(round, Math.round(k / round) * round);
  }
  return Math.min(size, Math.max(1, k));
}

/** Indices of the `k` highest scores, ascending (ties broken by index so results are reproducible). */
export function topK(scores: Float64Array, k: number): number[] {
  const idx = Array.from(scores.keys());
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

/** Kept indices per prunable group (by group index in the analysis) for a uniform ratio. */
export function uniformKeep(groups: readonly Group[], scores: ReadonlyMap<number, Float64Array>, ratio: number, round = 1): Map<number, number[]> {
  const keep = new Map<number, number[]>();
  for (const grp of groups) {
    if (!grp.prunable) continue;
    const s = scores.get(grp.id);
    if (!s) continue;
    const k = keepCount(grp.size, ratio, round);
    if (k < grp.size) keep.set(grp.id, topK(s, k));
  }
  return keep;
}
