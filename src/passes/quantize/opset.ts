// Per-channel QuantizeLinear/DequantizeLinear (the `axis` attribute) exist from opset 13. A model
// at an older opset is raised to 13 only when no op it contains changed meaning on the way (the
// table below); otherwise the Q/DQ nodes use onnxruntime's com.microsoft domain, whose
// QuantizeLinear/DequantizeLinear take `axis` at any opset and are fused the same way.
import { EdgefitError } from '../../errors.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Pass } from '../pass.js';
import { opsetVersion } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';

/** op -> first opset (<= 13) whose definition differs from older ones in a way that matters here. */
export const BREAKING_UP_TO_13 = {
  Clip: 11, // min/max attributes became inputs
  Slice: 10, // starts/ends attributes became inputs
  Squeeze: 13, // axes attribute became an input
  Unsqueeze: 13,
  Split: 13,
  ReduceSum: 13,
  Softmax: 13, // from "flatten to 2-D at axis" to "normalise along axis"
  LogSoftmax: 13,
  Hardmax: 13,
  Resize: 11, // roi input added
  Upsample: 10, // deprecated
  Pad: 11, // pads attribute became an input
  TopK: 10, // k attribute became an input
  Dropout: 12, // ratio attribute became an input
  Scatter: 11, // deprecated
} as const;

export interface OpsetPlan {
  from: number;
  to: number;
  qdqDomain: '' | 'com.microsoft';
  /** Ops rewritten to their opset-13 form (attributes that became inputs). */
  converted: string[];
  why: string;
}

/** Attribute-to-input rewrites for the ops whose only change up to 13 is that move. */
const CONVERTERS: Record<string, (g: Graph, n: Node) => void> = {
  Clip(g, n) {
    const lo = n.attrFloat('min');
    const hi = n.attrFloat('max');
    n.attrs.delete('min');
    n.attrs.delete('max');
    const ins = [n.inputs[0]!, '', ''];
    if (lo !== undefined) g.setInitializer(Tensor.scalarFloat((ins[1] = g.uniqueName(`${nameOf(n)}_min`)), lo));
    if (hi !== undefined) g.setInitializer(Tensor.scalarFloat((ins[2] = g.uniqueName(`${nameOf(n)}_max`)), hi));
    while (ins.length > 1 && ins[ins.length - 1] === '') ins.pop();
    n.inputs = ins;
  },
  Slice(g, n) {
    const ins = [n.inputs[0]!];
    for (const a of ['starts', 'ends', 'axes'] as const) {
      const v = n.attrInts(a);
      n.attrs.delete(a);
      if (v === undefined) continue;
      const name = g.uniqueName(`${nameOf(n)}_${a}`);
      g.setInitializer(Tensor.fromInt64(name, [v.length], v));
      ins.push(name);
    }
    n.inputs = ins;
  },
  Squeeze: axesToInput,
  Unsqueeze: axesToInput,
};

function nameOf(n: Node): string {
  return (n.name || n.outputs[0] || n.opType).replace(/[^A-Za-z0-9_.]/g, '_');
}

function axesToInput(g: Graph, n: Node): void {
  const v = n.attrInts('axes');
  n.attrs.delete('axes');
  if (v === undefined) return;
  const name = g.uniqueName(`${nameOf(n)}_axes`);
  g.setInitializer(Tensor.fromInt64(name, [v.length], v));
  n.inputs = [n.inputs[0]!, name];
}

/**
 * Ops whose opset-14 definition differs from 13 only by new types or attributes whose default keeps
 * the old meaning (Add/Sub/Mul/Div, Relu, Identity, Reshape allowzero=0, BatchNormalization
 * training_mode=0, CumSum, RNN/GRU/LSTM layout=0): a model at 13 can be read as 14, which brings
 * HardSwish as one op.
 */
function to14(p: OpsetPlan): OpsetPlan {
  if (p.to !== 13 || p.qdqDomain !== '') return p;
  return {
    ...p,
    to: 14,
    why: `${p.why}; read as opset 14 (nothing between 13 and 14 changes meaning at default attributes) for HardSwish`,
  };
}

export function planOpset(model: Model): OpsetPlan {
  return to14(planOpsetTo13(model));
}

function planOpsetTo13(model: Model): OpsetPlan {
  const v = opsetVersion(model);
  if (v >= 13) return { from: v, to: v, qdqDomain: '', converted: [], why: `opset ${v} has per-channel QuantizeLinear/DequantizeLinear` };
  const blockers = new Set<string>();
  const converted = new Set<string>();
  for (const n of model.graph.nodes) {
    if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
    const since = (BREAKING_UP_TO_13 as Record<string, number>)[n.opType];
    if (since === undefined || v >= since) continue;
    // Softmax over the last axis means the same in both definitions
    if (n.opType === 'Softmax' || n.opType === 'LogSoftmax' || n.opType === 'Hardmax') {
      const axis = n.attrInt('axis', 1);
      const rank = model.graph.type(n.inputs[0]!)?.shape?.length;
      if (axis === -1 || (rank !== undefined && axis === rank - 1)) continue;
    }
    if (n.opType in CONVERTERS) converted.add(n.opType);
    else blockers.add(n.opType);
  }
  const conv = [...converted].sort();
  if (blockers.size === 0) {
    return {
      from: v,
      to: 13,
      qdqDomain: '',
      converted: conv,
      why: `raised opset ${v} -> 13${conv.length ? ` (rewrote ${conv.join(', ')} attributes as inputs)` : ''}: no other op changed meaning between them`,
    };
  }
  // onnxruntime fuses Q/DQ into ai.onnx QLinearConv/QLinearMatMul, which exist from opset 10
  if (v < 10)
    throw new EdgefitError(
      'UNSUPPORTED',
      `opset ${v} model uses ${[...blockers].sort().join(', ')}, which changed meaning before opset 13; int8 kernels need opset >= 10: re-export the model at opset 13`,
    );
  return {
    from: v,
    to: v,
    qdqDomain: 'com.microsoft',
    converted: [],
    why: `kept opset ${v} (${[...blockers].sort().join(', ')} changed meaning before 13); Q/DQ use onnxruntime's com.microsoft domain, which allows per-channel axes at any opset`,
  };
}

export function applyOpsetPlan(model: Model, p: OpsetPlan): void {
  if (p.converted.length) {
    for (const n of [...model.graph.nodes]) {
      if ((n.domain === '' || n.domain === 'ai.onnx') && p.converted.includes(n.opType)) CONVERTERS[n.opType]!(model.graph, n);
    }
    model.graph.touch();
  }
  if (p.to !== p.from) model.opsets.set(model.opsets.has('ai.onnx') ? 'ai.onnx' : '', p.to);
  if (p.qdqDomain === 'com.microsoft' && !model.opsets.has('com.microsoft')) model.opsets.set('com.microsoft', 1);
}

/** Carries out a plan made by planOpset (an analysis): converts attributes and sets the opset. */
export const opsetPass: Pass<OpsetPlan, OpsetPlan> = {
  name: 'opset',
  requires: ['valid-graph', 'opset-known'],
  guarantees: ['stays-valid', 'outputs-kept'],
  run(model, plan) {
    applyOpsetPlan(model, plan);
    return { changed: plan.to !== plan.from || plan.converted.length > 0 || plan.qdqDomain !== '', details: plan };
  },
};
