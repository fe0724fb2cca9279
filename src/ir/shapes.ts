// Static shape inference for the ops edgefit meets in vision and sequence models. It also tracks
// the values of small integer tensors (the Shape -> Gather -> Concat -> Reshape chains exporters
// emit), so that dynamic-looking reshapes resolve once the input dims are given with --shape.
// What it cannot infer stays null; src/analyze/ort-shapes.ts asks onnxruntime for those.
// inferShapes only reads the model and returns the types it found; annotateShapes (or
// applyShapes) records them in graph.valueTypes where a caller wants the model annotated.
import { EdgefitError } from '../errors.js';
import type { DType } from './dtype.js';
import type { Graph } from './graph.js';
import type { Model } from './model.js';
import { opsetVersion } from './model.js';
import type { Node } from './node.js';
import type { Dim, TensorType } from './types.js';
import { RULES, type InferCtx } from './shape-rules.js';
import { checkShapes } from './dims.js';

export interface InferOptions {
  /** Concrete dims for graph inputs (overrides symbolic dims). */
  shapes?: Map<string, number[]>;
}

export interface InferResult {
  /** Type of every graph input and node output the rules (or the recorded types) know. */
  types: Map<string, TensorType>;
  /** Values whose shape stayed unknown or symbolic. */
  unresolved: string[];
  /** Ops without a rule here. */
  unknownOps: string[];
}

const MAX_TRACKED = 64;

export function inferShapes(model: Model, opts: InferOptions = {}): InferResult {
  const g = model.graph;
  const shapes = checkShapes(opts.shapes ?? new Map<string, number[]>());
  for (const name of shapes.keys()) {
    if (!g.runtimeInputs().some((i) => i.name === name)) {
      const names = g
        .runtimeInputs()
        .map((i) => i.name)
        .join(', ');
      throw new EdgefitError('USAGE', `a shape was given for '${name}', which is not a model input (inputs: ${names})`);
    }
  }
  const types = new Map<string, TensorType>();
  const values = new Map<string, number[]>();
  for (const t of g.initializers()) {
    types.set(t.name, { dtype: t.dtype, shape: [...t.dims] });
    if ((t.dtype === 'int64' || t.dtype === 'int32') && t.size <= MAX_TRACKED) values.set(t.name, t.toNumbers());
    else if (t.dtype === 'float32' && t.size <= MAX_TRACKED && t.dims.length <= 1) values.set(t.name, Array.from(t.toFloat32()));
  }
  for (const inp of g.inputs) {
    const given = shapes.get(inp.name);
    const declared = inp.type;
    if (given) {
      if (declared?.shape && declared.shape.length !== given.length) {
        throw new EdgefitError(
          'USAGE',
          `the shape given for input '${inp.name}' (${given.join('x')}) has rank ${given.length}, but the model's input has rank ${declared.shape.length}`,
        );
      }
      if (declared?.shape) {
        declared.shape.forEach((d, i) => {
          if (typeof d === 'number' && d !== given[i]) {
            throw new EdgefitError(
              'USAGE',
              `the shape given for input '${inp.name}' (${given.join('x')}): dim ${i} is fixed to ${d} in the model`,
            );
          }
        });
      }
      types.set(inp.name, { dtype: declared?.dtype ?? 'float32', shape: [...given] });
    } else if (declared && !types.has(inp.name)) {
      types.set(inp.name, declared);
    }
  }
  const unknownOps = new Set<string>();
  const ctx: InferCtx = {
    type: (v) => (v ? (types.get(v) ?? null) : null),
    value: (v) => (v ? values.get(v) : undefined),
    opset: opsetVersion(model),
    graph: g,
  };
  for (const n of g.topoOrder()) {
    const rule = n.domain === '' || n.domain === 'ai.onnx' ? RULES[n.opType] : undefined;
    let out: { types: (TensorType | null)[]; values?: (number[] | undefined)[] } | null = null;
    if (rule) {
      try {
        out = rule(n, ctx);
      } catch {
        out = null; // a rule that cannot decide leaves the shape unknown, never fails the load
      }
    } else {
      unknownOps.add(n.kind);
    }
    n.outputs.forEach((o, i) => {
      if (!o) return;
      const t = out?.types[i] ?? g.valueTypes.get(o) ?? null;
      if (t) types.set(o, t);
      const v = out?.values?.[i];
      if (v && v.length <= MAX_TRACKED) values.set(o, v);
    });
  }
  const unresolved: string[] = [];
  const found = new Map<string, TensorType>();
  for (const n of g.nodes) {
    for (const o of n.outputs) {
      if (!o) continue;
      const t = types.get(o);
      if (t) found.set(o, t);
      if (!t || !isStatic(t.shape)) unresolved.push(o);
    }
  }
  for (const inp of g.inputs) {
    const t = types.get(inp.name);
    if (t) found.set(inp.name, t);
  }
  return { types: found, unresolved, unknownOps: [...unknownOps] };
}

/** Record inferred types in graph.valueTypes (what analysis and cost figures read). */
export function applyShapes(g: Graph, types: ReadonlyMap<string, TensorType>): void {
  for (const [k, t] of types) g.valueTypes.set(k, t);
}

/** inferShapes, then applyShapes: for callers that want the model itself annotated. */
export function annotateShapes(model: Model, opts: InferOptions = {}): InferResult {
  const r = inferShapes(model, opts);
  applyShapes(model.graph, r.types);
  return r;
}

export function isStatic(shape: Dim[] | null): shape is number[] {
  return shape !== null && shape.every((d) => typeof d === 'number' && d >= 0);
}

export function numel(shape: readonly Dim[] | null): number | null {
  if (!shape) return null;
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return null;
    n *= d;
  }
  return n;
}

/** Static shape of a value, or null. */
export function staticShape(g: Graph, v: string): number[] | null {
  const t = g.type(v);
  return t && isStatic(t.shape) ? t.shape : null;
}

export type { Node, DType };
