// Dead code elimination: drop nodes whose outputs nobody reads and initializers nobody uses.
// Passes that rewire the graph (pruning, folding) run this after themselves.
import type { Model } from '../../ir/model.js';
import type { Pass, PassResult } from '../pass.js';

export interface DceDetails {
  nodesRemoved: number;
  initializersRemoved: number;
  [k: string]: unknown;
}

export const deadCodeElimination: Pass<void, DceDetails> = {
  name: 'dce',
  // nothing: other passes run it on their own output, and their guarantees name them if it is broken
  requires: [],
  guarantees: ['stays-valid', 'outputs-kept', 'only-shrinks', 'no-dead-code'],
  run(model: Model): PassResult<DceDetails> {
    const g = model.graph;
    const live = new Set<string>(g.outputs.map((o) => o.name));
    let nodesRemoved = 0;
    const order = g.topoOrder();
    const keep = new Set<number>();
    for (let i = order.length - 1; i >= 0; i--) {
      const n = order[i]!;
      if (n.outputs.some((o) => o && live.has(o))) {
        keep.add(n.id);
        for (const v of g.nodeReads(n)) live.add(v);
      }
    }
    for (const n of [...g.nodes]) {
      if (!keep.has(n.id)) {
        g.removeNode(n);
        nodesRemoved++;
      }
    }
    let initializersRemoved = 0;
    for (const name of [...g.initializerNames()]) {
      if (!live.has(name) && !g.isGraphInput(name)) {
        g.removeInitializer(name);
        initializersRemoved++;
      }
    }
    for (const name of [...g.declaredValueInfo]) if (!live.has(name)) g.declaredValueInfo.delete(name);
    return { changed: nodesRemoved + initializersRemoved > 0, details: { nodesRemoved, initializersRemoved } };
  },
};
