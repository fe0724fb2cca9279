// Graph surgery: given the channels each group keeps, slice every weight, bias and per-channel
// parameter the groups' actions name, reset group counts where whole groups go (depthwise,
// channel multiplier, one output per group, a grouped Conv between weight layers; otherwise a
// grouped Conv keeps its G: its output and its input each lose the same count per group), rewrite channel-shuffle and attention-head Reshape
// constants, and drop stale shape annotations. Shared initializers are copied before slicing so
// an unrelated reader never sees a changed tensor.
import { EdgefitError } from '../../errors.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { runPass, type Pass } from '../pass.js';
import { Tensor } from '../../ir/tensor.js';
import { deadCodeElimination } from '../cleanup/dce.js';
import type { GroupAnalysis } from './groups.js';
import { keptIndices } from './space.js';

/** Copy of `t` keeping indices `idx` along `axis`. */
export function sliceAxis(t: Tensor, axis: number, idx: readonly number[], name = t.name): Tensor {
  const src = t.toFloat32();
  const dims = [...t.dims];
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = dims[axis]!;
  const out = new Float32Array(outer * idx.length * inner);
  let o = 0;
  for (let a = 0; a < outer; a++) {
    const base = a * n * inner;
    for (const i of idx) {
      out.set(src.subarray(base + i * inner, base + (i + 1) * inner), o);
      o += inner;
    }
  }
  dims[axis] = idx.length;
  return Tensor.fromFloat32(name, dims, out);
}

/**
 * Kept positions within each of `groups` equal runs of `full` channels, given the kept global
 * indices; throws when the runs keep different counts (a grouped Conv would change its layout).
 */
export function keptPerRun(kept: readonly number[], full: number, groups: number, what: string): number[][] {
  const per = full / groups;
  const runs: number[][] = Array.from({ length: groups }, () => []);
  for (const i of kept) runs[Math.floor(i / per)]!.push(i % per);
  if (!Number.isInteger(per) || runs.some((r) => r.length !== runs[0]!.length))
    throw new EdgefitError(
      'INTERNAL',
      `prune: ${what} reads ${groups} groups but would keep ${runs.map((r) => r.length).join('/')} channels per group`,
    );
  return runs;
}

/**
 * Copy of a grouped Conv weight [Cout, Cin/G, ...] where the rows of group g (Cout/G consecutive
 * rows) keep the columns `cols[g]` (all groups the same count): a gather per row block.
 */
export function gatherGroupedColumns(t: Tensor, cols: readonly (readonly number[])[], name = t.name): Tensor {
  const src = t.toFloat32();
  const dims = [...t.dims];
  const G = cols.length;
  const rows = dims[0]!,
    per = dims[1]!;
  const inner = dims.slice(2).reduce((a, b) => a * b, 1);
  const m = cols[0]!.length;
  if (rows % G !== 0) throw new EdgefitError('INTERNAL', `prune: weight '${t.name}' has ${rows} rows for ${G} groups`);
  const rowsPer = rows / G;
  const out = new Float32Array(rows * m * inner);
  let o = 0;
  for (let r = 0; r < rows; r++) {
    for (const j of cols[Math.floor(r / rowsPer)]!) {
      out.set(src.subarray((r * per + j) * inner, (r * per + j + 1) * inner), o);
      o += inner;
    }
  }
  dims[1] = m;
  return Tensor.fromFloat32(name, dims, out);
}

export interface ApplyStats {
  tensorsSliced: number;
  valuesRetyped: number;
  /** Weight layers that lost input channels, by output value name (recovery targets). */
  inChanged: Set<string>;
  /** Kept output channels of weight layers that lost some, by output value name. */
  keptOut: Map<string, number[]>;
}

/** Perform the surgery; `keep` maps group id -> sorted kept channel indices (only pruned groups). */
export function applyPruning(model: Model, ga: GroupAnalysis, keep: ReadonlyMap<number, readonly number[]>): ApplyStats {
  const g: Graph = model.graph;
  let tensorsSliced = 0;
  const copied = new Set<string>();
  const inChanged = new Set<string>();
  const keptOut = new Map<string, number[]>();
  // a grouped Conv needs the same number of output (and input) channels in every group: refuse a
  // keep that would produce a model onnxruntime rejects (or silently re-assigns channels to groups)
  for (const grp of ga.groups) {
    const k = keep.get(grp.id);
    if (!k || grp.chunks <= 1) continue;
    const per = grp.size / grp.chunks;
    const counts = new Array<number>(grp.chunks).fill(0);
    for (const i of k) counts[Math.floor(i / per)]!++;
    if (counts.some((n) => n !== counts[0]))
      throw new EdgefitError(
        'INTERNAL',
        `prune: group '${grp.label}' is cut in ${grp.chunks} equal runs for grouped Convs (${ga.atoms.chunkSources(grp.id).join('; ')}) but keeps ${counts.join('/')} channels per group`,
      );
  }
  // install the cut tensor; a tensor read elsewhere (or by a second input slot) gets a private copy first
  const replace = (a: GroupAnalysis['actions'][number], name: string, cut: (outName: string) => Tensor): void => {
    const shared =
      !copied.has(name) && (g.consumers(name).length > 1 || a.node.inputs.filter((v) => v === name).length > 1 || g.isGraphInput(name));
    const outName = shared ? g.uniqueName(`${name}_pruned`) : name;
    g.setInitializer(cut(outName));
    if (shared) {
      a.node.inputs[a.input] = outName;
      copied.add(outName);
      g.touch();
    }
    tensorsSliced++;
  };
  for (const a of ga.actions) {
    const full = ga.atoms.size(a.space);
    const kept = keptIndices(a.space, ga.atoms, keep);
    if (kept.length === full) continue;
    if (a.role === 'in' || a.role === 'in-grouped') inChanged.add(a.node.outputs[0]!);
    if (a.role === 'out') keptOut.set(a.node.outputs[0]!, kept);
    if (a.role === 'group') {
      a.node.setInt('group', kept.length);
      continue;
    }
    if (a.role === 'range') {
      // a Slice of the channel axis: its bounds become the kept counts before them
      const [lo, hi] = a.range!;
      const bounds = [kept.filter((i) => i < lo).length, kept.filter((i) => i < hi).length];
      if (a.input < 0) {
        (['starts', 'ends'] as const).forEach((k, j) => {
          const v = a.node.attrInts(k)!;
          v[a.axis] = bounds[j]!;
          a.node.setInts(k, v);
        });
        continue;
      }
      for (const j of [0, 1]) {
        const name = a.node.inputs[1 + j]!;
        const t = g.initializer(name);
        if (!t || (t.dtype !== 'int64' && t.dtype !== 'int32'))
          throw new EdgefitError('INTERNAL', `prune: ${a.node.label()} bounds are no longer integer constants`);
        const vals = t.toNumbers();
        vals[a.axis] = bounds[j]!;
        replace({ ...a, input: 1 + j }, name, (n) =>
          t.dtype === 'int64' ? Tensor.fromInt64(n, t.dims, vals) : Tensor.fromInt32(n, t.dims, vals),
        );
      }
      continue;
    }
    if (a.role === 'shape' && a.input < 0) {
      const sizes = a.node.attrInts('split');
      if (!sizes) throw new EdgefitError('INTERNAL', `prune: ${a.node.label()} has no split attribute`);
      sizes[a.axis] = kept.length;
      a.node.setInts('split', sizes);
      continue;
    }
    if (a.role === 'shape') {
      // a channel shuffle's or heads split/merge Reshape, or a Split: the entry holding the count follows the cut
      const name = a.node.inputs[a.input]!;
      const t = g.initializer(name);
      if (!t || t.dtype !== 'int64') throw new EdgefitError('INTERNAL', `prune: ${a.node.label()} shape is no longer an int64 constant`);
      const vals = t.toNumbers();
      vals[a.axis] = kept.length;
      replace(a, name, (n) => Tensor.fromInt64(n, t.dims, vals));
      continue;
    }
    const name = a.node.inputs[a.input]!;
    const t = g.initializer(name);
    if (!t) throw new EdgefitError('INTERNAL', `prune: ${a.node.label()} input ${a.input} is no longer a constant`);
    const len = t.dims[a.axis]!;
    let idx = kept;
    if (a.role === 'in-grouped') {
      // the group-level check above already refused unequal runs; this one guards the action itself
      const cols = keptPerRun(kept, full, a.groups!, a.node.label());
      if (len * a.groups! !== full)
        throw new EdgefitError('INTERNAL', `prune: ${a.node.label()} reads ${len} channels per group, not ${full}/${a.groups}`);
      replace(a, name, (n) => gatherGroupedColumns(t, cols, n));
      continue;
    }
    if (len !== full) {
      // a flattened channel feeds a block of features in the next Gemm/MatMul
      const block = len / full;
      if (!Number.isInteger(block)) throw new EdgefitError('INTERNAL', `prune: ${a.node.label()} has ${len} features for ${full} channels`);
      idx = kept.flatMap((c) => Array.from({ length: block }, (_, j) => c * block + j));
    }
    replace(a, name, (n) => sliceAxis(t, a.axis, idx, n));
  }
  // recorded intermediate shapes are stale now; ORT re-infers them, and value_info that
  // disagreed with the new weights would be refused
  const retyped = g.valueTypes.size;
  g.valueTypes.clear();
  g.declaredValueInfo.clear();
  runPass(deadCodeElimination, model, undefined);
  return { tensorsSliced, valuesRetyped: retyped, inChanged, keptOut };
}

/** Structured pruning surgery as a checked pass; `keep` as for applyPruning. */
export const structuredPrunePass: Pass<{ analysis: GroupAnalysis; keep: ReadonlyMap<number, readonly number[]> }, ApplyStats> = {
  name: 'prune-structured',
  requires: ['valid-graph'],
  guarantees: ['stays-valid', 'outputs-kept', 'only-shrinks', 'no-dead-code'],
  run(model, o) {
    const r = applyPruning(model, o.analysis, o.keep);
    return { changed: r.tensorsSliced > 0, details: r };
  },
};
