// The size budget's search: unstructured sparsity buys no speed here, only a smaller compressed
// file, so it is searched only when a size budget is what stands between the best candidate and
// feasibility; a bisection on the sparsity of that candidate finds the least sparse one under the
// budget. search.ts calls it after the latency search, with its measure() (cache, cap, verdicts).
import { compressedMb } from './frontier.js';
import type { CandidateConfig, FrontierEntry } from './types.js';

/**
 * Measures sparser copies of the base candidate until the least sparse one under the size budget
 * is bracketed. Returns a note when the budget cannot be met this way (or nothing to start from).
 */
export async function sparsityForSize(
  pool: readonly FrontierEntry[],
  measure: (c: CandidateConfig) => Promise<FrontierEntry | null>,
  o: { maxUnstructured: number; steps: number },
): Promise<string | undefined> {
  // the base is the best candidate that meets everything but size; among those within 0.01
  // fidelity of the best, the smallest (int8 is ~4x smaller for almost nothing): it needs the
  // least sparsity, so takes the least extra damage
  const apartFromSize = pool.filter((e) => e.meets.latency && e.meets.ram && e.meets.fidelity);
  if (!apartFromSize.length)
    return 'no candidate meets the latency, RAM and fidelity budgets, so unstructured sparsity for the size budget was not tried';
  const top = Math.max(...apartFromSize.map((e) => e.fidelity));
  const base = apartFromSize
    .filter((e) => e.fidelity >= top - 0.01)
    .reduce((a, b) => (compressedMb(b) < compressedMb(a) || (compressedMb(b) === compressedMb(a) && b.fidelity > a.fidelity) ? b : a));
  if (base.meets.size !== false) return undefined;
  const maxU = o.maxUnstructured;
  const at = (u: number) => measure({ ...base.config, unstructured: u });
  const most = await at(maxU);
  if (!most) return undefined;
  if (!most.meets.size)
    return `even ${Math.round(maxU * 100)}% unstructured sparsity leaves ${compressedMb(most).toFixed(2)} MB compressed: the size budget needs more structured pruning`;
  let lo = 0;
  let hi = maxU;
  for (let i = 0; i < o.steps; i++) {
    const mid = Math.round(((lo + hi) / 2) * 100) / 100;
    if (mid <= lo || mid >= hi) break;
    const e = await at(mid);
    if (!e) break;
    if (e.meets.size) hi = mid;
    else lo = mid;
  }
  return undefined;
}
