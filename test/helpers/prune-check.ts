// Shared checks for structured-pruning tests: run a model, compare outputs, and prune a clone
// beside a masked clone (exactness.ts) so any index slip in the surgery shows as a difference.
import type { Test } from 'tap';
import type { Sample } from '../../src/data/inputs.js';
import { ModelRunner } from '../../src/runtime/runner.js';
import { cloneModel, type Model } from '../../src/ir/model.js';
import { serializeModel } from '../../src/onnx/index.js';
import { applyPruning } from '../../src/passes/prune/apply.js';
import { maskRemoved, probeChannels } from '../../src/passes/prune/exactness.js';
import { analyzeGroups, type Group } from '../../src/passes/prune/groups.js';
import { range } from '../../src/passes/prune/space.js';
import { pruneStep } from '../../src/passes/prune/structured.js';

export async function outputs(
  m: Model,
  s: Sample,
  optimization: 'basic' | 'disabled' = 'basic',
): Promise<{ dims: number[]; data: Float32Array }> {
  const r = await ModelRunner.fromBytes(serializeModel(m), { optimization });
  try {
    const o = (await r.run(s)).get(m.graph.outputs[0]!.name)!;
    return { dims: [...o.shape], data: Float32Array.from(o.data) };
  } finally {
    await r.release();
  }
}

/** Real samples for the single input 'x' through the shared loader, shaped (and images resized) to `shape`. */
export { loadCalib } from '../../devkit/calib.js';

export function relMaxErr(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let d = 0,
    s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(a[i]!));
  }
  return Number.isFinite(d) ? d / (s || 1) : Infinity;
}

/** Probe removal respecting a group's chunks: the same local channels (first, middle, last) of every chunk. */
export function probe(grp: Group): number[] {
  const per = grp.size / grp.chunks;
  const local = probeChannels(per);
  return range(grp.chunks).flatMap((c) => local.map((i) => c * per + i));
}

/** Removal that differs between chunks (local c and c + per/2 in chunk c). */
export function staggered(grp: Group): number[] {
  const per = grp.size / grp.chunks;
  return range(grp.chunks).flatMap((c) => [...new Set([c % per, (c + Math.floor(per / 2)) % per])].map((i) => c * per + i));
}

/** Prune a clone with `keep` (by group index) and a masked clone; relative max error of the outputs, and the masked model's own float noise. */
export async function pruneVsMask(
  base: Model,
  keepByIndex: ReadonlyMap<number, number[]>,
  s: Sample,
): Promise<{ err: number; noise: number; pruned: Model }> {
  const pruned = cloneModel(base);
  const gp = analyzeGroups(pruned);
  applyPruning(pruned, gp, new Map([...keepByIndex].map(([gi, k]) => [gp.groups[gi]!.id, k])));
  const masked = cloneModel(base);
  const gm = analyzeGroups(masked);
  maskRemoved(masked, gm, new Map([...keepByIndex].map(([gi, k]) => [gm.groups[gi]!.id, k])));
  const ref = await outputs(masked, s);
  const err = relMaxErr(ref.data, (await outputs(pruned, s)).data);
  const noise = relMaxErr(ref.data, (await outputs(masked, s, 'disabled')).data);
  return { err, noise, pruned };
}

/**
 * Pruned == masked, for every prunable group alone (first/middle/last channels, and for chunked
 * groups also a removal that differs between chunks) and for pruneStep's real selection at
 * 30/50/70 % (every group at once, checked to be the very surgery pruneStep does). `note(grp)`
 * adds to each single-group message. Returns "label error" of each single-group check.
 */
export async function checkPruneEqualsMask(
  t: Test,
  base: Model,
  sample: Sample,
  note: (grp: Group) => string = () => '',
): Promise<string[]> {
  const ga = analyzeGroups(base);
  const singles: string[] = [];
  for (let gi = 0; gi < ga.groups.length; gi++) {
    const grp = ga.groups[gi]!;
    if (!grp.prunable) continue;
    for (const removed of grp.chunks > 1 ? [new Set(probe(grp)), new Set(staggered(grp))] : [new Set(probe(grp))]) {
      const { err } = await pruneVsMask(base, new Map([[gi, range(grp.size).filter((i) => !removed.has(i))]]), sample);
      t.ok(err < 2e-4, `${grp.label} (${grp.size} ch${note(grp)}, removed ${[...removed]}): rel max err ${err.toExponential(2)}`);
      singles.push(`${grp.label} ${err.toExponential(2)}`);
    }
  }
  for (const ratio of [0.3, 0.5, 0.7]) {
    const m = cloneModel(base);
    const step = pruneStep(m, { ratio, importance: 'l2' });
    const byIndex = new Map([...step.keep].map(([id, k]) => [step.analysis.groups.findIndex((g) => g.id === id), k]));
    const { err, noise, pruned } = await pruneVsMask(base, byIndex, sample);
    t.same(serializeModel(pruned), serializeModel(m), `${ratio}: pruneStep is the surgery checked here`);
    t.ok(
      err <= Math.max(2e-4, 4 * noise),
      `${ratio} everywhere (${step.keep.size} groups): pruned == masked (rel max err ${err.toExponential(2)}, float noise ${noise.toExponential(2)})`,
    );
  }
  return singles;
}
