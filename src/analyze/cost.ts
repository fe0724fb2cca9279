// Per-layer and total cost figures: parameters, MACs, weight bytes, peak activation memory.
// MACs are counted for the ops that dominate inference time (conv, matmul, recurrent);
// elementwise ops count 0 MACs, as is usual in the pruning literature.
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { isFloatDType, dtypeBytes } from '../ir/dtype.js';
import { numel } from '../ir/shapes.js';
import type { ReadonlyGraph } from '../ir/graph.js';

export interface LayerCost {
  name: string;
  op: string;
  outputShape: (number | string | null)[] | null;
  params: number;
  /** null when a needed dim is unknown. */
  macs: number | null;
}

export interface ModelCost {
  params: number;
  weightBytes: number;
  macs: number | null;
  peakActivationBytes: number | null;
  layers: LayerCost[];
  /** Why some figure is unknown and which --shape would resolve it. */
  unresolved: string[];
}

type MacRule = (n: Node, g: ReadonlyGraph) => number | null;
const dims = (g: ReadonlyGraph, v: string | undefined) => (v ? (g.type(v)?.shape ?? null) : null);
const prod = (a: readonly (number | string | null)[]): number | null => numel(a);

const conv: MacRule = (n, g) => {
  const y = dims(g, n.outputs[0]);
  const w = dims(g, n.inputs[1]);
  if (!y || !w) return null;
  const ny = prod(y);
  const kw = prod(w.slice(1)); // (inC/group) * kH * kW per output element
  return ny !== null && kw !== null ? ny * kw : null;
};
const convT: MacRule = (n, g) => {
  const x = dims(g, n.inputs[0]);
  const w = dims(g, n.inputs[1]);
  if (!x || !w) return null;
  const nx = prod(x);
  const kw = prod(w.slice(1)); // (outC/group) * k per input element
  return nx !== null && kw !== null ? nx * kw : null;
};
const matmul: MacRule = (n, g) => {
  const y = dims(g, n.outputs[0]);
  const a = dims(g, n.inputs[0]);
  if (!y || !a) return null;
  const transA = n.opType === 'Gemm' && n.attrInt('transA', 0) === 1;
  const k = transA ? a[0] : a[a.length - 1];
  const ny = prod(y);
  return ny !== null && typeof k === 'number' ? ny * k : null;
};
const rnn =
  (gates: number): MacRule =>
  (n, g) => {
    const x = dims(g, n.inputs[0]);
    const h = n.attrInt('hidden_size');
    if (!x || !h || x.length !== 3) return null;
    const dirs = n.attrString('direction') === 'bidirectional' ? 2 : 1;
    const [a, b, inp] = x;
    if (typeof a !== 'number' || typeof b !== 'number' || typeof inp !== 'number') return null;
    return a * b * dirs * gates * h * (inp + h);
  };

const MAC_RULES: Record<string, MacRule> = {
  Conv: conv,
  ConvInteger: conv,
  QLinearConv: conv,
  ConvTranspose: convT,
  Gemm: matmul,
  MatMul: matmul,
  MatMulInteger: matmul,
  QLinearMatMul: matmul,
  LSTM: rnn(4),
  GRU: rnn(3),
  RNN: rnn(1),
};

export function analyzeCost(model: Model): ModelCost {
  const g = model.graph;
  const order = g.topoOrder();
  const seen = new Set<string>();
  const layers: LayerCost[] = [];
  let params = 0;
  let weightBytes = 0;
  let macs: number | null = 0;
  const unresolved = new Set<string>();
  const macUnknown: string[] = [];
  for (const n of order) {
    let p = 0;
    for (const v of n.inputs) {
      if (!v || seen.has(v)) continue;
      const t = g.initializer(v);
      if (!t) continue;
      seen.add(v);
      weightBytes += t.byteLength;
      if (isFloatDType(t.dtype)) p += t.size;
      else if ((t.dtype === 'int8' || t.dtype === 'uint8') && /Conv|MatMul|Gemm|Quantize/.test(n.opType)) p += t.size; // quantized weights are still weights
    }
    // Constant nodes not lifted by normalize (e.g. ones that are graph outputs) still hold weights
    if (n.opType === 'Constant') {
      const t = n.attrTensor('value');
      if (t && isFloatDType(t.dtype)) {
        p += t.size;
        weightBytes += t.byteLength;
      }
    }
    // If/Loop/Scan bodies hold weights of their own (the codec counted them): they are the model's too
    for (const a of n.attrs.values()) {
      const subs = a.type === 'graph' ? [a.value] : a.type === 'graphs' ? a.value : [];
      for (const sg of subs) {
        p += sg.weights?.params ?? 0;
        weightBytes += sg.weights?.bytes ?? 0;
      }
    }
    params += p;
    const rule = MAC_RULES[n.opType];
    let m: number | null = 0;
    if (rule) {
      m = rule(n, g);
      if (m === null) macUnknown.push(n.label());
    }
    macs = macs === null || m === null ? null : macs + m;
    layers.push({
      name: n.name || n.outputs[0] || '',
      op: n.opType,
      outputShape: g.type(n.outputs[0] ?? '')?.shape ?? null,
      params: p,
      macs: m,
    });
  }
  // Initializers no node reads (rare) are still stored weights.
  for (const name of g.initializerNames()) {
    if (seen.has(name)) continue;
    const t = g.initializer(name)!;
    weightBytes += t.byteLength;
    if (isFloatDType(t.dtype)) params += t.size;
  }
  if (macUnknown.length)
    unresolved.add(
      `MACs of ${macUnknown.length} layers need static shapes (${macUnknown.slice(0, 3).join(', ')}${macUnknown.length > 3 ? ', ...' : ''})`,
    );
  const peak = peakActivation(model, order);
  if (peak === null) unresolved.add('peak activation needs static shapes of every intermediate tensor');
  return { params, weightBytes, macs, peakActivationBytes: peak, layers, unresolved: [...unresolved] };
}

/** Largest total size of simultaneously live intermediate tensors when run in topological order. */
export function peakActivation(model: Model, order = model.graph.topoOrder()): number | null {
  const g = model.graph;
  const remaining = new Map<string, number>();
  const size = (v: string): number | null => {
    const t = g.type(v);
    if (!t || !t.shape) return null;
    const n = numel(t.shape);
    return n === null ? null : n * Math.max(1, dtypeBytes(t.dtype));
  };
  for (const n of order) for (const v of g.nodeReads(n)) remaining.set(v, (remaining.get(v) ?? 0) + 1);
  let live = 0;
  let peak = 0;
  const outputs = new Set(g.outputs.map((o) => o.name));
  for (const inp of g.runtimeInputs()) {
    const s = size(inp.name);
    if (s === null) return null;
    live += s;
  }
  peak = live;
  for (const n of order) {
    for (const o of n.outputs) {
      if (!o) continue;
      const s = size(o);
      if (s === null) return null;
      live += s;
    }
    peak = Math.max(peak, live);
    for (const v of new Set(g.nodeReads(n))) {
      if (g.initializer(v)) continue;
      const left = (remaining.get(v) ?? 1) - 1;
      remaining.set(v, left);
      if (left === 0 && !outputs.has(v)) live -= size(v) ?? 0;
    }
    for (const o of n.outputs) if (o && !remaining.has(o) && !outputs.has(o)) live -= size(o) ?? 0;
  }
  return peak;
}
