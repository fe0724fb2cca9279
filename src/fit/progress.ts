// A fit's progress as one figure that moves forward. The search reports the share of its planned
// measurements done and the seconds it expects they take; a training run inside one of them is
// most of a training fit's minutes (12 of about 14 on det), so without its clock the fit sat at
// one percentage for all of them ("training 78%" from the first step to the last).
import type { FitProgress } from './types.js';

/**
 * The fit's progress `seconds` into a training run of `budgetSeconds`, from where the search
 * stood when it began (`at`): the training's share of the time then left moves the fraction, and
 * the time left is the training's plus the search's own estimate.
 */
export function trainingProgress(
  at: FitProgress,
  seconds: number,
  budgetSeconds: number,
): Required<Pick<FitProgress, 'fraction' | 'etaS'>> {
  const rest = Math.max(0, at.etaS ?? 0);
  const budget = Math.max(0, budgetSeconds);
  const share = Math.min(budget, Math.max(0, seconds)) / Math.max(1, budget + rest);
  return { fraction: at.fraction + (1 - at.fraction) * share, etaS: Math.max(0, budget - seconds) + rest };
}

/** `onProgress` with a fraction that never goes back (a search that plans more candidates, or one resuming after a training run). */
export function forwardOnly(onProgress: (p: FitProgress) => void): (p: FitProgress) => void {
  let shown = 0;
  return (p) => {
    shown = Math.max(shown, Math.min(1, p.fraction));
    onProgress(p.fraction === shown ? p : { ...p, fraction: shown });
  };
}
