// One structured pruning step: analyse dependency groups, score channels, choose how many each
// group keeps (uniform ratio, or the ratio that meets a MACs target), and cut. Pure graph
// surgery: calibration statistics, when used, are computed by the caller beforehand.
import { EdgefitError } from '../../errors.js';
import { cloneModel, type Model } from '../../ir/model.js';
import { annotateShapes } from '../../ir/shapes.js';
import { analyzeCost } from '../../analyze/cost.js';
import type { ChannelStats } from '../../calib/stats.js';
import { structuredPrunePass } from './apply.js';
import { runPass } from '../pass.js';
import { analyzeGroups, type GroupAnalysis } from './groups.js';
import { groupScores, type Importance } from './importance.js';
import { uniformKeep } from './select.js';

export interface StepOptions {
  /** Fraction of channels to remove from every prunable group. */
  ratio: number;
  importance: Importance;
  /** Round kept widths to a multiple of this (1, 4 or 8). */
  round?: number;
  stats?: ReadonlyMap<string, ChannelStats>;
}

export interface GroupRecord {
  group: string;
  size: number;
  kept: number;
  removed: number[];
  /** Scores of the removed channels (same order), for the replayable history. */
  scores: number[];
}

export interface StepResult {
  analysis: GroupAnalysis;
  keep: Map<number, number[]>;
  records: GroupRecord[];
  surgeryMs: number;
}

export function scoreGroups(
  model: Model,
  ga: GroupAnalysis,
  importance: Importance,
  stats?: ReadonlyMap<string, ChannelStats>,
): Map<number, Float64Array> {
  const scores = new Map<number, Float64Array>();
  for (const grp of ga.groups) if (grp.prunable) scores.set(grp.id, groupScores(model.graph, ga, grp, importance, stats));
  return scores;
}

/** Prune `model` in place by a uniform ratio. */
export function pruneStep(model: Model, o: StepOptions): StepResult {
  const t0 = performance.now();
  const ga = analyzeGroups(model);
  const scores = scoreGroups(model, ga, o.importance, o.stats);
  const keep = uniformKeep(ga.groups, scores, o.ratio, o.round ?? 1);
  const records = describe(ga, keep, scores);
  runPass(structuredPrunePass, model, { analysis: ga, keep });
  return { analysis: ga, keep, records, surgeryMs: performance.now() - t0 };
}

function describe(ga: GroupAnalysis, keep: ReadonlyMap<number, number[]>, scores: ReadonlyMap<number, Float64Array>): GroupRecord[] {
  const out: GroupRecord[] = [];
  for (const grp of ga.groups) {
    const k = keep.get(grp.id);
    if (!k) continue;
    const kept = new Set(k);
    const removed = Array.from({ length: grp.size }, (_, i) => i).filter((i) => !kept.has(i));
    const s = scores.get(grp.id)!;
    out.push({ group: grp.label, size: grp.size, kept: k.length, removed, scores: removed.map((i) => +s[i]!.toPrecision(4)) });
  }
  return out;
}

/** MACs of `model` for the given input shapes (null when some shape stays unknown). */
export function countMacs(model: Model, shapes: ReadonlyMap<string, number[]>): number | null {
  annotateShapes(model, { shapes: new Map(shapes) });
  return analyzeCost(model).macs;
}

/**
 * The smallest uniform ratio whose pruned model has at most `macsKeep` of `baseMacs`
 * (bisection on a clone; the same group order holds on clones, so scores carry over).
 */
export function ratioForMacs(
  model: Model,
  shapes: ReadonlyMap<string, number[]>,
  baseMacs: number,
  macsKeep: number,
  o: Omit<StepOptions, 'ratio'>,
): number {
  const ga = analyzeGroups(model);
  const scores = scoreGroups(model, ga, o.importance, o.stats);
  const macsAt = (r: number): number => {
    const c = cloneModel(model);
    const cga = analyzeGroups(c);
    const byIndex = new Map(ga.groups.map((g, i) => [g.id, cga.groups[i]!.id]));
    const keep = uniformKeep(ga.groups, scores, r, o.round ?? 1);
    const mapped = new Map([...keep].map(([id, k]) => [byIndex.get(id)!, k]));
    runPass(structuredPrunePass, c, { analysis: cga, keep: mapped });
    const m = countMacs(c, shapes);
    if (m === null)
      throw new EdgefitError('SHAPE', 'MACs unknown after pruning: every dynamic input needs a shape', { remedy: { option: 'shapes' } });
    return m / baseMacs;
  };
  let lo = 0,
    hi = 0.97;
  if (macsAt(hi) > macsKeep) return hi; // the target is out of reach: prune as far as allowed
  for (let i = 0; i < 9; i++) {
    const mid = (lo + hi) / 2;
    if (macsAt(mid) > macsKeep) lo = mid;
    else hi = mid;
  }
  return hi;
}
