// Gradient rules of the pools. An average pool's adjoint spreads each output's gradient evenly
// over its window: a ConvTranspose with a constant all-ones kernel per channel (group = C), after
// dividing by each window's count; a max pool's routes it to the window's argmax, which MaxPool's
// own 'Indices' output names, by a ScatterElements into zeros (adding where windows overlap, from
// opset 16; below it, by the window tap each argmax is and a ConvTranspose with one-hot kernels).
import type { Node } from '../../../../ir/node.js';
import type { GradEmitter, GradRule } from '../types.js';
import { convGeometry } from './linear.js';
import { numel, padOrCrop, refuse, sliceOf, zeros } from './layout.js';

const spatialAxes = (rank: number): number[] => Array.from({ length: rank - 2 }, (_, i) => i + 2);

/** ONNX Cast's 'to' for a float dtype. */
const castTo = (e: GradEmitter, like: string): number => (e.dtype(like) === 'float64' ? 11 : 1);

/** Where x equals its max y (broadcast): Equal, which takes floats from opset 11 on; before, not below the max. */
const atMax = (e: GradEmitter, x: string, y: string): string =>
  e.opset >= 11 ? e.op('Equal', [x, y]) : e.op('Not', [e.op('Less', [x, y])]);

const globalAveragePool: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    // scaled while it is one value per channel, then spread
    const scaled = e.op('Mul', [dy!, e.constFloat([1 / numel(xs.slice(2))], [], dy!)]);
    return [e.op('Expand', [scaled, e.constInt64(xs)])];
  },
};

const globalMaxPool: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const x = n.inputs[0]!;
    const rank = e.shape(x).length;
    // the mask of the maximum; ties share the gradient, so it sums to dy as the max's derivative does
    const mask = e.op('Cast', [atMax(e, x, n.outputs[0]!)], { to: castTo(e, dy!) });
    const count = e.reduceSum(mask, spatialAxes(rank));
    return [e.op('Mul', [mask, e.op('Div', [dy!, count])])];
  },
};

/** The pool's geometry, auto_pad resolved to explicit pads (a pool's kernel is its kernel_shape). */
function poolGeometry(n: Node, e: GradEmitter): ReturnType<typeof convGeometry> {
  const xs = e.shape(n.inputs[0]!);
  const kernel = n.attrInts('kernel_shape')!;
  return convGeometry(n, xs, [0, 0, ...kernel], e.shape(n.outputs[0]!));
}

/**
 * A grouped ConvTranspose of `g` with `w` over the pool's windows, landing on the input's grid:
 * the pool's begin pads crop the start, and the end either crops (pads) or grows by the rows no
 * window reached (output_padding, when below the stride), all inside the ConvTranspose; a Slice
 * and Pad only where ConvTranspose cannot say it.
 */
function spreadOverWindows(
  e: GradEmitter,
  g: string,
  w: string,
  group: number,
  geo: ReturnType<typeof convGeometry>,
  xs: readonly number[],
): string {
  const r = xs.length - 2;
  const os = e.shape(g).slice(2);
  const span = (i: number): number => geo.strides[i]! * (os[i]! - 1) + (geo.kernel[i]! - 1) * geo.dilations[i]! + 1;
  const endPad = Array.from({ length: r }, (_, i) => span(i) - geo.pads[i]! - xs[i + 2]!);
  const attrs = { group, kernel_shape: geo.kernel, strides: geo.strides, dilations: geo.dilations };
  if (endPad.every((p, i) => p >= 0 || -p < geo.strides[i]!)) {
    const pads = [...geo.pads.slice(0, r), ...endPad.map((p) => Math.max(p, 0))];
    const outputPadding = endPad.map((p) => Math.max(-p, 0));
    return e.op('ConvTranspose', [g, w], {
      ...attrs,
      pads,
      ...(outputPadding.some((p) => p > 0) ? { output_padding: outputPadding } : {}),
    });
  }
  const full = e.op('ConvTranspose', [g, w], attrs);
  return padOrCrop(e, full, [0, 0, ...geo.pads.slice(0, r).map((p) => -p)], [0, 0, ...endPad.map((p) => -p)]);
}

const averagePool: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    const ys = e.shape(n.outputs[0]!);
    const geo = poolGeometry(n, e);
    const r = xs.length - 2;
    const includePad = n.attrInt('count_include_pad', 0) === 1;
    // each window's divisor, as onnxruntime counts it: its taps inside the padded input
    // (count_include_pad) or inside the input itself; separable, so a product of per-axis counts
    const perAxis = Array.from({ length: r }, (_, i) => {
      const [k, s, dl, pb, pe, d] = [geo.kernel[i]!, geo.strides[i]!, geo.dilations[i]!, geo.pads[i]!, geo.pads[i + r]!, xs[i + 2]!];
      return Array.from({ length: ys[i + 2]! }, (_, o) => {
        const taps = Array.from({ length: k }, (_, j) => o * s - pb + j * dl);
        return taps.filter((p) => p < (includePad ? d + pe : d) && p >= (includePad ? -pb : 0)).length;
      });
    });
    const outSpatial = ys.slice(2);
    const counts = new Float32Array(numel(outSpatial));
    counts.forEach((_, flat) => {
      let c = 1;
      let rest = flat;
      for (let i = r - 1; i >= 0; i--) {
        c *= perAxis[i]![rest % outSpatial[i]!]!;
        rest = Math.floor(rest / outSpatial[i]!);
      }
      counts[flat] = 1 / c;
    });
    const uniform = counts.every((c) => c === counts[0]);
    const scaled = e.op('Mul', [dy!, uniform ? e.constFloat([counts[0]!], [], dy!) : e.constFloat(counts, [1, 1, ...outSpatial], dy!)]);
    // spread over the windows in padded coordinates, then drop the padding (and rows no window reached)
    const c = xs[1]!;
    const ones = e.constFloat(new Float32Array(c * numel(geo.kernel)).fill(1), [c, 1, ...geo.kernel], dy!);
    return [spreadOverWindows(e, scaled, ones, c, geo, xs)];
  },
};

/**
 * MaxPool's gradient at any opset: which kernel tap of its window each output's argmax is (index
 * arithmetic on Indices), dy split by tap into C*K channels, and a grouped ConvTranspose with
 * one-hot kernels puts each tap's gradient where that tap reads, adding where windows overlap.
 */
function routeByTap(
  n: Node,
  e: GradEmitter,
  indices: string,
  dy: string,
  xs: readonly number[],
  ys: readonly number[],
  geo: ReturnType<typeof convGeometry>,
): string {
  const [nb, c] = xs as [number, number];
  const sp = xs.slice(2);
  const out = ys.slice(2);
  const k = numel(geo.kernel);
  // an argmax's flat index within its plane, minus its window's first (padded) position, is
  // sum_i tap_i * dilation_i * planeStride_i: one constant offset per kernel tap
  const planeStride = sp.map((_, i) => numel(sp.slice(i + 1)));
  const unflat = (flat: number, dims: readonly number[]): number[] =>
    dims.map((_, i) => Math.floor(flat / numel(dims.slice(i + 1))) % dims[i]!);
  const starts = Array.from({ length: numel(out) }, (_, o) =>
    unflat(o, out).reduce((acc, oi, i) => acc + (oi * geo.strides[i]! - geo.pads[i]!) * planeStride[i]!, 0),
  );
  const offsets = Array.from({ length: k }, (_, t) =>
    unflat(t, geo.kernel).reduce((acc, ti, i) => acc + ti * geo.dilations[i]! * planeStride[i]!, 0),
  );
  // distinct unless a window is wider than the input (then two taps could share an offset)
  if (new Set(offsets).size !== k) throw refuse(n, 'MaxPool windows wider than the input');
  const pos = e.op('Mod', [indices, e.constInt64([numel(sp)], [])]);
  const rel = e.op('Sub', [pos, e.constInt64(starts, [1, 1, ...out])]);
  const taps = e.constInt64(offsets, [1, 1, k, ...out.map(() => 1)]);
  const isTap = e.op('Equal', [e.reshape(rel, [nb, c, 1, ...out]), taps]);
  const byTap = e.op('Where', [isTap, e.reshape(dy, [nb, c, 1, ...out]), e.constFloat([0], [], dy)]);
  const split = e.reshape(byTap, [nb, c * k, ...out]);
  const w = new Float32Array(c * k * k);
  for (let ch = 0; ch < c; ch++) for (let i = 0; i < k; i++) w[(ch * k + i) * k + i] = 1;
  return spreadOverWindows(e, split, e.constFloat(w, [c * k, 1, ...geo.kernel], dy), c, geo, xs);
}

/**
 * MaxPool's gradient when its 2-D windows tile the input (kernel = stride, no pads, no dilation,
 * floor mode: LeNet's and MNIST's 2x2/2): every input is in at most one window, so the mask of
 * each window's maximum, from the input reshaped into its windows, routes dy with elementwise ops
 * only (ties share it evenly, as GlobalMaxPool's do). A MaxPool re-run for its indices and a
 * scatter cost several times the whole forward pass on MNIST. Undefined where it does not apply.
 */
function maskRoute(
  e: GradEmitter,
  x: string,
  y: string,
  dy: string,
  xs: readonly number[],
  ys: readonly number[],
  geo: ReturnType<typeof convGeometry>,
): string | undefined {
  if (xs.length !== 4) return undefined;
  const [kh, kw] = geo.kernel as [number, number];
  if (geo.strides[0] !== kh || geo.strides[1] !== kw || geo.dilations.some((d) => d !== 1) || geo.pads.some((p) => p !== 0))
    return undefined;
  const [nb, c, h, w] = xs as [number, number, number, number];
  const [ho, wo] = ys.slice(2) as [number, number];
  if (ho * kh > h || wo * kw > w) return undefined; // ceil mode: a last window runs past the input
  // floor mode drops the rows and columns no window reads: they get no gradient
  const xc = ho * kh === h && wo * kw === w ? x : sliceOf(e, x, [2, 3], [0, 0], [ho * kh, wo * kw]);
  let dx: string;
  if (e.opset >= 13) {
    // (opset 13: Resize's roi and scales optional; onnxruntime's opset-11 Resize mapped some rows
    // elsewhere in the gradient check) y and the per-window share of dy upsampled onto x's grid (nearest, exact at integer scales):
    // every full-size op then reads same-shaped operands. onnxruntime's broadcast over a 6-D
    // window view with inner dims of 2 cost 4x more on MNIST (scripts/bench-train-step.ts --profile)
    const up = (v: string): string =>
      e.op('Resize', [v, '', '', e.constInt64([nb, c, ho * kh, wo * kw])], {
        mode: 'nearest',
        coordinate_transformation_mode: 'asymmetric',
        nearest_mode: 'floor',
      });
    const mask = e.op('Cast', [atMax(e, xc, up(y))], { to: castTo(e, dy) });
    // the window's tie count over its size, by an average pool of the mask
    const frac = e.op('AveragePool', [mask], { kernel_shape: [kh, kw], strides: [kh, kw] });
    const share = e.op('Div', [e.op('Mul', [dy, e.constFloat([1 / (kh * kw)], [], dy)]), frac]);
    dx = e.op('Mul', [mask, up(share)]);
  } else {
    const windows = e.reshape(xc, [nb, c, ho, kh, wo, kw]);
    const mask = e.op('Cast', [atMax(e, windows, e.reshape(y, [nb, c, ho, 1, wo, 1]))], { to: castTo(e, dy) });
    const share = e.op('Div', [e.reshape(dy, [nb, c, ho, 1, wo, 1]), e.reduceSum(mask, [3, 5])]);
    dx = e.reshape(e.op('Mul', [mask, share]), [nb, c, ho * kh, wo * kw]);
  }
  return xc === x ? dx : padOrCrop(e, dx, [0, 0, 0, 0], [0, 0, h - ho * kh, w - wo * kw]);
}

const maxPool: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const x = n.inputs[0]!;
    const xs = e.shape(x);
    const ys = e.shape(n.outputs[0]!);
    const geo = poolGeometry(n, e);
    if (n.attrInt('storage_order', 0) !== 0) throw refuse(n, 'MaxPool with storage_order=1 (column-major indices)');
    const tiled = maskRoute(e, x, n.outputs[0]!, dy!, xs, ys, geo);
    if (tiled) return [tiled];
    if (e.opset < 8) throw refuse(n, `MaxPool at opset ${e.opset} has no Indices output (opset 8+)`);
    // the argmax of each window, flattened over the whole input (onnxruntime counts batch and channel in);
    // taken from the forward node when it already outputs it, else from a second MaxPool of the same input
    let indices = n.outputs[1];
    if (!indices) {
      const attrs = Object.fromEntries([...n.attrs].filter(([k]) => k !== 'storage_order'));
      indices = e.emit('MaxPool', [x], attrs, 2)[1]!;
    }
    // windows overlap when a (dilated) kernel is longer than its stride: then an input can be the
    // argmax of several windows and its gradients must add: ScatterElements' reduction (opset 16+),
    // or below opset 16 the window-tap route
    const overlap = geo.kernel.some((k, i) => (k - 1) * geo.dilations[i]! + 1 > geo.strides[i]!);
    if (overlap && e.opset < 16) return [routeByTap(n, e, indices, dy!, xs, ys, geo)];
    const flatIdx = e.reshape(indices, [numel(ys)]);
    const scattered = e.op('ScatterElements', [zeros(e, [numel(xs)], dy!), flatIdx, e.reshape(dy!, [numel(ys)])], {
      axis: 0,
      ...(overlap ? { reduction: 'add' } : {}),
    });
    // shape inference has no ScatterElements rule, and an untyped value reads as float32: in float64
    // graphs a (same-type) Cast names the type, so rules downstream make float64 constants
    return [e.reshape(e.dtype(dy!) === 'float64' ? e.op('Cast', [scattered], { to: 11 }) : scattered, xs)];
  },
};

export const POOL_GRADS: Readonly<Record<string, GradRule>> = {
  GlobalAveragePool: globalAveragePool,
  GlobalMaxPool: globalMaxPool,
  AveragePool: averagePool,
  MaxPool: maxPool,
};
