// Graph surgery: given the channels each group keeps, slice every weight, bias and per-channel
// parameter the groups' actions name, reset depthwise group counts (a grouped Conv keeps its G:
// its output loses the same count per group), and drop stale shape annotations. Shared
// initializers are copied before slicing so an unrelated reader never sees a changed tensor.
import { EdgefitError } from '../../errors.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
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
  // a grouped Conv needs the same number of output channels in every group: refuse a keep that
  // would produce a model onnxruntime rejects (or silently re-assigns channels to groups)
  for (const grp of ga.groups) {
    const k = keep.get(grp.id);
    if (!k || grp.chunks <= 1) continue;
    const per = grp.size / grp.chunks;
    const counts = new Array<number>(grp.chunks).fill(0);
    for (const i of k) counts[Math.floor(i / per)]!++;
    if (counts.some((n) => n !== counts[0])) throw new EdgefitError('INTERNAL', `prune: group '${grp.label}' comes from a grouped Conv with ${grp.chunks} groups but keeps ${counts.join('/')} channels per group`);
  }
  for (const a of ga.actions) {
    const full = ga.atoms.size(a.space);
    const kept = keptIndices(a.space, ga.atoms, keep);
    if (kept.length === full) continue;
    if (a.role === 'in') inChanged.add(a.node.outputs[0]!);
    if (a.role === 'out') keptOut.set(a.node.outputs[0]!, kept);
    if (a.role === 'group') {
      a.node.setInt('group', kept.length);
      continue;
    }
    const name = a.node.inputs[a.input]!;
    const t = g.initializer(name);
    if (!t) throw new EdgefitError('INTERNAL', `prune: ${a.node.label()} input ${a.input} is no longer a constant`);
    const len = t.dims[a.axis]!;
    let idx = kept;
    if (len !== full) {
      // a flattened channel feeds a block of features in the next Gemm/MatMul
      const block = len / full;
      if (!Number.isInteger(block)) throw new EdgefitError('INTERNAL', `prune: ${a.node.label()} has ${len} features for ${full} channels`);
      idx = kept.flatMap((c) => Array.from({ length: block }, (_, j) => c * block + j));
    }
    // a tensor read elsewhere (or by a second input slot) gets a private copy first
    const shared = !copied.has(name) && (g.consumers(name).length > 1 || a.node.inputs.filter((v) => v === name).length > 1 || g.isGraphInput(name));
    const outName = shared ? g.uniqueName(`${name}_pruned`) : name;
    g.setInitializer(sliceAxis(t, a.axis, idx, outName));
    if (shared) {
      a.node.inputs[a.input] = outName;
      copied.add(outName);
      g.touch();
    }
    tensorsSliced++;
  }
  // recorded intermediate shapes are stale now; ORT re-infers them, and value_info that
  // disagreed with the new weights would be refused
  const retyped = g.valueTypes.size;
  g.valueTypes.clear();
  g.declaredValueInfo.clear();
  deadCodeElimination.run(model);
  return { tensorsSliced, valuesRetyped: retyped, inChanged, keptOut };
}
