// Per-layer widths of a keep plan without cutting anything: every weight layer's (cin, cout) once
// the groups keep the given channel counts, read off the group analysis's slicing actions (which
// weight axis each group slices) and the weights' current dims. This is what the latency tables
// are indexed by (analyze/latency predictMs: node name -> widths), so an allocation can try
// thousands of plans on one analysis instead of pruning a clone per try.
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import type { GroupAnalysis } from './groups.js';
import { keptIndices, range } from './space.js';
import { layerId } from '../../analyze/latency/index.js';

export interface LayerWidths {
  cin: number;
  cout: number;
  /** A grouped Conv's group count (the latency tables tell whole groups gone from narrower groups). */
  groups?: number;
}

const WEIGHT_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

/** A weight layer and what of it a keep plan can change. */
interface Layer {
  node: Node;
  dims: number[];
  group: number;
  /** Actions slicing the weight (input 1): the axis, and how many weight entries one channel is. */
  cuts: { axis: number; action: GroupAnalysis['actions'][number]; per: number }[];
  /** The 'group' action resetting G (depthwise, channel multiplier, one output per group). */
  groupAction?: GroupAnalysis['actions'][number];
}

/** The (cin, cout) a weight node's op reads from its weight dims and group count. */
function widthsOf(op: string, dims: readonly number[], group: number, transB: boolean): LayerWidths {
  switch (op) {
    case 'Conv':
      return { cin: dims[1]! * group, cout: dims[0]! };
    case 'ConvTranspose':
      return { cin: dims[0]!, cout: dims[1]! * group };
    case 'Gemm':
      return transB ? { cin: dims[1]!, cout: dims[0]! } : { cin: dims[0]!, cout: dims[1]! };
    default:
      return { cin: dims[0]!, cout: dims[1]! };
  }
}

/**
 * The weight layers of `model` as `ga` sees them; build once per analysis, then evaluate many
 * plans with `widthsFor`. Layers are keyed as the tables key them (layerId: the node's name, or its
 * first output when unnamed).
 */
export function weightLayers(model: Model, ga: GroupAnalysis): Map<string, Layer> {
  const layers = new Map<string, Layer>();
  for (const n of model.graph.nodes) {
    if (!WEIGHT_OPS.has(n.opType) || !n.inputs[1]) continue;
    const w = model.graph.constant(n.inputs[1]);
    if (!w || w.dims.length < 2) continue;
    layers.set(layerId(n), { node: n, dims: [...w.dims], group: n.attrInt('group', 1), cuts: [] });
  }
  const byNode = new Map([...layers.values()].map((l) => [l.node, l]));
  for (const a of ga.actions) {
    const l = byNode.get(a.node);
    if (!l) continue;
    if (a.role === 'group') l.groupAction = a;
    else if (a.input === 1 && a.role !== 'shape') {
      const full = ga.atoms.size(a.space);
      // a flattened channel is a block of features in the next Gemm/MatMul; a grouped Conv's
      // weight holds Cin/G of the channels it reads
      const per = a.role === 'in-grouped' ? 1 / a.groups! : l.dims[a.axis]! / full;
      l.cuts.push({ axis: a.axis, action: a, per });
    }
  }
  return layers;
}

/** Keep counts (group id -> channels kept) as a keep map with the right counts (which channels does not matter to widths). */
export function countsAsKeep(counts: ReadonlyMap<number, number>): Map<number, number[]> {
  return new Map([...counts].map(([id, k]) => [id, range(k)]));
}

/** Widths of the given layers (all when `only` is not given) under keep map `keep` (group id -> kept indices). */
export function widthsFor(
  ga: GroupAnalysis,
  layers: ReadonlyMap<string, Layer>,
  keep: ReadonlyMap<number, readonly number[]>,
  only?: Iterable<string>,
): Map<string, LayerWidths> {
  const out = new Map<string, LayerWidths>();
  for (const name of only ?? layers.keys()) {
    const l = layers.get(name);
    if (!l) continue;
    const dims = [...l.dims];
    for (const c of l.cuts) dims[c.axis] = Math.round(keptIndices(c.action.space, ga.atoms, keep).length * c.per);
    const group = l.groupAction ? keptIndices(l.groupAction.space, ga.atoms, keep).length : l.group;
    const w = widthsOf(l.node.opType, dims, group, l.node.attrInt('transB', 0) === 1);
    out.set(name, l.group > 1 ? { ...w, groups: group } : w);
  }
  return out;
}

/** Layer names whose widths depend on each group (group id -> names), for recomputing only what a cut touches. */
export function layersByGroup(ga: GroupAnalysis, layers: ReadonlyMap<string, Layer>): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  for (const [name, l] of layers) {
    for (const a of [...l.cuts.map((c) => c.action), ...(l.groupAction ? [l.groupAction] : [])]) {
      for (const r of ga.atoms.roots(a.space)) {
        let s = out.get(r);
        if (!s) out.set(r, (s = new Set()));
        s.add(name);
      }
    }
  }
  return out;
}

/** Per-layer widths of `model` pruned with `keep` (group id of `ga` -> kept indices), every weight layer by node name. */
export function layerWidths(model: Model, ga: GroupAnalysis, keep: ReadonlyMap<number, readonly number[]>): Map<string, LayerWidths> {
  return widthsFor(ga, weightLayers(model, ga), keep);
}
