// Dependency groups over the IR, in the spirit of DepGraph (Fang et al., 2023) but built on the
// ONNX graph itself: walk the nodes in topological order, give every weight layer's output a
// channel atom, let the per-op table (ops.ts) say how atoms flow and couple, and collect the
// slicing actions each group implies. Anything the table does not understand blocks the groups
// it touches, with the reason; graph inputs and outputs are blocked so the interface keeps its shape.
import { EdgefitError } from '../../errors.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { type Action, type Ctx, PRUNERS, type VInfo } from './ops.js';
import { inferShapes, isStatic, staticShape } from '../../ir/shapes.js';
import { Atoms } from './space.js';

export interface Group {
  /** Union-find root: the group's id within one analysis. */
  id: number;
  /** Channels in the group (every member atom has this many). */
  size: number;
  /** Values whose channels are this group's, for reports and activation statistics. */
  values: string[];
  /** The slicing actions (weights, biases, params) that pruning this group performs. */
  actions: Action[];
  prunable: boolean;
  reasons: string[];
  /** Name of the first weight layer producing the group, for reports. */
  label: string;
  /**
   * Equal contiguous runs of channels that must each keep the same count (1 = no constraint):
   * the group count of the grouped Convs producing or reading these channels (their lcm when
   * coupled; an lcm run is inside one group of each, so equal runs give equal groups).
   */
  chunks: number;
  /**
   * Channels of the layers it sizes that one index stands for (1 = one channel; a grouped Conv
   * pruned by whole groups: the channels per group), for rounding to the kernels' block.
   */
  unit: number;
}

export interface GroupAnalysis {
  atoms: Atoms;
  groups: Group[];
  actions: Action[];
  values: Map<string, VInfo>;
}

export function analyzeGroups(model: Model): GroupAnalysis {
  const g: Graph = model.graph;
  const atoms = new Atoms();
  const values = new Map<string, VInfo>();
  const actions: Action[] = [];
  const origins = new Map<number, string>();
  // static shapes for the few checks that need them (channel shuffle, heads), inferred once on
  // demand (inference leaves the model's own recorded types as they are); at the model's
  // analysisShapes when prune fixed them, where the recorded types would leave a batch open
  let inferred: Map<string, number[]> | null = null;
  const shapeOf = (v: string): number[] | null => {
    const known = model.analysisShapes ? null : staticShape(g, v);
    if (known) return known;
    if (!inferred) {
      inferred = new Map();
      try {
        const given = model.analysisShapes && new Map([...model.analysisShapes].map(([k, v]) => [k, [...v]]));
        const found = inferShapes(model, given ? { shapes: given } : {}).types;
        for (const [k, t] of new Map([...g.valueTypes, ...found])) if (isStatic(t.shape)) inferred.set(k, [...t.shape]);
      } catch {
        // an input the inference refuses: the shapes stay unknown and the check says so
      }
    }
    return inferred.get(v) ?? null;
  };

  for (const inp of g.runtimeInputs()) {
    const shape = inp.type?.shape;
    if (!shape || shape.length < 2) continue;
    // channels-first for images, last axis for token sequences; either way the input is fixed
    const rank = shape.length;
    const axis = rank === 3 ? -1 : 1 - rank;
    const c = shape[rank + axis];
    const space = atoms.add(typeof c === 'number' ? c : 0, inp.name);
    atoms.block(space, 'graph input: its shape is the model interface');
    values.set(inp.name, { space, axis, rank });
  }

  for (const n of g.topoOrder()) {
    let pending: Action[] = [];
    const ctx: Ctx = {
      g,
      atoms,
      info: (v) => values.get(v),
      set: (v, i) => values.set(v, i),
      constant: (v) => g.constant(v),
      act: (a) => pending.push({ ...a, node: a.node ?? n }),
      atom: (node, size, what) => {
        const space = atoms.add(size, what);
        origins.set(space.id, what);
        return space;
      },
      shape: shapeOf,
      source: (node: Node, size, axis, rank) => {
        const space = atoms.add(size, node.outputs[0]!);
        if (space.kind === 'atom') origins.set(space.id, node.name || node.outputs[0]!);
        const info = { space, axis, rank };
        values.set(node.outputs[0]!, info);
        return info;
      },
    };
    const handler = n.domain === '' || n.domain === 'ai.onnx' ? PRUNERS[n.opType] : undefined;
    const reason = handler ? handler(n, ctx) : `${n.kind} is not in the pruner table`;
    if (reason !== undefined) {
      pending = [];
      for (const v of g.nodeReads(n)) {
        const i = values.get(v);
        if (i) atoms.block(i.space, `${n.label()}: ${reason}`);
      }
      for (const o of n.outputs) values.delete(o);
    }
    actions.push(...pending);
  }
  for (const o of g.outputs) {
    const i = values.get(o.name);
    if (i) atoms.block(i.space, `graph output '${o.name}' keeps its shape`);
  }

  // groups: one per union-find root that is not an alias of another space (finalize hands an
  // alias's reasons and run constraints to the atoms it is made of)
  const roots = new Set(atoms.finalize());
  const byRoot = new Map<number, Group>();
  const groupOf = (id: number): Group => {
    const r = atoms.find(id);
    if (!roots.has(r)) throw new EdgefitError('INTERNAL', `prune: atom ${id} is an alias, not a group`);
    let grp = byRoot.get(r);
    if (!grp) {
      grp = {
        id: r,
        size: atoms.info[r]!.size,
        values: [],
        actions: [],
        prunable: true,
        reasons: [],
        label: origins.get(r) ?? atoms.info[r]!.origin,
        chunks: 1,
        unit: 1,
      };
      byRoot.set(r, grp);
    }
    if (!origins.has(r) && origins.has(id) && grp.label === atoms.info[r]!.origin) grp.label = origins.get(id)!;
    return grp;
  };
  for (let id = 0; id < atoms.info.length; id++) {
    if (!roots.has(atoms.find(id))) continue;
    const grp = groupOf(id);
    if (atoms.info[id]!.size !== grp.size) atoms.block({ kind: 'atom', id }, 'coupled channels of different counts');
  }
  for (const [v, i] of values) if (i.space.kind === 'atom' && roots.has(atoms.find(i.space.id))) groupOf(i.space.id).values.push(v);
  for (const a of actions) for (const r of atoms.roots(a.space)) groupOf(r).actions.push(a);
  for (const grp of byRoot.values()) {
    grp.reasons = atoms.reasonsOf(grp.id);
    grp.chunks = atoms.chunksOf(grp.id);
    grp.unit = atoms.unitOf(grp.id);
    const by = () => atoms.chunkSources(grp.id).join('; ');
    if (grp.chunks > 1 && grp.size % grp.chunks !== 0)
      grp.reasons.push(`grouped Conv groups (${grp.chunks}) do not divide the ${grp.size} coupled channels (${by()})`);
    else if (grp.chunks > 1 && grp.size / grp.chunks < 2)
      grp.reasons.push(
        `grouped Convs leave one channel per group (${grp.chunks} groups: ${by()}): only whole groups could go (G shrinking), ` +
          'which is implemented for one grouped Conv with a single input or output channel per group ' +
          "reading one weight layer's channels, not for this combination",
      );
    if (!grp.actions.some((a) => a.role === 'out')) grp.reasons.push('no weight layer produces these channels');
    if (grp.size < 2) grp.reasons.push('a single channel');
    grp.prunable = grp.reasons.length === 0;
  }
  return { atoms, groups: [...byRoot.values()], actions, values };
}
