// Which channels each group keeps: per-group counts from a global ratio (uniform, with optional
// SIMD-friendly rounding) and the top-scoring channels under the chosen importance.
import { EdgefitError } from '../../errors.js';
import type { Group } from './groups.js';

/**
 * Channels to keep out of `size` when removing fraction `ratio`; never zero, rounded to `round`
 * when asked. With `chunks` > 1 (a grouped Conv's output) every chunk keeps the same count and
 * the rounding applies to the total width.
 */
export function keepCount(size: number, ratio: number, round = 1, chunks = 1): number {
  if (chunks > 1) {
    const per = size / chunks;
    const step = round / gcd(round, chunks); // per-chunk step making the total a multiple of round
    let k = Math.min(per, Math.max(1, Math.round(per * (1 - ratio))));
    if (step > 1) {
      if (per <= step) return size;
      k = Math.min(per, Math.max(step, Math.round(k / step) * step));
    }
    return k * chunks;
  }
  let k = Math.round(size * (1 - ratio));
  if (round > 1) {
    if (size <= round) return size; // too narrow to round: leave it whole
    k = Math.max(round, Math.round(k / round) * round);
  }
  return Math.min(size, Math.max(1, k));
}

/**
 * The rounding step in a group's own indices: a group whose index stands for `unit` channels (a
 * grouped Conv's whole groups of 16) meets a block of `round` channels every round/gcd(round, unit)
 * indices (every group, for groups of 16 and a block of 16).
 */
export function unitRound(round: number, unit: number): number {
  return round / gcd(round, unit);
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Indices of the `k` highest scores, ascending (ties broken by index so results are
 * reproducible); with `chunks` > 1, the k/chunks highest of every contiguous chunk.
 */
export function topK(scores: Float64Array, k: number, chunks = 1): number[] {
  if (chunks > 1) {
    const per = scores.length / chunks;
    if (!Number.isInteger(per) || k % chunks !== 0)
      throw new EdgefitError('INTERNAL', `prune: keeping ${k} of ${scores.length} channels is not an equal count per group of ${chunks}`);
    const out: number[] = [];
    for (let c = 0; c < chunks; c++) for (const i of topK(scores.subarray(c * per, (c + 1) * per), k / chunks)) out.push(c * per + i);
    return out;
  }
  const idx = Array.from(scores.keys());
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

/** Kept indices per prunable group (by group index in the analysis) for a uniform ratio. */
export function uniformKeep(
  groups: readonly Group[],
  scores: ReadonlyMap<number, Float64Array>,
  ratio: number,
  round = 1,
): Map<number, number[]> {
  const keep = new Map<number, number[]>();
  for (const grp of groups) {
    if (!grp.prunable) continue;
    const s = scores.get(grp.id);
    if (!s) continue;
    const k = keepCount(grp.size, ratio, unitRound(round, grp.unit), grp.chunks);
    if (k < grp.size) keep.set(grp.id, topK(s, k, grp.chunks));
  }
  return keep;
}
