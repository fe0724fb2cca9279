// Gradient rules of activations (Sigmoid, Tanh, Erf for exact GELU, Gelu, the hard and leaky ones,
// PRelu, Elu, Softplus, Clip), Softmax / LogSoftmax, and Layer- and InstanceNormalization. Where the derivative is a function of the output
// (Sigmoid: y(1-y), Tanh: 1-y^2, Elu, HardSigmoid's mask) the rule reads the output,
// so the input's buffer can be freed once the forward pass has consumed it.
import { EdgefitError } from '../../../../errors.js';
import type { Node } from '../../../../ir/node.js';
import type { GradEmitter, GradRule } from '../types.js';
import { masked, scalar } from './elementwise.js';

/** The axes Softmax / LogSoftmax normalise over: `axis` from opset 13; `axis` to the last before (the 2-D coercion). */
function softmaxAxes(n: Node, e: GradEmitter): number[] {
  const rank = e.shape(n.inputs[0]!).length;
  const old = e.opset < 13;
  const a = n.attrInt('axis', old ? 1 : -1);
  const axis = a < 0 ? a + rank : a;
  // before 13 the input is flattened to [prod(:axis), prod(axis:)] and normalised over the second
  // dim: the same as normalising over every axis from `axis` on
  return old ? Array.from({ length: rank - axis }, (_, i) => axis + i) : [axis];
}

/** Clip's bounds: inputs 1 and 2 from opset 11, attributes min/max before (absent: unbounded). */
function clipBounds(n: Node, e: GradEmitter, like: string): [string | undefined, string | undefined] {
  if (e.opset >= 11) return [n.inputs[1] || undefined, n.inputs[2] || undefined];
  const lo = n.attrFloat('min');
  const hi = n.attrFloat('max');
  return [lo === undefined ? undefined : scalar(e, lo, like), hi === undefined ? undefined : scalar(e, hi, like)];
}

const mul = (e: GradEmitter, a: string, b: string): string => e.op('Mul', [a, b]);

/**
 * Gradients of y = (x - mean) / sqrt(var + eps) * scale + bias, the statistics over `axes`:
 * dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy scale; dScale and dBias summed back to
 * `scaleShape` / `biasShape`. The statistics are recomputed (cheap next to the layer's matmuls)
 * rather than taken from LayerNormalization's optional outputs, which onnxruntime keeps in float32
 * whatever the input's type.
 */
function normGrads(
  e: GradEmitter,
  need: readonly boolean[],
  dy: string,
  x: string,
  axes: readonly number[],
  epsilon: number,
  scale: string,
  bias: string | undefined,
  scaleShape: readonly number[],
  biasShape: readonly number[],
): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  if (need[2] && bias) out[2] = e.unbroadcast(dy, biasShape);
  if (!need[0] && !need[1]) return out;
  const xs = e.shape(x);
  const inv = scalar(e, 1 / axes.reduce((p, ax) => p * xs[ax]!, 1), x);
  const mean = (v: string): string => mul(e, e.reduceSum(v, axes, true), inv);
  const d = e.op('Sub', [x, mean(x)]);
  const rstd = e.op('Reciprocal', [e.op('Sqrt', [e.op('Add', [mean(mul(e, d, d)), scalar(e, epsilon, x)])])]);
  const xhat = mul(e, d, rstd);
  if (need[0]) {
    const g = mul(e, dy, scale);
    out[0] = mul(e, rstd, e.op('Sub', [e.op('Sub', [g, mean(g)]), mul(e, xhat, mean(mul(e, g, xhat)))]));
  }
  if (need[1]) out[1] = e.unbroadcast(mul(e, dy, xhat), scaleShape);
  return out;
}

// GreaterOrEqual / LessOrEqual arrived in opset 12
const atLeast = (e: GradEmitter, a: string, b: string): string =>
  e.opset >= 12 ? e.op('GreaterOrEqual', [a, b]) : e.op('Not', [e.op('Less', [a, b])]);
const atMost = (e: GradEmitter, a: string, b: string): string =>
  e.opset >= 12 ? e.op('LessOrEqual', [a, b]) : e.op('Not', [e.op('Greater', [a, b])]);

export const ACTIVATION_GRADS: Readonly<Record<string, GradRule>> = {
  Sigmoid: {
    diff: [0],
    grad: (n, [dy], _need, e) => {
      const y = n.outputs[0]!;
      return [mul(e, dy!, mul(e, y, e.op('Sub', [scalar(e, 1, y), y])))];
    },
  },
  Tanh: {
    diff: [0],
    grad: (n, [dy], _need, e) => {
      const y = n.outputs[0]!;
      return [mul(e, dy!, e.op('Sub', [scalar(e, 1, y), mul(e, y, y)]))];
    },
  },
  Erf: {
    diff: [0],
    // 2/sqrt(pi) * exp(-x^2): GELU written as 0.5 x (1 + erf(x / sqrt 2)) is differentiated through it
    grad: (n, [dy], _need, e) => {
      const x = n.inputs[0]!;
      const g = e.op('Exp', [e.op('Neg', [mul(e, x, x)])]);
      return [mul(e, dy!, mul(e, g, scalar(e, 2 / Math.sqrt(Math.PI), x)))];
    },
  },
  HardSigmoid: {
    diff: [0],
    // y = clip(alpha x + beta, 0, 1): slope alpha where 0 < y < 1
    grad: (n, [dy], _need, e) => {
      const y = n.outputs[0]!;
      const inside = e.op('And', [e.op('Greater', [y, scalar(e, 0, y)]), e.op('Less', [y, scalar(e, 1, y)])]);
      return [masked(e, inside, mul(e, dy!, scalar(e, n.attrFloat('alpha', 0.2), dy!)))];
    },
  },
  HardSwish: {
    diff: [0],
    // y = x * clip(x/6 + 1/2, 0, 1): slope 0 below -3, 1 above 3, x/3 + 1/2 between
    grad: (n, [dy], _need, e) => {
      const x = n.inputs[0]!;
      const mid = e.op('Add', [mul(e, x, scalar(e, 1 / 3, x)), scalar(e, 0.5, x)]);
      const slope = e.op('Where', [
        e.op('Less', [x, scalar(e, -3, x)]),
        scalar(e, 0, x),
        e.op('Where', [e.op('Greater', [x, scalar(e, 3, x)]), scalar(e, 1, x), mid]),
      ]);
      return [mul(e, dy!, slope)];
    },
  },
  LeakyRelu: {
    diff: [0],
    grad: (n, [dy], _need, e) => {
      const alpha = n.attrFloat('alpha', 0.01);
      // with alpha > 0 the output's sign is the input's
      const s = alpha > 0 ? n.outputs[0]! : n.inputs[0]!;
      return [e.op('Where', [e.op('Greater', [s, scalar(e, 0, s)]), dy!, mul(e, dy!, scalar(e, alpha, dy!))])];
    },
  },
  PRelu: {
    diff: [0, 1],
    // the slope may be negative, so the sign test reads the input
    grad: (n, [dy], need, e) => {
      const [x, slope] = n.inputs as [string, string];
      const pos = e.op('Greater', [x, scalar(e, 0, x)]);
      return [
        need[0] ? e.op('Where', [pos, dy!, mul(e, dy!, slope)]) : undefined,
        need[1] ? e.unbroadcast(e.op('Where', [pos, scalar(e, 0, dy!), mul(e, dy!, x)]), e.shape(slope)) : undefined,
      ];
    },
  },
  Gelu: {
    diff: [0],
    // opset 20; exact: Phi(x) + x phi(x); tanh form: d/dx of 0.5 x (1 + tanh(k (x + 0.044715 x^3)))
    grad: (n, [dy], _need, e) => {
      const x = n.inputs[0]!;
      const half = scalar(e, 0.5, x);
      const add = (a: string, b: string): string => e.op('Add', [a, b]);
      if (n.attrString('approximate') === 'tanh') {
        const k = Math.sqrt(2 / Math.PI);
        const x2 = mul(e, x, x);
        const th = e.op('Tanh', [mul(e, mul(e, x, add(scalar(e, 1, x), mul(e, x2, scalar(e, 0.044715, x)))), scalar(e, k, x))]);
        const du = mul(e, scalar(e, k, x), add(scalar(e, 1, x), mul(e, x2, scalar(e, 3 * 0.044715, x))));
        const sech2 = e.op('Sub', [scalar(e, 1, x), mul(e, th, th)]);
        const slope = add(mul(e, half, add(scalar(e, 1, x), th)), mul(e, mul(e, half, x), mul(e, sech2, du)));
        return [mul(e, dy!, slope)];
      }
      const cdf = mul(e, half, add(scalar(e, 1, x), e.op('Erf', [mul(e, x, scalar(e, Math.SQRT1_2, x))])));
      const pdf = mul(e, e.op('Exp', [mul(e, mul(e, x, x), scalar(e, -0.5, x))]), scalar(e, 1 / Math.sqrt(2 * Math.PI), x));
      return [mul(e, dy!, add(cdf, mul(e, x, pdf)))];
    },
  },
  Softplus: {
    diff: [0],
    // d ln(1 + e^x) = sigmoid(x) (1 - e^-y from the output would cancel badly for very negative x)
    grad: (n, [dy], _need, e) => [mul(e, dy!, e.op('Sigmoid', [n.inputs[0]!]))],
  },
  Elu: {
    diff: [0],
    // y = alpha (e^x - 1) for x <= 0, whose slope alpha e^x is y + alpha; with alpha > 0 the
    // output's sign is the input's (a negative alpha makes the sign test read the input)
    grad: (n, [dy], _need, e) => {
      const alpha = n.attrFloat('alpha', 1);
      const y = n.outputs[0]!;
      const s = alpha > 0 ? y : n.inputs[0]!;
      const neg = mul(e, dy!, e.op('Add', [y, scalar(e, alpha, y)]));
      return [e.op('Where', [e.op('Greater', [s, scalar(e, 0, s)]), dy!, neg])];
    },
  },
  Clip: {
    // the bounds get no gradient: they are constants (Relu6, the fake quantizer's qmin/qmax)
    diff: [0],
    grad: (n, [dy], _need, e) => {
      const x = n.inputs[0]!;
      // dy passes where lo <= x <= hi, bounds included as in PyTorch's clamp and LSQ (a fake-quantized
      // value rounded onto qmin keeps its gradient); that needs the input, not the output
      const [lo, hi] = clipBounds(n, e, x);
      if (!lo && !hi) return [dy];
      // inside the bounds exactly where Clip left its input unchanged: one Equal (floats from
      // opset 11) instead of two comparisons, their negations and an And
      if (e.opset >= 11) return [masked(e, e.op('Equal', [n.outputs[0]!, x]), dy!)];
      const parts = [lo && atLeast(e, x, lo), hi && atMost(e, x, hi)].filter((p): p is string => !!p);
      if (!parts.length) return [dy];
      return [masked(e, parts.length === 2 ? e.op('And', parts) : parts[0]!, dy!)];
    },
  },
  Softmax: {
    diff: [0],
    // dx = y (dy - sum(dy y)) over the normalised axes
    grad: (n, [dy], _need, e) => {
      const y = n.outputs[0]!;
      const dot = e.reduceSum(mul(e, dy!, y), softmaxAxes(n, e), true);
      return [mul(e, y, e.op('Sub', [dy!, dot]))];
    },
  },
  LogSoftmax: {
    diff: [0],
    // dx = dy - softmax(x) sum(dy), softmax(x) = exp(y)
    grad: (n, [dy], _need, e) => {
      const total = e.reduceSum(dy!, softmaxAxes(n, e), true);
      return [e.op('Sub', [dy!, mul(e, e.op('Exp', [n.outputs[0]!]), total)])];
    },
  },
  LayerNormalization: {
    diff: [0, 1, 2],
    grad: (n, dys, need, e) => {
      const [x, scale, bias] = n.inputs as [string, string, string | undefined];
      if (dys.slice(1).some((d) => d !== undefined)) {
        throw new EdgefitError('UNSUPPORTED', `${n.label()}: a gradient through LayerNormalization's Mean or InvStdDev output has no rule`);
      }
      const rank = e.shape(x).length;
      const a = n.attrInt('axis', -1);
      const axis = a < 0 ? a + rank : a;
      const axes = Array.from({ length: rank - axis }, (_, i) => axis + i);
      return normGrads(e, need, dys[0]!, x, axes, n.attrFloat('epsilon', 1e-5), scale, bias, e.shape(scale), bias ? e.shape(bias) : []);
    },
  },
  InstanceNormalization: {
    diff: [0, 1, 2],
    // per sample and channel over the spatial axes; scale and B are [C], broadcast as [C, 1, ...]
    grad: (n, [dy], need, e) => {
      const [x, scale, bias] = n.inputs as [string, string, string];
      const xs = e.shape(x);
      const axes = Array.from({ length: xs.length - 2 }, (_, i) => i + 2);
      const col = [xs[1]!, ...axes.map(() => 1)];
      const [dx, ds, db] = normGrads(e, need, dy!, x, axes, n.attrFloat('epsilon', 1e-5), e.reshape(scale, col), bias, col, col);
      return [dx, ds && e.reshape(ds, [xs[1]!]), db && e.reshape(db, [xs[1]!])];
    },
  },
};
