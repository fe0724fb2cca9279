// Gradient rules of the weight layers: Conv, Gemm, MatMul (BatchNormalization and ConvTranspose
// in their own modules). Conv's input gradient is a ConvTranspose with the same weight and
// geometry; its weight gradient is a MatMul of the output gradient with patches of the input,
// the patches made by a grouped Conv with one-hot kernels: onnxruntime's fast Conv and MatMul
// kernels do all the work (a Conv over batch/channel-transposed tensors was 2.5x slower).
import { EdgefitError } from '../../../../errors.js';
import type { Node } from '../../../../ir/node.js';
import { floatAttr } from '../attrs.js';
import type { GradEmitter, GradRule } from '../types.js';

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
 * The weight gradient of a conv y = Conv(x, W) with geometry `geo` ([M, C/G, k...] = `wShape`),
 * given dy: for each group, dy's rows times the patches of x, summed over the batch. ConvTranspose
 * uses it too, with its output gradient as the conv input (its input gradient is a Conv of it).
 */
export function convWeightGrad(e: GradEmitter, x: string, dy: string, geo: ConvGeometry, wShape: readonly number[]): string {
  const xs = e.shape(x);
  const ys = e.shape(dy);
  const [nb, cin] = xs as [number, number];
  const m = wShape[0]!;
  const g = geo.group;
  const k = geo.kernel.reduce((a, c) => a * c, 1);
  const l = ys.slice(2).reduce((a, c) => a * c, 1);
  const patches = e.reshape(convPatches(e, x, geo, ys), [nb, g, (cin / g) * k, l]);
  const dyT = e.op('Transpose', [e.reshape(dy, [nb, g, m / g, l])], { perm: [0, 1, 3, 2] });
  // [N, G, Cg*K, Mg]: the big patches stay untransposed; the small product is transposed instead
  const prod = e.op('MatMul', [patches, dyT]);
  const summed = e.reduceSum(prod, [0], false);
  const t = e.op('Transpose', [summed], { perm: [0, 2, 1] });
  return e.reshape(t, wShape);
}

const lastTwoSwapped = (rank: number): number[] => [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];

const conv: GradRule = {
  diff: [0, 1, 2],
  grad: (n, [dy], need, e) => {
    const [x, w, b] = n.inputs as [string, string, string | undefined];
    const xs = e.shape(x);
    const ws = e.shape(w);
    const ys = e.shape(n.outputs[0]!);
    const geo = convGeometry(n, xs, ws, ys);
    const r = xs.length - 2;
    const out: (string | undefined)[] = [];
    if (need[0]) {
      // ConvTranspose maps the output grid back onto the input's; output_padding restores the rows a
      // strided conv dropped at the end (out = s*(in-1) + op + (k-1)*d + 1 - pads)
      const outputPadding = Array.from({ length: r }, (_, i) => {
        const full = geo.strides[i]! * (ys[i + 2]! - 1) + (geo.kernel[i]! - 1) * geo.dilations[i]! + 1 - geo.pads[i]! - geo.pads[i + r]!;
        return xs[i + 2]! - full;
      });
      if (outputPadding.some((p) => p < 0 || p >= Math.max(...geo.strides, ...geo.dilations))) {
        throw new EdgefitError('UNSUPPORTED', `${n.label()}: no ConvTranspose maps its output gradient back onto its input`);
      }
      out[0] = e.op('ConvTranspose', [dy!, w], {
        group: geo.group,
        kernel_shape: geo.kernel,
        strides: geo.strides,
        pads: geo.pads,
        dilations: geo.dilations,
        ...(outputPadding.some((p) => p > 0) ? { output_padding: outputPadding } : {}),
      });
    }
    if (need[1]) out[1] = convWeightGrad(e, x, dy!, geo, ws);
    if (need[2] && b) {
      out[2] = e.reduceSum(dy!, [0, ...Array.from({ length: r }, (_, i) => i + 2)], false);
    }
    return out;
  },
};

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
  Conv: conv,
  Gemm: gemmRule,
  MatMul: matmul,
};
