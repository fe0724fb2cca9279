// Constant-fold shape subgraphs once the input shapes are fixed. Dynamic-shape exports
// (torchvision's ShuffleNetV2 channel shuffle, nn.MultiheadAttention, x.view(x.size(0), -1))
// compute Reshape/Expand/Slice shapes at run time: Shape -> Gather -> Unsqueeze -> Concat. The
// pruning analysis understands constant shapes only, and prune/fit always know the input shapes,
// so the values those chains compute are written into the model as initializers and the chains
// are removed.
//
// Dims the model declares dynamic stay dynamic where that is expressible: the pass evaluates the
// chains twice, at the given shapes and with every dynamic dim doubled. A value that differs
// between the two depends on a dynamic dim; where it is a Reshape's shape, each such entry that
// copies the Reshape input's dim becomes 0 (copy) and one that is the rest becomes -1 (infer), so
// the folded model still runs at any batch. A dynamic value that cannot be said that way (an
// Expand or ConstantOfShape size, two inferred entries) is left computed at run time, reported.
import type { Model } from '../../ir/model.js';
import { opsetVersion } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { inferShapes } from '../../ir/shapes.js';
import { Tensor } from '../../ir/tensor.js';
import type { TensorType } from '../../ir/types.js';
import type { Pass, PassResult } from '../pass.js';
import { deadCodeElimination } from './dce.js';
import { knownValues, type Val } from './shape-eval.js';

export interface FoldOptions {
  /** Shapes of the model's inputs (what prune and fit run with); a dynamic input not given stays dynamic. */
  shapes: ReadonlyMap<string, readonly number[]>;
}

export interface FoldDetails {
  /** Values computed at run time that are now initializers. */
  folded: number;
  /** Of those, Reshape shapes that depend on a dynamic input dim, written with 0 (copy) / -1 (infer) entries. */
  keptDynamic: number;
  /** Run-time values depending on a dynamic input dim that stay computed, with the node that reads them. */
  leftDynamic: string[];
  nodesRemoved: number;
  [k: string]: unknown;
}

const INT64_MAX = 2n ** 63n - 1n;

function tensorOf(name: string, v: Val): Tensor | undefined {
  if (v.dtype === 'int64')
    return Tensor.fromInt64(
      name,
      v.dims,
      v.data.map((x) => (x >= 2 ** 63 ? INT64_MAX : x <= -(2 ** 63) ? -INT64_MAX - 1n : BigInt(x))),
    );
  if (v.dtype === 'int32') return Tensor.fromInt32(name, v.dims, v.data);
  if (v.dtype === 'float32') return Tensor.fromFloat32(name, v.dims, v.data);
  return undefined; // bool and others: left computed (no exporter feeds them to a reshape)
}

const staticDims = (t: TensorType | undefined): number[] | null =>
  t?.shape && t.shape.every((d): d is number => typeof d === 'number' && d >= 0) ? t.shape : null;

/**
 * A Reshape shape that is vA at the given input shapes and vB with the dynamic dims doubled,
 * written so that it holds at both: entries that change and copy the input's dim become 0, one
 * remaining changing entry becomes -1. Null when it cannot be.
 */
function dynamicReshape(r: Node, vA: Val, vB: Val, tA: Map<string, TensorType>, tB: Map<string, TensorType>): number[] | null {
  const xA = staticDims(tA.get(r.inputs[0]!)),
    xB = staticDims(tB.get(r.inputs[0]!));
  if (!xA || !xB || r.attrInt('allowzero', 0) === 1 || vA.dims.length !== 1) return null;
  const out = [...vA.data];
  let free = -1;
  for (let i = 0; i < out.length; i++) {
    if (vA.data[i] === vB.data[i]) continue;
    if (i < xA.length && vA.data[i] === xA[i] && vB.data[i] === xB[i]) out[i] = 0;
    else if (free < 0) free = i;
    else return null;
  }
  if (free >= 0) {
    if (out.includes(-1)) return null;
    out[free] = -1;
  }
  // the rewritten shape must resolve to the same dims as the computed one, at both sizes
  const resolve = (shape: readonly number[], x: readonly number[]): string => {
    const d = shape.map((e, i) => (e === 0 ? x[i]! : e));
    const known = d.filter((e) => e !== -1).reduce((a, b) => a * b, 1);
    const total = x.reduce((a, b) => a * b, 1);
    return d.map((e) => (e === -1 ? total / known : e)).join();
  };
  const resolves = (x: number[], v: Val): boolean => resolve(out, x) === resolve(v.data, x);
  return resolves(xA, vA) && resolves(xB, vB) ? out : null;
}

export const foldShapesPass: Pass<FoldOptions, FoldDetails> = {
  name: 'fold-shapes',
  requires: ['valid-graph', 'opset-known'],
  // not 'only-shrinks': a folded shape vector is a new (tiny) initializer where a chain of nodes was
  guarantees: ['stays-valid', 'outputs-kept', 'no-dead-code'],
  run(model: Model, o: FoldOptions): PassResult<FoldDetails> {
    const g = model.graph;
    const opset = opsetVersion(model);
    const shapesA = new Map<string, number[]>();
    const shapesB = new Map<string, number[]>();
    let dynamic = false;
    for (const inp of g.runtimeInputs()) {
      const given = o.shapes.get(inp.name);
      const declared = inp.type?.shape;
      if (!given) continue;
      shapesA.set(inp.name, [...given]);
      // a dim the model leaves open is doubled in the second evaluation, to see what depends on it
      shapesB.set(
        inp.name,
        given.map((d, i) => (declared && typeof declared[i] === 'number' ? d : ((dynamic = true), 2 * d))),
      );
    }
    const tA = inferShapes(model, { shapes: shapesA }).types;
    const valsA = knownValues(g, tA, opset);
    let tB = tA,
      valsB = valsA;
    if (dynamic) {
      try {
        tB = inferShapes(model, { shapes: shapesB }).types;
        valsB = knownValues(g, tB, opset);
      } catch {
        valsB = new Map(); // cannot tell what depends on the dynamic dims: fold none of it
      }
    }
    const same = (a: Val, b: Val | undefined) =>
      !!b && a.dtype === b.dtype && a.dims.join() === b.dims.join() && a.data.every((x, i) => x === b.data[i]);

    let folded = 0,
      keptDynamic = 0;
    const leftDynamic: string[] = [];
    for (const n of [...g.nodes]) {
      for (const v of n.outputs) {
        const vA = v ? valsA.get(v) : undefined;
        if (!v || !vA || g.isGraphOutput(v)) continue;
        // the frontier: readers that still compute at run time (known readers fold on their own)
        const readers = g.consumers(v).filter((c) => c.inputs.includes(v) && !c.outputs.every((x) => !x || valsA.has(x)));
        if (!readers.length) continue;
        if (same(vA, valsB.get(v))) {
          const t = tensorOf(g.uniqueName(`${v}_folded`), vA);
          if (!t) continue;
          g.setInitializer(t);
          for (const r of readers) r.inputs.forEach((x, i) => x === v && (r.inputs[i] = t.name));
          g.touch();
          folded++;
          continue;
        }
        for (const r of readers) {
          const vB = valsB.get(v);
          const shape = r.opType === 'Reshape' && r.inputs[1] === v && r.inputs[0] !== v && vB ? dynamicReshape(r, vA, vB, tA, tB) : null;
          if (!shape) {
            leftDynamic.push(`'${v}' read by ${r.label()}`);
            continue;
          }
          const t = Tensor.fromInt64(g.uniqueName(`${v}_folded`), [shape.length], shape);
          g.setInitializer(t);
          r.inputs[1] = t.name;
          g.touch();
          folded++;
          keptDynamic++;
        }
      }
    }
    const dce = deadCodeElimination.run(model).details;
    return {
      changed: folded > 0 || dce.nodesRemoved > 0,
      details: { folded, keptDynamic, leftDynamic, nodesRemoved: dce.nodesRemoved },
    };
  },
};
