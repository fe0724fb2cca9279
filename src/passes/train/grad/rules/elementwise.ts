// Gradient rules of elementwise ops (with ONNX multidirectional broadcasting undone by summing
// over the broadcast axes), reductions, and the ops that pass a gradient through unchanged
// (Round's straight-through estimator, Cast, inference Dropout). Activations and normalisation
// are in activations.ts. Rules read an op's output rather than its input where they can: the
// forward value a backward node reads stays alive until that node runs, and the output is often
// read anyway by the next layer, so onnxruntime can free the input early.
import { EdgefitError } from '../../../../errors.js';
import { dtypeToOnnx, isFloatDType } from '../../../../ir/dtype.js';
import type { Node } from '../../../../ir/node.js';
import type { GradEmitter, GradRule } from '../types.js';

/** The axes a Reduce* node reduces (attribute before opset 13 / 18, input after), normalised. */
export function reduceAxes(n: Node, e: GradEmitter): number[] {
  const rank = e.shape(n.inputs[0]!).length;
  const fromInput = n.inputs[1] ? e.constant(n.inputs[1])?.toNumbers() : undefined;
  const axes = fromInput ?? n.attrInts('axes') ?? [];
  if (!axes.length) return n.attrInt('noop_with_empty_axes', 0) ? [] : Array.from({ length: rank }, (_, i) => i);
  return axes.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
}

/** dy of a reduction, broadcast back over the reduced axes to the input's shape. */
function expandBack(n: Node, dy: string, e: GradEmitter): string {
  const xs = e.shape(n.inputs[0]!);
  const axes = reduceAxes(n, e);
  const kept = xs.map((d, i) => (axes.includes(i) ? 1 : d));
  return e.op('Expand', [e.reshape(dy, kept), e.constInt64(xs)]);
}

const zeroLike = (e: GradEmitter, like: string): string => e.constFloat([0], [], like);
/** A scalar float constant in `like`'s dtype. */
export const scalar = (e: GradEmitter, value: number, like: string): string => e.constFloat([value], [], like);
/**
 * dy where `mask` holds, else 0 (mask broadcasts against dy): dy times the mask cast to dy's type.
 * onnxruntime's Where with a scalar 0 branch took 18 % of the QAT det step (a mask per fake
 * quantizer); Cast and a same-shape Mul cut that step from 245.8 to 223.6 ms (bench-train-step
 * --cases qatdet --against, 15 interleaved runs).
 */
export const masked = (e: GradEmitter, mask: string, dy: string): string =>
  e.op('Mul', [dy, e.op('Cast', [mask], { to: dtypeToOnnx(e.dtype(dy)) })]);

/**
 * Where `x` equals the extremum `m` of a set it belongs to (m >= x for a max, <= for a min).
 * Equal takes floats from opset 11; before, "not below the max" says the same.
 */
function attains(e: GradEmitter, x: string, m: string, max: boolean): string {
  if (e.opset >= 11) return e.op('Equal', [x, m]);
  return e.op('Not', [e.op(max ? 'Less' : 'Greater', [x, m])]);
}

/**
 * Max / Min: the gradient goes to the input that was chosen. On ties the first such input takes
 * all of it (ties are common, e.g. Max(Relu(x), 0)), so the inputs' gradients still sum to dy.
 */
const extremum: GradRule = {
  diff: Array.from({ length: 16 }, (_, i) => i),
  grad: (n, [dy], need, e) => {
    const y = n.outputs[0]!;
    const last = need.lastIndexOf(true);
    let taken: string | undefined;
    return n.inputs.map((x, i) => {
      // inputs after the last one that needs a gradient decide nothing
      if (i > last) return undefined;
      const hit = attains(e, x, y, n.opType === 'Max');
      const mine = taken ? e.op('And', [hit, e.op('Not', [taken])]) : hit;
      if (i < last) taken = taken ? e.op('Or', [taken, mine]) : mine;
      return need[i] ? e.unbroadcast(masked(e, mine, dy!), e.shape(x)) : undefined;
    });
  },
};

export const ELEMENTWISE_GRADS: Readonly<Record<string, GradRule>> = {
  Add: {
    diff: [0, 1],
    grad: (n, [dy], need, e) => n.inputs.map((x, i) => (need[i] ? e.unbroadcast(dy!, e.shape(x)) : undefined)),
  },
  Sub: {
    diff: [0, 1],
    grad: (n, [dy], need, e) => [
      need[0] ? e.unbroadcast(dy!, e.shape(n.inputs[0]!)) : undefined,
      need[1] ? e.unbroadcast(e.op('Neg', [dy!]), e.shape(n.inputs[1]!)) : undefined,
    ],
  },
  Mul: {
    diff: [0, 1],
    grad: (n, [dy], need, e) => {
      const [a, b] = n.inputs as [string, string];
      return [
        need[0] ? e.unbroadcast(e.op('Mul', [dy!, b]), e.shape(a)) : undefined,
        need[1] ? e.unbroadcast(e.op('Mul', [dy!, a]), e.shape(b)) : undefined,
      ];
    },
  },
  Div: {
    diff: [0, 1],
    grad: (n, [dy], need, e) => {
      const [a, b] = n.inputs as [string, string];
      // d(a/b)/db = -a/b^2 = -y/b: the output instead of a
      return [
        need[0] ? e.unbroadcast(e.op('Div', [dy!, b]), e.shape(a)) : undefined,
        need[1] ? e.unbroadcast(e.op('Neg', [e.op('Div', [e.op('Mul', [dy!, n.outputs[0]!]), b])]), e.shape(b)) : undefined,
      ];
    },
  },
  Pow: {
    diff: [0, 1],
    grad: (n, [dy], need, e) => {
      const [a, p] = n.inputs as [string, string];
      const y = n.outputs[0]!;
      const out: (string | undefined)[] = [];
      if (need[0]) {
        // p * a^(p-1); a constant exponent's p-1 is folded here, and a square (LayerNorm written
        // out, as PP-OCR's rec has it) needs no Pow at all: 2a
        const c = e.constant(p);
        const cv = c?.toNumbers();
        let slope: string;
        if (c && cv!.every((v) => v === 2)) slope = e.op('Mul', [a, e.constFloat(Float32Array.from(cv!), c.dims, dy)]);
        else {
          const pm1 = c
            ? e.constFloat(
                Float32Array.from(cv!, (v) => v - 1),
                c.dims,
                dy,
              )
            : e.op('Sub', [p, scalar(e, 1, p)]);
          const pc = c ? e.constFloat(Float32Array.from(cv!), c.dims, dy) : p;
          slope = e.op('Mul', [pc, e.op('Pow', [a, pm1])]);
        }
        out[0] = e.unbroadcast(e.op('Mul', [dy!, slope]), e.shape(a));
      }
      // d(a^p)/dp = y * ln a (defined for a > 0)
      if (need[1]) out[1] = e.unbroadcast(e.op('Mul', [e.op('Mul', [dy!, y]), e.op('Log', [a])]), e.shape(p));
      return out;
    },
  },
  Sqrt: {
    diff: [0],
    grad: (n, [dy], _need, e) => [e.op('Div', [e.op('Mul', [dy!, scalar(e, 0.5, dy!)]), n.outputs[0]!])],
  },
  Exp: { diff: [0], grad: (n, [dy], _need, e) => [e.op('Mul', [dy!, n.outputs[0]!])] },
  Log: { diff: [0], grad: (n, [dy], _need, e) => [e.op('Div', [dy!, n.inputs[0]!])] },
  Reciprocal: {
    diff: [0],
    // d(1/x) = -1/x^2 = -y^2
    grad: (n, [dy], _need, e) => {
      const y = n.outputs[0]!;
      return [e.op('Neg', [e.op('Mul', [dy!, e.op('Mul', [y, y])])])];
    },
  },
  Abs: { diff: [0], grad: (n, [dy], _need, e) => [e.op('Mul', [dy!, e.op('Sign', [n.inputs[0]!])])] },
  Max: extremum,
  Min: extremum,
  Where: {
    // the condition gets no gradient (it is boolean); each side gets dy where it was chosen
    diff: [1, 2],
    grad: (n, [dy], need, e) => {
      const [cond, a, b] = n.inputs as [string, string, string];
      const zero = zeroLike(e, dy!);
      return [
        undefined,
        need[1] ? e.unbroadcast(e.op('Where', [cond, dy!, zero]), e.shape(a)) : undefined,
        need[2] ? e.unbroadcast(e.op('Where', [cond, zero, dy!]), e.shape(b)) : undefined,
      ];
    },
  },
  Round: {
    diff: [0],
    // The straight-through estimator: Round's true derivative is 0 almost everywhere, so dy passes
    // unchanged. Quantization-aware training's fake quantizer (Clip(Round(x/s) + z, qmin, qmax) - z) * s
    // then gets, through Div, Clip and Mul, exactly LSQ's gradients: dy for x inside the clip range
    // and 0 outside; for s, dy * (round(x/s) - x/s) inside and dy * (qmin - z or qmax - z) outside.
    grad: (_n, [dy]) => [dy],
  },
  Cast: {
    diff: [0],
    // between float types the cast is the identity on values: the gradient is cast back
    grad: (n, [dy], _need, e) => {
      const from = e.dtype(n.inputs[0]!);
      const to = e.dtype(n.outputs[0]!);
      if (!isFloatDType(from) || !isFloatDType(to)) {
        throw new EdgefitError(
          'UNSUPPORTED',
          `${n.label()}: a Cast from ${from} to ${to} has no gradient (only casts between float types do)`,
        );
      }
      return [from === e.dtype(dy!) ? dy : e.op('Cast', [dy!], { to: dtypeToOnnx(from) })];
    },
  },
  Dropout: {
    diff: [0],
    // inference form: the identity (a training-mode Dropout would need its mask, output 1)
    grad: (n, [dy], _need, e) => {
      const mode = n.inputs[2] ? e.constant(n.inputs[2]) : undefined;
      if ((n.inputs[2] && !mode) || mode?.toNumbers()[0]) {
        throw new EdgefitError(
          'UNSUPPORTED',
          `${n.label()}: only Dropout in inference form has a gradient rule (training_mode is on or not constant)`,
        );
      }
      return [dy];
    },
  },
  Mean: {
    diff: Array.from({ length: 16 }, (_, i) => i),
    grad: (n, [dy], need, e) => {
      const share = e.op('Mul', [dy!, e.constFloat([1 / n.inputs.length], [], dy!)]);
      return n.inputs.map((x, i) => (need[i] ? e.unbroadcast(share, e.shape(x)) : undefined));
    },
  },
  Neg: { diff: [0], grad: (_n, [dy], _need, e) => [e.op('Neg', [dy!])] },
  Sum: {
    diff: Array.from({ length: 16 }, (_, i) => i),
    grad: (n, [dy], need, e) => n.inputs.map((x, i) => (need[i] ? e.unbroadcast(dy!, e.shape(x)) : undefined)),
  },
  Relu: {
    diff: [0],
    // the output is > 0 exactly where the input is, and reading it keeps the input's buffer free
    grad: (n, [dy], _need, e) => [masked(e, e.op('Greater', [n.outputs[0]!, zeroLike(e, dy!)]), dy!)],
  },
  ReduceSum: { diff: [0], grad: (n, [dy], _need, e) => [expandBack(n, dy!, e)] },
  ReduceMean: {
    diff: [0],
    grad: (n, [dy], _need, e) => {
      const xs = e.shape(n.inputs[0]!);
      const count = reduceAxes(n, e).reduce((a, ax) => a * xs[ax]!, 1);
      return [e.op('Mul', [expandBack(n, dy!, e), e.constFloat([1 / count], [], dy!)])];
    },
  },
  ReduceMax: {
    diff: [0],
    // the gradient goes to the maxima, shared evenly between ties (as PyTorch's amax does)
    grad: (n, [dy], _need, e) => {
      const x = n.inputs[0]!;
      const xs = e.shape(x);
      const axes = reduceAxes(n, e);
      // noop_with_empty_axes and no axes: the identity
      if (!axes.length) return [dy];
      const kept = xs.map((d, i) => (axes.includes(i) ? 1 : d));
      const hit = e.op('Cast', [attains(e, x, e.reshape(n.outputs[0]!, kept), true)], { to: dtypeToOnnx(e.dtype(x)) });
      const share = e.op('Div', [e.reshape(dy!, kept), e.reduceSum(hit, axes, true)]);
      return [e.op('Mul', [hit, share])];
    },
  },
};
