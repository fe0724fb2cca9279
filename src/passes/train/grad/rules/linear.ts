// Gradient rules of the weight layers: Conv, Gemm, MatMul (BatchNormalization and ConvTranspose
// in their own modules). Conv's input gradient is a ConvTranspose with the same weight and
// geometry; its weight gradient is a MatMul of the output gradient with patches of the input,
// the patches made by a grouped Conv with one-hot kernels: onnxruntime's fast Conv and MatMul
// kernels do all the work (a Conv over batch/channel-transposed tensors was 2.5x slower).
import { EdgefitError } from '../../../../errors.js';
import type { Node } from '../../../../ir/node.js';
import { floatAttr } from '../attrs.js';
import type { GradEmitter, GradRule } from '../types.js';
import { sliceOf } from './layout.js';

/** A Conv's geometry with auto_pad resolved to explicit pads (what ConvTranspose and the patch Conv need). */
export interface ConvGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** begin pads then end pads, as ONNX orders them. */
  pads: number[];
  group: number;
}

export function convGeometry(n: Node, xShape: readonly number[], wShape: readonly number[], yShape: readonly number[]): ConvGeometry {
  const r = xShape.length - 2;
  const kernel = n.attrInts('kernel_shape') ?? wShape.slice(2);
  const strides = n.attrInts('strides') ?? Array<number>(r).fill(1);
  const dilations = n.attrInts('dilations') ?? Array<number>(r).fill(1);
  const auto = n.attrString('auto_pad') ?? 'NOTSET';
  let pads = n.attrInts('pads') ?? Array<number>(2 * r).fill(0);
  if (auto === 'VALID') pads = Array<number>(2 * r).fill(0);
  else if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    pads = Array<number>(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const total = Math.max((yShape[i + 2]! - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - xShape[i + 2]!, 0);
      const small = Math.floor(total / 2);
      pads[i] = auto === 'SAME_UPPER' ? small : total - small;
      pads[i + r] = total - pads[i]!;
    }
  }
  return { kernel, strides, dilations, pads, group: n.attrInt('group', 1) };
}

/**
 * Patches of `x` for each output position of a conv with geometry `geo`: [N, C*K, L] (K the kernel
 * size, L the output positions), channel c*K + i holding kernel tap i of input channel c, so that
 * a group's channels are contiguous. A 1x1 stride-1 unpadded conv's patches are x itself.
 */
export function convPatches(e: GradEmitter, x: string, geo: ConvGeometry, yShape: readonly number[]): string {
  const xs = e.shape(x);
  const [n, c] = xs as [number, number];
  const k = geo.kernel.reduce((a, b) => a * b, 1);
  const l = yShape.slice(2).reduce((a, b) => a * b, 1);
  const plain = k === 1 && geo.strides.every((s) => s === 1) && geo.pads.every((p) => p === 0);
  if (plain) return e.reshape(x, [n, c, l]);
  const onehot = new Float32Array(c * k * k);
  for (let ch = 0; ch < c; ch++) for (let i = 0; i < k; i++) onehot[(ch * k + i) * k + i] = 1;
  const w = e.constFloat(onehot, [c * k, 1, ...geo.kernel], x);
  const p = e.op('Conv', [x, w], {
    group: c,
    kernel_shape: geo.kernel,
    strides: geo.strides,
    pads: geo.pads,
    dilations: geo.dilations,
  });
  return e.reshape(p, [n, c * k, l]);
}

/**
 * A depthwise conv's weight gradient tap by tap: for each kernel tap, the strided slice of the
 * padded input that tap reads, times dy, summed to one value per channel. Measured against the
 * one-hot patches and MatMul (scripts/bench-train-step.ts, PP-OCRv4 det's layers, 2 threads): 5x5
 * over 192x20x20 1.2 vs 6.4 ms, 3x3 over 96x80x80 equal at batch 1 and slower at batch 4; so
 * kernels above 3x3 only. Undefined where it does not apply.
 */
function depthwiseTaps(e: GradEmitter, x: string, dy: string, geo: ConvGeometry, wShape: readonly number[]): string | undefined {
  const xs = e.shape(x);
  const ys = e.shape(dy);
  const c = xs[1]!;
  const k = geo.kernel.reduce((a, b) => a * b, 1);
  if (e.opset < 11 || geo.group !== c || wShape[0] !== c || wShape[1] !== 1 || k <= 9) return undefined;
  const r = geo.kernel.length;
  const padded = geo.pads.some((p) => p > 0)
    ? e.op('Pad', [x, e.constInt64([0, 0, ...geo.pads.slice(0, r), 0, 0, ...geo.pads.slice(r)])])
    : x;
  const axes = Array.from({ length: r }, (_, i) => i + 2);
  const summed = [0, ...axes];
  const taps: string[] = [];
  for (let t = 0; t < k; t++) {
    // tap t's multi-index, last axis fastest (the weight's layout)
    const idx: number[] = [];
    for (let i = r - 1, rest = t; i >= 0; i--) {
      idx[i] = rest % geo.kernel[i]!;
      rest = Math.floor(rest / geo.kernel[i]!);
    }
    const starts = idx.map((v, i) => v * geo.dilations[i]!);
    const ends = starts.map((s0, i) => s0 + (ys[i + 2]! - 1) * geo.strides[i]! + 1);
    const slice = sliceOf(e, padded, axes, starts, ends, geo.strides);
    taps.push(e.reshape(e.reduceSum(e.op('Mul', [slice, dy]), summed, false), [c, 1]));
  }
  return e.reshape(e.op('Concat', taps, { axis: 1 }), wShape);
}

/**
 * A depthwise conv's weight gradient as one Conv: per channel, the correlation of the padded
 * input with dy is a depthwise Conv whose kernel is dy itself (batch and channels folded into
 * N*C groups of one image, the original stride as dilation and its dilation as stride), giving
 * the kernel's taps; summed over the batch. Three or four nodes where the tap route emitted four
 * per tap (100 for a 5x5 kernel: node dispatch dominated PP-OCRv4 det's backward) and the patch
 * route a K-times copy of the input. Undefined where it does not apply.
 */
function depthwiseCorrelation(e: GradEmitter, x: string, dy: string, geo: ConvGeometry, wShape: readonly number[]): string | undefined {
  const xs = e.shape(x);
  const ys = e.shape(dy);
  const [nb, c] = xs as [number, number];
  if (geo.group !== c || wShape[0] !== c || wShape[1] !== 1 || c === 1) return undefined;
  const r = geo.kernel.length;
  const out = e.op('Conv', [e.reshape(x, [1, nb * c, ...xs.slice(2)]), e.reshape(dy, [nb * c, 1, ...ys.slice(2)])], {
    group: nb * c,
    kernel_shape: ys.slice(2),
    strides: geo.dilations,
    dilations: geo.strides,
    pads: geo.pads,
  });
  // rows past the last tap (a strided conv's input rows its last window did not reach) are dropped
  const os = e.shape(out);
  const over = geo.kernel.some((k, i) => os[i + 2]! !== k);
  const taps = over
    ? sliceOf(
        e,
        out,
        Array.from({ length: r }, (_, i) => i + 2),
        geo.kernel.map(() => 0),
        geo.kernel,
      )
    : out;
  if (nb === 1) return e.reshape(taps, wShape);
  return e.reshape(e.reduceSum(e.reshape(taps, [nb, c, ...geo.kernel]), [0], false), wShape);
}

/**
 * The weight gradient of a conv y = Conv(x, W) with geometry `geo` ([M, C/G, k...] = `wShape`),
 * given dy: for each group, dy's rows times the patches of x, summed over the batch. ConvTranspose
 * uses it too, with its output gradient as the conv input (its input gradient is a Conv of it).
 */
export function convWeightGrad(
  e: GradEmitter,
  x: string,
  dy: string,
  geo: ConvGeometry,
  wShape: readonly number[],
  depthwise: DepthwiseRoute = 'conv',
): string {
  const special =
    depthwise === 'conv'
      ? depthwiseCorrelation(e, x, dy, geo, wShape)
      : depthwise === 'taps'
        ? depthwiseTaps(e, x, dy, geo, wShape)
        : undefined;
  if (special) return special;
  const xs = e.shape(x);
  const ys = e.shape(dy);
  const [nb, cin] = xs as [number, number];
  const m = wShape[0]!;
  const g = geo.group;
  const k = geo.kernel.reduce((a, c) => a * c, 1);
  const l = ys.slice(2).reduce((a, c) => a * c, 1);
  const kg = (cin / g) * k;
  const mg = m / g;
  const patches = e.reshape(convPatches(e, x, geo, ys), [nb, g, kg, l]);
  if (nb > 1 && mg > l) {
    // Few output positions and many output channels (a deep layer's small map): the per-image
    // products below ([N, G, Cg*K, Mg]) would outgrow the patches, and summing them over the
    // batch cost more than the products (MNIST's 32->64 3x3 at 7x7, batch 32: the ReduceSum of
    // [32, 288, 64] took 9 % of the step). So the batch joins the positions as one contraction
    // instead: the patches and dy with their batch moved next to their positions (copies of
    // whole rows), one product.
    const lead = g === 1 ? [] : [g];
    const byRows = (v: string, rows: number): string => e.reshape(e.op('Transpose', [v], { perm: [1, 2, 0, 3] }), [...lead, rows, nb * l]);
    const p = byRows(patches, kg);
    const d = byRows(e.reshape(dy, [nb, g, mg, l]), mg);
    // [Mg, N*L] x [N*L, Cg*K] = the weight's own [M, C/G, k...] order, no transpose after
    // (onnxruntime folds the Transpose into its MatMul kernel; Gemm before opset 11 needs a C)
    const w = e.op('MatMul', [d, e.op('Transpose', [p], { perm: g === 1 ? [1, 0] : [0, 2, 1] })]);
    return e.reshape(w, wShape);
  }
  const dyT = e.op('Transpose', [e.reshape(dy, [nb, g, mg, l])], { perm: [0, 1, 3, 2] });
  // [N, G, Cg*K, Mg]: the big patches stay untransposed; the small product is transposed instead
  const prod = e.op('MatMul', [patches, dyT]);
  // a batch of one needs no sum (onnxruntime's ReduceSum copies)
  const summed = nb === 1 ? e.reshape(prod, [g, kg, mg]) : e.reduceSum(prod, [0], false);
  const t = e.op('Transpose', [summed], { perm: [0, 2, 1] });
  return e.reshape(t, wShape);
}

const lastTwoSwapped = (rank: number): number[] => [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];

/**
 * The Conv with weight W' (W's in/out channels swapped within each group, kernel flipped) that is
 * the adjoint of a stride-1 Conv: dx = Conv(dy, W') with pads (k-1)*d - p. onnxruntime's Conv
 * kernels are several times faster than its ConvTranspose (measured on PP-OCRv4 det, where
 * ConvTranspose was the largest cost of a training step), so stride-1 convs use it; undefined where
 * it does not apply (strided, pads beyond the kernel, Slice without steps before opset 10).
 */
function adjointConv(e: GradEmitter, dy: string, w: string, ws: readonly number[], geo: ConvGeometry): string | undefined {
  const r = geo.kernel.length;
  if (e.opset < 10 || geo.strides.some((s) => s !== 1)) return undefined;
  const reach = geo.kernel.map((k, i) => (k - 1) * geo.dilations[i]!);
  if (geo.pads.some((p, i) => p > reach[i % r]!)) return undefined;
  const [m, cg] = ws as [number, number];
  const g = geo.group;
  const mg = m / g;
  let wt = w;
  if (mg !== 1 || cg !== 1) {
    // [G, Mg, Cg, k...] -> [G, Cg, Mg, k...]: a depthwise conv's weight needs no swap
    const t = e.op('Transpose', [e.reshape(w, [g, mg, cg, ...geo.kernel])], { perm: [0, 2, 1, ...geo.kernel.map((_, i) => i + 3)] });
    wt = e.reshape(t, [g * cg, mg, ...geo.kernel]);
  }
  const flip = geo.kernel.map((k, i) => (k > 1 ? i + 2 : -1)).filter((a) => a >= 0);
  if (flip.length) {
    const minus = flip.map(() => -1);
    wt = sliceOf(
      e,
      wt,
      flip,
      minus,
      flip.map(() => -Number.MAX_SAFE_INTEGER),
      minus,
    );
  }
  return e.op('Conv', [dy, wt], {
    group: g,
    kernel_shape: geo.kernel,
    strides: geo.kernel.map(() => 1),
    pads: geo.pads.map((p, i) => reach[i % r]! - p),
    dilations: geo.dilations,
  });
}

/** How the Conv rule computes its input gradient ('auto': a Conv where one applies, else ConvTranspose). */
export interface ConvGradOptions {
  inputGrad?: 'auto' | 'convTranspose';
  /** How a depthwise conv's weight gradient is computed (default 'conv'; the others for comparison). */
  depthwise?: DepthwiseRoute;
}

/**
 * 'conv': one Conv correlating input and dy per channel; 'taps': a slice per kernel tap (above
 * 3x3); 'patches': patches and MatMul as any conv.
 */
export type DepthwiseRoute = 'conv' | 'taps' | 'patches';

export function convRule(o: ConvGradOptions = {}): GradRule {
  return {
    diff: [0, 1, 2],
    grad: (n, [dy], need, e) => {
      const [x, w, b] = n.inputs as [string, string, string | undefined];
      const xs = e.shape(x);
      const ws = e.shape(w);
      const ys = e.shape(n.outputs[0]!);
      const geo = convGeometry(n, xs, ws, ys);
      const r = xs.length - 2;
      const out: (string | undefined)[] = [];
      if (need[0])
        out[0] =
          ((o.inputGrad ?? 'auto') === 'auto' ? adjointConv(e, dy!, w, ws, geo) : undefined) ?? transposedConv(n, e, dy!, w, xs, ys, geo);
      if (need[1]) out[1] = convWeightGrad(e, x, dy!, geo, ws, o.depthwise ?? 'conv');
      if (need[2] && b) {
        // a batch of one sums the trailing axes only: onnxruntime's fast contiguous reduction
        const spatial = Array.from({ length: r }, (_, i) => i + 2);
        out[2] = xs[0] === 1 ? e.reshape(e.reduceSum(dy!, spatial, false), [ws[0]!]) : e.reduceSum(dy!, [0, ...spatial], false);
      }
      return out;
    },
  };
}

/** dx of any Conv as a ConvTranspose with the same weight and geometry. */
function transposedConv(
  n: Node,
  e: GradEmitter,
  dy: string,
  w: string,
  xs: readonly number[],
  ys: readonly number[],
  geo: ConvGeometry,
): string {
  const r = xs.length - 2;
  // ConvTranspose maps the output grid back onto the input's; output_padding restores the rows a
  // strided conv dropped at the end (out = s*(in-1) + op + (k-1)*d + 1 - pads)
  const outputPadding = Array.from({ length: r }, (_, i) => {
    const full = geo.strides[i]! * (ys[i + 2]! - 1) + (geo.kernel[i]! - 1) * geo.dilations[i]! + 1 - geo.pads[i]! - geo.pads[i + r]!;
    return xs[i + 2]! - full;
  });
  if (outputPadding.some((p) => p < 0 || p >= Math.max(...geo.strides, ...geo.dilations))) {
    throw new EdgefitError('UNSUPPORTED', `${n.label()}: no ConvTranspose maps its output gradient back onto its input`);
  }
  return e.op('ConvTranspose', [dy, w], {
    group: geo.group,
    kernel_shape: geo.kernel,
    strides: geo.strides,
    pads: geo.pads,
    dilations: geo.dilations,
    ...(outputPadding.some((p) => p > 0) ? { output_padding: outputPadding } : {}),
  });
}

/** op(P) @ op(Q) as a Gemm (alpha folded in). */
function gemm(e: GradEmitter, p: string, tp: boolean, q: string, tq: boolean, alpha: number): string {
  return e.op('Gemm', [p, q], { transA: tp ? 1 : 0, transB: tq ? 1 : 0, alpha: floatAttr(alpha) });
}

const gemmRule: GradRule = {
  diff: [0, 1, 2],
  grad: (n, [dy], need, e) => {
    const [a, b, c] = n.inputs as [string, string, string | undefined];
    const ta = n.attrInt('transA', 0) === 1;
    const tb = n.attrInt('transB', 0) === 1;
    const alpha = n.attrFloat('alpha', 1);
    const beta = n.attrFloat('beta', 1);
    // Y = alpha * A' B' + beta * C; dA' = dY B'^T, dB' = A'^T dY, each transposed back where stored transposed
    return [
      need[0] ? (ta ? gemm(e, b, tb, dy!, true, alpha) : gemm(e, dy!, false, b, !tb, alpha)) : undefined,
      need[1] ? (tb ? gemm(e, dy!, true, a, ta, alpha) : gemm(e, a, !ta, dy!, false, alpha)) : undefined,
      need[2] && c ? e.unbroadcast(beta === 1 ? dy! : e.op('Mul', [dy!, e.constFloat([beta], [], dy!)]), e.shape(c)) : undefined,
    ];
  },
};

const matmul: GradRule = {
  diff: [0, 1],
  grad: (n, [dy], need, e) => {
    const [a, b] = n.inputs as [string, string];
    const as = e.shape(a);
    const bs = e.shape(b);
    // numpy semantics: a 1-D operand is a row (A) or a column (B) whose dim the result drops
    const a1 = as.length === 1;
    const b1 = bs.length === 1;
    const a2 = a1 ? e.reshape(a, [1, as[0]!]) : a;
    const b2 = b1 ? e.reshape(b, [bs[0]!, 1]) : b;
    const a2s = a1 ? [1, as[0]!] : as;
    const b2s = b1 ? [bs[0]!, 1] : bs;
    const ys = e.shape(n.outputs[0]!);
    const batch = ys.slice(0, ys.length - (a1 ? 0 : 1) - (b1 ? 0 : 1));
    const dyc = a1 || b1 ? e.reshape(dy!, [...batch, a2s[a2s.length - 2]!, b2s[b2s.length - 1]!]) : dy!;
    const out: (string | undefined)[] = [];
    if (need[0]) {
      const bt = e.op('Transpose', [b2], { perm: lastTwoSwapped(b2s.length) });
      out[0] = e.reshape(e.unbroadcast(e.op('MatMul', [dyc, bt]), a2s), as);
    }
    if (need[1]) {
      const at = e.op('Transpose', [a2], { perm: lastTwoSwapped(a2s.length) });
      out[1] = e.reshape(e.unbroadcast(e.op('MatMul', [at, dyc]), b2s), bs);
    }
    return out;
  },
};

export const LINEAR_GRADS: Readonly<Record<string, GradRule>> = {
  Conv: convRule(),
  Gemm: gemmRule,
  MatMul: matmul,
};
