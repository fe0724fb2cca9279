// Static int8 in QDQ form: QuantizeLinear -> DequantizeLinear pairs around the activations of
// the weighted ops, weights stored int8 behind a DequantizeLinear. onnxruntime's CPU provider
// recognises DQ -> op -> Q units and replaces them with int8 kernels (QLinearConv, QLinearMatMul,
// MatMulIntegerToFloat, QGemm); anything it does not fuse simply runs in float on dequantized
// values, so the graph is correct whatever the runtime fuses. Besides the weighted ops, the ops
// onnxruntime's CPU provider has int8 kernels for (QLinearAdd/Mul/Concat/GlobalAveragePool/
// AveragePool/Sigmoid/LeakyRelu) get Q/DQ on every input and output, and data-movement ops
// (MaxPool, Resize, Transpose, Reshape, ...) between quantized tensors get the same parameters on
// both sides, which onnxruntime turns into the op running on the uint8/int8 data itself.
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Pass } from '../pass.js';
import type { Node } from '../../ir/node.js';
import { INT8_RANGES } from '../../ir/dtype.js';
import { Tensor } from '../../ir/tensor.js';
import { activationParams, type QParams, type Range } from './calibrate.js';
import type { ActType } from './platform.js';
import { packWeight, quantizeBias, quantizeWeight } from './weights.js';

/** Ops quantized statically, and how to find their weight's output-channel axis. */
export const STATIC_OPS = {
  Conv: { weight: 1, bias: 2, quantizeOutput: true },
  MatMul: { weight: 1, bias: -1, quantizeOutput: false },
  Gemm: { weight: 1, bias: 2, quantizeOutput: false },
} as const;
export type StaticOp = keyof typeof STATIC_OPS;

/** Ops with an int8 kernel in onnxruntime's CPU provider (com.microsoft QLinear*), all inputs quantized. */
export const ELEMENTWISE_OPS = new Set(['Add', 'Mul', 'Concat', 'GlobalAveragePool', 'AveragePool', 'Sigmoid', 'LeakyRelu']);
/** Ops that only move or select data: quantized with their input's parameters when that input is quantized. */
export const PASSTHROUGH_OPS = new Set(['MaxPool', 'Resize', 'Transpose', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze']);

/** One weighted node the quantizer considered. */
export interface Candidate {
  kind: 'weighted' | 'elementwise' | 'passthrough';
  node: Node;
  key: string;
  /** Float activations read by the node (quantized per tensor). */
  actInputs: string[];
  /** Float constants read by an elementwise node (quantized like activations, from their own values). */
  constInputs: string[];
  /** Tensor carrying the node's result: its output, or the output of a fused Relu/Clip after it. */
  out: string | undefined;
  /** The Relu/Clip folded into the output quantization, if any. */
  activation: Node | undefined;
  /** Why the node must stay float, when it must. */
  blocked: string | undefined;
}

export function nodeKey(n: Node): string {
  return n.name || n.outputs[0] || `#${n.id}`;
}

function isConstantClipAtZero(g: Graph, n: Node): boolean {
  if (n.opType === 'Relu') return true;
  if (n.opType !== 'Clip') return false;
  const minAttr = n.attrFloat('min');
  if (minAttr !== undefined) return minAttr === 0;
  const minT = n.inputs[1] ? g.constant(n.inputs[1]) : undefined;
  return minT !== undefined && minT.size === 1 && minT.toFloat32()[0] === 0;
}

/** Weight axis that indexes output channels (per-channel quantization axis). */
export function weightAxis(n: Node, w: Tensor): number | undefined {
  if (n.opType === 'Conv') return 0;
  if (n.opType === 'MatMul') return w.dims.length === 2 ? 1 : undefined;
  if (n.opType === 'Gemm') return n.attrInt('transB', 0) === 1 ? 0 : 1;
  return undefined;
}

export function findCandidates(model: Model): Candidate[] {
  const g = model.graph;
  const out: Candidate[] = [];
  const absorbed = new Set<Node>();
  for (const n of g.topoOrder()) {
    if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
    if (absorbed.has(n)) continue;
    if (ELEMENTWISE_OPS.has(n.opType) || PASSTHROUGH_OPS.has(n.opType)) {
      const ins = PASSTHROUGH_OPS.has(n.opType) ? [n.inputs[0]!] : n.inputs.filter(Boolean);
      const c: Candidate = {
        kind: ELEMENTWISE_OPS.has(n.opType) ? 'elementwise' : 'passthrough',
        node: n,
        key: nodeKey(n),
        actInputs: ins.filter((v) => !g.constant(v)),
        constInputs: ins.filter((v) => g.constant(v)),
        out: n.outputs[0],
        activation: undefined,
        blocked: undefined,
      };
      // Add/Mul then Relu or Clip(0, ...): the activation is the output quantization's saturation
      const next =
        c.kind === 'elementwise' && (n.opType === 'Add' || n.opType === 'Mul') && !g.isGraphOutput(n.outputs[0]!)
          ? g.consumers(n.outputs[0]!)
          : [];
      if (next.length === 1 && isConstantClipAtZero(g, next[0]!) && next[0]!.inputs[0] === n.outputs[0]) {
        c.activation = next[0]!;
        absorbed.add(c.activation);
        c.out = c.activation.outputs[0];
      }
      // shape arithmetic (Concat of int64 dims, Reshape targets) is not a layer: not listed at all
      if (c.constInputs.some((v) => g.constant(v)!.dtype !== 'float32')) continue;
      if (n.outputs.length !== 1 || g.isGraphOutput(c.out!)) c.blocked = 'its output is a model output (kept exact)';
      else if (c.actInputs.length === 0) c.blocked = 'no activation input';
      out.push(c);
      continue;
    }
    if (!(n.opType in STATIC_OPS)) continue;
    const spec = STATIC_OPS[n.opType as StaticOp];
    const c: Candidate = {
      kind: 'weighted',
      node: n,
      key: nodeKey(n),
      actInputs: [],
      constInputs: [],
      out: undefined,
      activation: undefined,
      blocked: undefined,
    };
    const wName = n.inputs[spec.weight] ?? '';
    const w = g.constant(wName);
    if (n.opType === 'MatMul' && !w) c.actInputs = n.inputs.slice(0, 2);
    else if (!w) c.blocked = 'weight is not a constant';
    else if (w.dtype !== 'float32') c.blocked = `weight dtype ${w.dtype} is not float32`;
    else c.actInputs = [n.inputs[0]!];
    if (n.opType === 'Gemm' && n.attrInt('transA', 0) !== 0) c.blocked = 'Gemm with transA';
    if (spec.quantizeOutput && !c.blocked) {
      let o = n.outputs[0]!;
      const cons = g.consumers(o);
      if (!g.isGraphOutput(o) && cons.length === 1 && isConstantClipAtZero(g, cons[0]!)) {
        c.activation = cons[0]!;
        absorbed.add(c.activation);
        o = c.activation.outputs[0]!;
      }
      if (g.isGraphOutput(o)) c.blocked = 'its output is a model output (kept exact)';
      c.out = o;
    }
    out.push(c);
  }
  return out;
}

/** Values whose ranges the static quantizer needs. */
export function calibrationValues(cands: readonly Candidate[]): string[] {
  const s = new Set<string>();
  for (const c of cands) {
    if (c.blocked || c.kind === 'passthrough') continue;
    for (const v of c.actInputs) s.add(v);
    if (c.out) s.add(c.out);
  }
  return [...s];
}

export interface StaticOptions {
  actType: ActType;
  reduceRange: boolean;
  perChannel: boolean;
  ranges: Map<string, Range>;
  /** Candidates (by key) to leave in float. */
  keepFloat: ReadonlySet<string>;
  /**
   * Activation tensors to leave unquantized (no Q/DQ pair): their producer and readers still run
   * int8 where their other tensors allow it. Keeping a node float leaves the rounding of its
   * boundary tensors in place; this removes the rounding itself.
   */
  floatTensors?: ReadonlySet<string>;
  /** '' when the model's opset allows per-channel QDQ (>= 13), 'com.microsoft' otherwise. */
  qdqDomain: '' | 'com.microsoft';
  /**
   * Data-aware weight rounding (rounding.ts): the int8 values of a node's weight and a shift to
   * add to its float bias. Undefined (or returning undefined) rounds to nearest.
   */
  roundWeight?: (
    node: Node,
    w: Tensor,
    axis: number | undefined,
    reduceRange: boolean,
  ) => { q: Int8Array; scales: Float32Array; biasShift?: Float64Array } | undefined;
}

export interface LayerDecision {
  node: string;
  op: string;
  kind?: Candidate['kind'];
  int8: boolean;
  why?: string;
}

/** Rewrite `model` in place. Returns one decision per candidate. */
export function applyStatic(model: Model, cands: readonly Candidate[], o: StaticOptions): LayerDecision[] {
  const g = model.graph;
  const decisions: LayerDecision[] = [];
  const chosen: Candidate[] = [];
  const tensors = new Set<string>();
  for (const c of cands) {
    if (c.kind === 'passthrough') continue;
    const missing = [...c.actInputs, ...(c.out ? [c.out] : [])].find((v) => !o.ranges.has(v));
    const why =
      c.blocked ??
      (o.keepFloat.has(c.key) ? 'kept float: most sensitive layer' : missing ? `no float32 calibration range for '${missing}'` : undefined);
    decisions.push({ node: c.key, op: c.node.opType, kind: c.kind, int8: !why, ...(why ? { why } : {}) });
    if (!why) {
      chosen.push(c);
      for (const v of [...c.actInputs, ...(c.out ? [c.out] : [])]) tensors.add(v);
    }
  }
  // data movement between quantized tensors: the output reuses the input's parameters (topological order)
  const alias = new Map<string, string>();
  for (const c of cands) {
    if (c.kind !== 'passthrough' || c.blocked || !c.out) continue;
    const v = c.actInputs[0]!;
    if (!tensors.has(v) || o.keepFloat.has(c.key)) continue;
    decisions.push({ node: c.key, op: c.node.opType, kind: c.kind, int8: true });
    chosen.push(c);
    alias.set(c.out, alias.get(v) ?? v);
    tensors.add(c.out);
  }
  const params = new Map<string, QParams>();
  const qParams = (v: string): QParams => {
    const src = alias.get(v) ?? v;
    let p = params.get(src);
    if (!p) params.set(src, (p = activationParams(o.ranges.get(src)!, o.actType)));
    return p;
  };
  // which nodes run int8, and which values carry a quantized result (all their readers must see it)
  const quantizedNodes = new Set<Node>();
  const producedQuantized = new Set<string>();
  for (const c of chosen) {
    quantizedNodes.add(c.node);
    if (c.activation) quantizedNodes.add(c.activation);
    if (c.out) producedQuantized.add(c.out);
  }
  for (const v of tensors) {
    if (o.floatTensors?.has(v)) continue;
    const p = qParams(v);
    const base = v.replace(/[^A-Za-z0-9_.]/g, '_');
    const { scale, zp } = addParams(g, base, p, o.actType);
    const qv = g.uniqueName(`${base}_q`);
    const dqv = g.uniqueName(`${base}_dq`);
    const readers = g.consumers(v).filter((n) => producedQuantized.has(v) || quantizedNodes.has(n));
    const prod = g.producer(v);
    const qn = g.addNode(
      { opType: 'QuantizeLinear', domain: o.qdqDomain, name: '', inputs: [v, scale, zp], outputs: [qv] },
      prod ? { after: prod } : { before: g.nodes[0] },
    );
    g.addNode({ opType: 'DequantizeLinear', domain: o.qdqDomain, name: '', inputs: [qv, scale, zp], outputs: [dqv] }, { after: qn });
    for (const r of readers) for (let i = 0; i < r.inputs.length; i++) if (r.inputs[i] === v) r.inputs[i] = dqv;
    g.touch();
  }
  for (const c of chosen) {
    const n = c.node;
    if (c.kind === 'elementwise') {
      // constants of Add/Mul/Concat: quantized with the activation type, from their own range
      for (const cv of c.constInputs) {
        const t = g.constant(cv)!;
        const data = t.toFloat32();
        let lo = 0;
        let hi = 0;
        for (const x of data) {
          if (x < lo) lo = x;
          if (x > hi) hi = x;
        }
        const p = activationParams({ min: lo, max: hi }, o.actType);
        const q = o.actType === 'uint8' ? new Uint8Array(data.length) : new Int8Array(data.length);
        const [qmin, qmax] = INT8_RANGES[o.actType];
        for (let i = 0; i < data.length; i++) q[i] = Math.max(qmin, Math.min(qmax, Math.round(data[i]! / p.scale) + p.zeroPoint));
        const base = g.uniqueName(`${cv.replace(/[^A-Za-z0-9_.]/g, '_')}_c`);
        const qt =
          q instanceof Uint8Array ? Tensor.fromUint8(`${base}_q8`, t.dims, q) : Tensor.fromInt8(`${base}_q8`, t.dims, q as Int8Array);
        const { scale, zp } = addParams(g, base, p, o.actType);
        const dq = addDequantize(g, n, qt, g.constant(scale)!, g.constant(zp)!, undefined, o.qdqDomain);
        for (let i = 0; i < n.inputs.length; i++) if (n.inputs[i] === cv) n.inputs[i] = dq;
      }
      continue;
    }
    if (c.kind !== 'weighted') continue;
    const spec = STATIC_OPS[n.opType as StaticOp];
    const wName = n.inputs[spec.weight]!;
    const w = g.constant(wName);
    if (!w) continue; // activation x activation MatMul: both inputs already behind DQ
    const axis = o.perChannel ? weightAxis(n, w) : undefined;
    const r = o.roundWeight?.(n, w, axis, o.reduceRange);
    const qw = r
      ? packWeight(g.uniqueName(wName), w.dims, r.q, r.scales, axis)
      : quantizeWeight(w, g.uniqueName(wName), { axis, reduceRange: o.reduceRange });
    n.inputs[spec.weight] = addDequantize(g, n, qw.q, qw.scale, qw.zeroPoint, axis, o.qdqDomain);
    const bName = spec.bias >= 0 ? n.inputs[spec.bias] : undefined;
    const b0 = bName ? g.constant(bName) : undefined;
    // bias correction: the mean output error of the rounded weight goes into the float bias first
    const b =
      b0 && r?.biasShift && b0.dtype === 'float32' && b0.size === r.biasShift.length
        ? Tensor.fromFloat32(
            b0.name,
            b0.dims,
            Float32Array.from(b0.toFloat32(), (v, i) => v + r.biasShift![i]!),
          )
        : b0;
    if (bName && b && b.dtype === 'float32' && b.dims.length === 1) {
      const inScale = qParams(c.actInputs[0]!).scale;
      const qb = quantizeBias(b, g.uniqueName(bName), inScale, qw.scales);
      n.inputs[spec.bias] = addDequantize(g, n, qb.q, qb.scale, qb.zeroPoint, 0, o.qdqDomain);
    }
  }
  return decisions;
}

/** Scalar scale and zero-point initializers for one quantized tensor. */
function addParams(g: Graph, base: string, p: QParams, actType: ActType): { scale: string; zp: string } {
  const scale = g.uniqueName(`${base}_s`);
  const zp = g.uniqueName(`${base}_z`);
  g.setInitializer(Tensor.scalarFloat(scale, p.scale));
  g.setInitializer(
    actType === 'uint8' ? Tensor.fromUint8(zp, [], Uint8Array.of(p.zeroPoint)) : Tensor.fromInt8(zp, [], Int8Array.of(p.zeroPoint)),
  );
  return { scale, zp };
}

function addDequantize(g: Graph, before: Node, q: Tensor, scale: Tensor, zp: Tensor, axis: number | undefined, domain: string): string {
  g.setInitializer(q);
  g.setInitializer(scale);
  g.setInitializer(zp);
  const out = g.uniqueName(`${q.name}_dq`);
  g.addNode(
    {
      opType: 'DequantizeLinear',
      domain,
      name: '',
      inputs: [q.name, scale.name, zp.name],
      outputs: [out],
      attrs: axis !== undefined && scale.dims.length === 1 ? { axis: { type: 'int', value: axis } } : {},
    },
    { before },
  );
  return out;
}

/** Static QDQ as a checked pass: candidates found on the model it is given. */
export const staticQuantPass: Pass<StaticOptions, { layers: LayerDecision[] }> = {
  name: 'quantize-static',
  requires: ['valid-graph', 'opset-known', 'float-model'],
  guarantees: ['stays-valid', 'outputs-kept', 'int8-as-claimed'],
  run(model, o) {
    const layers = applyStatic(model, findCandidates(model), o);
    return { changed: layers.some((l) => l.int8), details: { layers } };
  },
};
