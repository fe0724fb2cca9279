// QAT export (issue 18): the trained fake-quant model (qat.ts) back into the static path's QDQ
// form, so it runs on onnxruntime's int8 kernels exactly as `quantize --mode static` output does.
// Each activation fake quantizer becomes QuantizeLinear -> DequantizeLinear on its learned step
// size; each weight (held in units of its step) is stored as its int8 values, rounded as Round
// does (half to even), on its per-channel scales; biases become int32 on input scale x weight
// scale, as qdq.ts stores them.
import { EdgefitError } from '../../errors.js';
import type { Graph } from '../../ir/graph.js';
import { cloneModel, type Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { deadCodeElimination } from '../cleanup/dce.js';
import { runPass } from '../pass.js';
import type { FakeQuantModel } from './qat.js';
import { packWeight } from './weights.js';

/** Round half to even, as ONNX Round and QuantizeLinear do (Math.round rounds halves up). */
export function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Saturated to int32: a bias far beyond its int32 range (rec has channels whose s_in x s_w is
 * tiny) is stored by the static path at the limit, which float32 reads back as 2^31, and
 * Int32Array wraps 2^31 to -2^31: the bias flipped sign on export, trained or not.
 */
const int32 = (v: number): number => Math.max(-2147483648, Math.min(2147483647, v));

/** A step size must stay positive: training could push one to zero or below. */
const SMALLEST_STEP = 1e-8;

function positive(t: Tensor): Float32Array {
  return Float32Array.from(t.toFloat32(), (v) => (v > SMALLEST_STEP ? v : SMALLEST_STEP));
}

/** An int32 bias and its scales (per channel, or one scalar for per-tensor weights), as qdq.ts stores them. */
function packBias(name: string, q: Int32Array, steps: Float32Array): { q: Tensor; scale: Tensor; zeroPoint: Tensor } {
  const perTensor = steps.length === 1;
  return {
    q: Tensor.fromInt32(`${name}_q8`, [q.length], q),
    scale: Tensor.fromFloat32(`${name}_s`, perTensor ? [] : [q.length], steps),
    zeroPoint: Tensor.fromInt32(`${name}_z`, perTensor ? [] : [q.length], new Int32Array(perTensor ? 1 : q.length)),
  };
}

function removeChain(g: Graph, outputs: readonly string[]): void {
  for (const o of outputs) {
    const p = g.producer(o);
    if (p) g.removeNode(p);
  }
  g.touch();
}

/**
 * The QDQ model of a fake-quant model. `trained` holds the values training changed (weights,
 * biases, step sizes by name); the rest are the fake-quant model's own initializers.
 */
export function exportQdq(fq: FakeQuantModel, trained: ReadonlyMap<string, Tensor> = new Map()): Model {
  const model = cloneModel(fq.model);
  const g = model.graph;
  const value = (name: string): Tensor => {
    // the fake-quant model's own values, not the copy's: export rewrites shared step sizes in place
    const t = trained.get(name) ?? fq.model.graph.initializer(name);
    if (!t) throw new EdgefitError('INTERNAL', `QAT export: no value for '${name}'`);
    return t;
  };
  const actScale = new Map<string, number>();
  for (const a of fq.activations) {
    removeChain(g, a.nodes);
    // the step the fake quantizer used: scale x factor in float32, as onnxruntime's Mul computes it
    const s = positive(Tensor.fromFloat32('', [], [Math.fround(value(a.scale).toFloat32()[0]! * value(a.factor).toFloat32()[0]!)]))[0]!;
    g.setInitializer(Tensor.scalarFloat(a.scale, s));
    actScale.set(a.output, s);
    const zp = g.uniqueName(`${a.scale}_zp`);
    g.setInitializer(new Tensor({ name: zp, dtype: a.zeroPoint.dtype, dims: [], bytes: a.zeroPoint.bytes() }));
    const qv = g.uniqueName(`${a.input}_q`);
    const at = g.consumers(a.input)[0] ?? g.consumers(a.output)[0];
    const qn = new Node({ opType: 'QuantizeLinear', domain: a.domain, name: '', inputs: [a.input, a.scale, zp], outputs: [qv] });
    const dq = new Node({ opType: 'DequantizeLinear', domain: a.domain, name: '', inputs: [qv, a.scale, zp], outputs: [a.output] });
    const prod = g.producer(a.input);
    if (prod) g.addNode(qn, { after: prod });
    else g.addNode(qn, at ? { before: at } : {});
    g.addNode(dq, { after: qn });
  }
  const wScales = new Map<string, Float32Array>();
  for (const w of fq.weights) {
    removeChain(g, w.nodes);
    const wt = value(w.weight);
    const k = value(w.factor).toFloat32();
    const s = positive(
      Tensor.fromFloat32(
        '',
        [k.length],
        Float32Array.from(value(w.scale).toFloat32(), (v, c) => Math.fround(v * k[c]!)),
      ),
    );
    const data = wt.toFloat32();
    const dims = wt.dims;
    const q = new Int8Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = roundEven(data[i]!);
      q[i] = v > w.qmax ? w.qmax : v < -w.qmax ? -w.qmax : v;
    }
    const packed = packWeight(g.uniqueName(w.weight.replace(/_w$/, '')), dims, q, s, w.axis);
    for (const t of [packed.q, packed.scale, packed.zeroPoint]) g.setInitializer(t);
    const reader = g.producer(w.reader)!;
    g.addNode(
      new Node({
        opType: 'DequantizeLinear',
        domain: w.domain,
        name: '',
        inputs: [packed.q.name, packed.scale.name, packed.zeroPoint.name],
        outputs: [w.output],
        attrs: w.axis !== undefined ? { axis: { type: 'int', value: w.axis } } : {},
      }),
      { before: reader },
    );
    g.removeInitializer(w.weight);
    g.removeInitializer(w.scale);
    g.removeInitializer(w.factor);
    wScales.set(w.weight, s);
  }
  for (const b of fq.biases) {
    const reader = g.producer(b.reader)!;
    const inScale = actScale.get(reader.inputs[0]!);
    const ws = wScales.get(b.weight);
    if (inScale === undefined || !ws)
      throw new EdgefitError('INTERNAL', `QAT export: the bias '${b.value}' of ${reader.label()} has no quantized input or weight`);
    removeChain(g, b.nodes);
    const bt = value(b.value);
    const unit = value(b.unit).toFloat32();
    g.removeInitializer(b.value);
    g.removeInitializer(b.unit);
    // the step the fake quantizer multiplies by: s_in * s_w in float32, as onnxruntime's Mul computes it
    const steps = Float32Array.from(ws, (v) => Math.fround(inScale * v));
    const qb = packBias(
      g.uniqueName(b.output),
      Int32Array.from(bt.toFloat32(), (v, c) => int32(roundEven(Math.fround(v * unit[c]!)))),
      steps,
    );
    for (const t of [qb.q, qb.scale, qb.zeroPoint]) g.setInitializer(t);
    g.addNode(
      new Node({
        opType: 'DequantizeLinear',
        domain: b.domain,
        name: '',
        inputs: [qb.q.name, qb.scale.name, qb.zeroPoint.name],
        outputs: [b.output],
        attrs: qb.scale.dims.length === 1 ? { axis: { type: 'int', value: 0 } } : {},
      }),
      { before: reader },
    );
  }
  g.touch();
  runPass(deadCodeElimination, model, undefined);
  return model;
}
