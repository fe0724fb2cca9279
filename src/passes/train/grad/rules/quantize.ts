// Gradient rules of an activation fake quantizer written as onnxruntime's own pair,
//     y = DequantizeLinear(QuantizeLinear(x, s, z), s, z)  =  (clip(round(x/s) + z, qmin, qmax) - z) * s,
// which QAT trains (quantize/qat.ts). As two ops the forward pass runs onnxruntime's quantize and
// dequantize kernels (two passes, one byte per element between them), where the same value spelt
// in float ops (Div, Round, Add, Clip, Sub, Mul) took six passes over every quantized activation:
// on QAT det 73 % of an inference of the fake-quant model.
//
// The gradients are the straight-through estimator's, with LSQ's step-size gradient, exactly what
// the float spelling gets through Round's, Clip's, Div's and Mul's rules (elementwise.ts):
//   dx = dy where x rounds into [qmin, qmax], else 0;
//   ds = sum(dy * (y - x * inside)) / s   (LSQ: round(x/s) - x/s inside, the bound's level outside).
// The integer q between the two gets no gradient of its own: DequantizeLinear's rule hands dy to q
// unscaled (a gradient in units of the step), and QuantizeLinear's rule takes it as such, so the
// pair's backward is four ops (Clip, Equal, and the mask's Cast and Mul) instead of five. That convention
// holds only for the pair, so both rules check it: a QuantizeLinear read by anything but
// DequantizeLinears of its own step and zero point, or a DequantizeLinear of anything else, is
// refused with the node named.
import { EdgefitError } from '../../../../errors.js';
import { int8Range } from '../../../../ir/dtype.js';
import type { Node } from '../../../../ir/node.js';
import type { GradEmitter, GradRule } from '../types.js';
import { masked } from './elementwise.js';

/** The integer range of the pair's zero point (absent: uint8, as ONNX says). */
function intRange(n: Node, e: GradEmitter): [number, number, number] {
  const zp = n.inputs[2] ? e.constant(n.inputs[2]) : undefined;
  if (n.inputs[2] && !zp) throw new EdgefitError('UNSUPPORTED', `${n.label()}: training needs a constant zero point`);
  const z = zp ? zp.toNumbers()[0]! : 0;
  const type = zp?.dtype ?? 'uint8';
  if (zp && zp.size !== 1) throw new EdgefitError('UNSUPPORTED', `${n.label()}: training quantizes activations per tensor only`);
  const r = int8Range(type);
  if (r) return [r[0], r[1], z];
  throw new EdgefitError('UNSUPPORTED', `${n.label()}: training handles uint8 and int8 quantization, not ${type}`);
}

/** A DequantizeLinear that undoes `q` exactly: the same step and zero point, per tensor. */
const undoes = (dq: Node, q: Node): boolean =>
  dq.opType === 'DequantizeLinear' &&
  (dq.domain === '' || dq.domain === 'ai.onnx') &&
  dq.inputs[1] === q.inputs[1] &&
  (dq.inputs[2] ?? '') === (q.inputs[2] ?? '') &&
  !dq.attrs.has('axis');

const notPair = (n: Node, why: string): EdgefitError =>
  new EdgefitError(
    'UNSUPPORTED',
    `${n.label()}: training differentiates QuantizeLinear -> DequantizeLinear only as a fake quantizer (one step and zero point, per tensor); ${why}`,
  );

/** ReduceSum over every axis of `v`, as a scalar. */
const total = (e: GradEmitter, v: string): string => e.reduceSum(v, [...e.shape(v).keys()], false);

export const QUANTIZE_GRADS = {
  QuantizeLinear: {
    diff: [0, 1],
    grad: (n, [dq], need, e) => {
      const q = n.outputs[0]!;
      const readers = e.readers(q);
      if (!readers.length || !readers.every((r) => undoes(r, n))) throw notPair(n, 'its output is read by something else');
      const [x, s] = n.inputs as [string, string];
      if (e.shape(s).length) throw notPair(n, 'its step is not a scalar');
      const [qmin, qmax, z] = intRange(n, e);
      // x rounds into [qmin, qmax] exactly where it lies within half a step beyond the bounds
      const lo = qmin - z - 0.5;
      const hi = qmax - z + 0.5;
      const sc = e.constant(s);
      const bound = (k: number): string =>
        sc ? e.constFloat([Math.fround(k * sc.toFloat32()[0]!)], [], x) : e.op('Mul', [s, e.constFloat([k], [], x)]);
      const inside = e.op('Equal', [e.op('Clip', [x, bound(lo), bound(hi)]), x]);
      const dx = masked(e, inside, dq!);
      // ds, the quantize half: d(round(x/s))/ds = -x/s^2 inside (straight through), in units of the step
      const ds = need[1] ? e.op('Neg', [e.op('Div', [total(e, e.op('Mul', [dx, x])), s])]) : undefined;
      return [dx, ds];
    },
  },
  DequantizeLinear: {
    diff: [0, 1],
    grad: (n, [dy], need, e) => {
      const qv = n.inputs[0]!;
      const q = e.producer(qv);
      if (!q || q.opType !== 'QuantizeLinear' || !undoes(n, q))
        throw notPair(n, 'it does not dequantize a QuantizeLinear of the same step');
      // q's gradient in units of the step (the pair's convention above): dy itself
      const dq = need[0] ? dy! : undefined;
      // ds, the dequantize half: (q - z) = y / s
      const ds = need[1] ? e.op('Div', [total(e, e.op('Mul', [dy!, n.outputs[0]!])), n.inputs[1]!]) : undefined;
      return [dq, ds];
    },
  },
} as const satisfies Record<string, GradRule>;
