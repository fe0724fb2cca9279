// A candidate's latency as the fit judges it: from interleaved rounds timed beside the original
// (each round the original's p50, then the candidate's), so a shared box's drift over a long
// search moves both sides of every ratio alike. Pure functions of the rounds; search.ts decides.
import { latencyOf } from '../budgets/index.js';
import { fasterVerdict, marginFromPairs } from '../evaluate/faster.js';
import type { FrontierEntry } from './types.js';

/** The latency figures rounds decide (what applyRounds writes). */
export type RoundFigures = Pick<
  FrontierEntry,
  'latencyP50Ms' | 'latencyP95Ms' | 'referenceP50Ms' | 'rounds' | 'latencyRatio' | 'latencyRatioMin' | 'latencyRatioMax'
>;
/** What a ratio to the original can be read from. */
export type RatioFigures = Pick<FrontierEntry, 'latencyP50Ms' | 'latencyP95Ms' | 'referenceP50Ms' | 'latencyRatio' | 'rounds'>;

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Derive an entry's latency figures from its rounds: medians of each side, and the ratio of
 * candidate to original per round (median, min, max). No rounds: left as measured. */
export function applyRounds<T extends RoundFigures>(e: T): T {
  const r = e.rounds;
  if (!r?.length) return e;
  const ratios = r.map((x) => x.candidateP50Ms / x.referenceP50Ms);
  e.latencyP50Ms = median(r.map((x) => x.candidateP50Ms));
  const p95 = r.map((x) => x.candidateP95Ms).filter((x): x is number => x !== undefined);
  if (p95.length) e.latencyP95Ms = median(p95);
  e.referenceP50Ms = median(r.map((x) => x.referenceP50Ms));
  e.latencyRatio = median(ratios);
  e.latencyRatioMin = Math.min(...ratios);
  e.latencyRatioMax = Math.max(...ratios);
  return e;
}

/**
 * One graph timed twice (a trained candidate and the model it was trained from: other weights,
 * the same ops and shapes) has one speed: the figures of both entries' rounds pooled, written to
 * both, each keeping its own rounds. Returns the pooled figures, or undefined when either entry
 * has no rounds (nothing to pool; each keeps its own figures).
 */
export function poolRounds(a: RoundFigures, b: RoundFigures): RoundFigures | undefined {
  if (!a.rounds?.length || !b.rounds?.length) return undefined;
  const both = applyRounds({ ...b, rounds: [...a.rounds, ...b.rounds] });
  for (const x of [a, b]) {
    const { latencyP50Ms, latencyP95Ms, referenceP50Ms, latencyRatio, latencyRatioMin, latencyRatioMax } = both;
    Object.assign(x, { latencyP50Ms, latencyP95Ms, referenceP50Ms, latencyRatio, latencyRatioMin, latencyRatioMax });
  }
  return both;
}

/** An entry's latency as a ratio to the original timed beside it (the reference itself: 1), or undefined when unknown. */
function ratioToOriginal(e: RatioFigures): number | undefined {
  if (e.latencyRatio !== undefined) return e.latencyRatio;
  return e.referenceP50Ms ? latencyOf(e) / e.referenceP50Ms : undefined;
}

/**
 * The fit's rule for a pruned candidate (issue 17): it counts only when it is faster than the
 * same candidate unpruned (same quantization and threads, no sparsity) by more than the noise of
 * their timing; otherwise pruning cost fidelity and bought no speed, and the unpruned model is the
 * better one. Both were timed beside the original in interleaved rounds, so their ratios to it
 * compare; the margin is evaluate/faster.ts's (from the per-round ratios' spread), the larger of
 * the two entries' own. Returns null when either has no ratio to the original (cannot judge).
 */
export function prunedPays(pruned: RatioFigures, unpruned: RatioFigures): { pays: boolean; ratio: number; margin: number } | null {
  const rp = ratioToOriginal(pruned);
  const ru = ratioToOriginal(unpruned);
  if (rp === undefined || ru === undefined || !(ru > 0)) return null;
  const per = (e: RatioFigures) => (e.rounds ?? []).map((x) => x.candidateP50Ms / x.referenceP50Ms / ru);
  const mine = fasterVerdict({ inputMs: ru, outputMs: rp, pairRatios: per(pruned) });
  const theirs = unpruned.rounds?.length ? marginFromPairs(per(unpruned)) : 0;
  const margin = Math.max(mine.margin, theirs);
  return { pays: mine.ratio < 1 - margin, ratio: mine.ratio, margin };
}

/** " (0.48x, 0.45-0.52 over 3 rounds)" when the entry was timed in rounds beside the original. */
export function spread(e: Pick<FrontierEntry, 'latencyRatio' | 'latencyRatioMin' | 'latencyRatioMax' | 'rounds'>): string {
  if (e.latencyRatio === undefined) return '';
  return ` (${e.latencyRatio.toFixed(2)}x, ${e.latencyRatioMin!.toFixed(2)}-${e.latencyRatioMax!.toFixed(2)} over ${e.rounds?.length ?? 0} rounds)`;
}
