// Per-group sensitivity: prune one group alone at a few ratios and measure the fidelity drop on
// calibration data. Non-uniform allocation then removes more from groups that tolerate it:
// each group gets the largest probed ratio whose drop stays under a threshold, and the
// threshold is bisected until the global channel or MACs target is met.
import type { Model } from '../../ir/model.js';
import type { Sample } from '../../data/inputs.js';
import { runFirstOutput, type Outputs } from '../../runtime/runner.js';
import { compareOne } from '../../fidelity/index.js';
import { structuredPrunePass } from './apply.js';
import { runPass } from '../pass.js';
import { analyzeGroups, type GroupAnalysis } from './groups.js';
import { cloneModel } from '../../ir/model.js';
import { keepCount, topK, unitRound } from './select.js';

export interface GroupSensitivity {
  /** Group index in analyzeGroups order (stable on clones). */
  index: number;
  label: string;
  size: number;
  /** Fidelity drop (1 - pooled cosine) at each probed ratio. */
  drops: { ratio: number; drop: number }[];
}

export async function groupSensitivity(
  model: Model,
  ga: GroupAnalysis,
  scores: ReadonlyMap<number, Float64Array>,
  samples: readonly Sample[],
  ratios: readonly number[] = [0.3, 0.5, 0.7],
  threads = 1,
  ref?: Outputs[],
): Promise<GroupSensitivity[]> {
  const base = ref ?? (await runFirstOutput(model, samples, threads));
  const out: GroupSensitivity[] = [];
  for (let gi = 0; gi < ga.groups.length; gi++) {
    const grp = ga.groups[gi]!;
    if (!grp.prunable) continue;
    const drops: { ratio: number; drop: number }[] = [];
    for (const r of ratios) {
      const c = cloneModel(model);
      const cga = analyzeGroups(c);
      const k = keepCount(grp.size, r, 1, grp.chunks);
      if (k >= grp.size) continue;
      runPass(structuredPrunePass, c, { analysis: cga, keep: new Map([[cga.groups[gi]!.id, topK(scores.get(grp.id)!, k, grp.chunks)]]) });
      const got = await runFirstOutput(c, samples, threads);
      // pooled over the samples: a per-sample mean is dominated by samples whose output is ~0
      // (det on an image without text), where any change flips the cosine
      const pooled = compareOne(
        base.map((o) => ({ y: o })),
        got.map((o) => ({ y: o })),
        { metric: 'cosine', over: 'pooled' },
      );
      drops.push({ ratio: r, drop: 1 - pooled });
    }
    out.push({ index: gi, label: grp.label, size: grp.size, drops });
  }
  return out;
}

/** Per-group ratios (by group id of `ga`) for a drop threshold: the largest probed ratio under it. */
export function ratiosForThreshold(ga: GroupAnalysis, sens: readonly GroupSensitivity[], threshold: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const s of sens) {
    let best = 0;
    for (const d of s.drops) if (d.drop <= threshold && d.ratio > best) best = d.ratio;
    m.set(ga.groups[s.index]!.id, best);
  }
  return m;
}

/**
 * Non-uniform kept channels meeting `meets` (a global channel-fraction or MACs test on the
 * candidate): bisect the drop threshold so the least sensitive groups lose the most.
 * Returns null when even the loosest threshold misses the target (the caller falls back to uniform).
 */
export function allocateBySensitivity(
  ga: GroupAnalysis,
  sens: readonly GroupSensitivity[],
  scores: ReadonlyMap<number, Float64Array>,
  round: number,
  meets: (keep: Map<number, number[]>) => boolean,
): { keep: Map<number, number[]>; threshold: number } | null {
  const keepFor = (tau: number): Map<number, number[]> => {
    const keep = new Map<number, number[]>();
    for (const [id, r] of ratiosForThreshold(ga, sens, tau)) {
      const grp = ga.groups.find((g) => g.id === id)!;
      const k = keepCount(grp.size, r, unitRound(round, grp.unit), grp.chunks);
      if (k < grp.size) keep.set(id, topK(scores.get(id)!, k, grp.chunks));
    }
    return keep;
  };
  const drops = [...new Set(sens.flatMap((s) => s.drops.map((d) => d.drop)))].sort((a, b) => a - b);
  if (!drops.length || !meets(keepFor(drops[drops.length - 1]!))) return null;
  // the smallest threshold (among the measured drops) that meets the target
  let lo = 0,
    hi = drops.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (meets(keepFor(drops[mid]!))) hi = mid;
    else lo = mid + 1;
  }
  // the probed ratios are coarse, so the threshold usually overshoots the target: hand channels
  // back, most sensitive group first, one probed ratio at a time, while the target still holds
  const tau = drops[lo]!;
  const ratios = ratiosForThreshold(ga, sens, tau);
  const bySens = new Map(sens.map((s) => [ga.groups[s.index]!.id, s]));
  const dropAt = (id: number, r: number) => bySens.get(id)?.drops.find((d) => d.ratio === r)?.drop ?? 0;
  const order = [...ratios].filter(([, r]) => r > 0).sort((a, b) => dropAt(b[0], b[1]) - dropAt(a[0], a[1]));
  const keepOf = (rs: ReadonlyMap<number, number>): Map<number, number[]> => {
    const keep = new Map<number, number[]>();
    for (const [id, r] of rs) {
      const grp = ga.groups.find((g) => g.id === id)!;
      const k = keepCount(grp.size, r, unitRound(round, grp.unit), grp.chunks);
      if (k < grp.size) keep.set(id, topK(scores.get(id)!, k, grp.chunks));
    }
    return keep;
  };
  for (const [id, r] of order) {
    const lower = [
      0,
      ...bySens
        .get(id)!
        .drops.map((d) => d.ratio)
        .filter((x) => x < r),
    ].sort((a, b) => b - a)[0]!;
    const trial = new Map(ratios).set(id, lower);
    if (meets(keepOf(trial))) ratios.set(id, lower);
  }
  return { keep: keepOf(ratios), threshold: tau };
}
