// Gradient rules of the pools. An average pool's adjoint spreads each output's gradient evenly
// over its window: a ConvTranspose with a constant all-ones kernel per channel (group = C), after
// dividing by each window's count; a max pool's routes it to the window's argmax, which MaxPool's
// own 'Indices' output names, by a ScatterElements into zeros (adding where windows overlap, from
// opset 16; below it, by the window tap each argmax is and a ConvTranspose with one-hot kernels).
import type { Node } from '../../../../ir/node.js';
import type { GradEmitter, GradRule } from '../types.js';
import { convGeometry } from './linear.js';
import { numel, padOrCrop, refuse, zeros } from './layout.js';

const spatialAxes = (rank: number): number[] => Array.from({ length: rank - 2 }, (_, i) => i + 2);

/** ONNX Cast's 'to' for a float dtype. */
const castTo = (e: GradEmitter, like: string): number => (e.dtype(like) === 'float64' ? 11 : 1);

const globalAveragePool: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    const spread = e.op('Expand', [dy!, e.constInt64(xs)]);
    return [e.op('Mul', [spread, e.constFloat([1 / numel(xs.slice(2))], [], dy!)])];
  },
};

const globalMaxPool: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const x = n.inputs[0]!;
    const rank = e.shape(x).length;
    // the mask of the maximum; ties share the gradient, so it sums to dy as the max's derivative does
    const mask = e.op('Cast', [e.op('Equal', [x, n.outputs[0]!])], { to: castTo(e, dy!) });
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

const averagePool: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    const ys = e.shape(n.outputs[0]!);
    const geo = poolGeometry(n, e);
    const r = xs.length - 2;
    if (geo.dilations.some((d) => d !== 1)) throw refuse(n, 'AveragePool with dilations');
    const includePad = n.attrInt('count_include_pad', 0) === 1;
    // each window's divisor, as onnxruntime counts it: the window clipped to the padded input
    // (count_include_pad) or to the input itself; separable, so a product of per-axis counts
    const perAxis = Array.from({ length: r }, (_, i) => {
      const [k, s, pb, pe, d] = [geo.kernel[i]!, geo.strides[i]!, geo.pads[i]!, geo.pads[i + r]!, xs[i + 2]!];
      return Array.from({ length: ys[i + 2]! }, (_, o) => {
        const start = o * s - pb;
        const end = Math.min(start + k, d + pe);
        return includePad ? end - start : Math.min(end, d) - Math.max(start, 0);
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
    const full = e.op('ConvTranspose', [scaled, ones], { group: c, kernel_shape: geo.kernel, strides: geo.strides });
    const fs = e.shape(full);
    const begin = [0, 0, ...geo.pads.slice(0, r).map((p) => -p)];
    const end = [0, 0, ...Array.from({ length: r }, (_, i) => xs[i + 2]! + geo.pads[i]! - fs[i + 2]!)];
    return [padOrCrop(e, full, begin, end)];
  },
};

/**
 * MaxPool's gradient at any opset: which kernel tap of its window each output's argmax is (index
 * arithmetic on Indices), dy split by tap into C*K channels, and a grouped ConvTranspose with
 * one-hot kernels puts each tap's gradient where that tap reads, adding where windows overlap.
 */
function routeByTap(
  e: GradEmitter,
  indices: string,
  dy: string,
  xs: readonly number[],
  ys: readonly number[],
  geo: ReturnType<typeof convGeometry>,
): string {
  const r = xs.length - 2;
  const [nb, c] = xs as [number, number];
  const sp = xs.slice(2);
  const out = ys.slice(2);
  const k = numel(geo.kernel);
  const pos = e.op('Mod', [indices, e.constInt64([numel(sp)], [])]);
  let tap: string | undefined;
  for (let i = 0; i < r; i++) {
    const inner = numel(sp.slice(i + 1));
    const coord = e.op('Mod', [e.op('Div', [pos, e.constInt64([inner], [])]), e.constInt64([sp[i]!], [])]);
    // the window's first row on this axis, per output position, broadcast along this axis only
    const starts = Array.from({ length: out[i]! }, (_, o) => o * geo.strides[i]! - geo.pads[i]!);
    const at = [1, 1, ...out.map((d, j) => (j === i ? d : 1))];
    const t = e.op('Div', [e.op('Sub', [coord, e.constInt64(starts, at)]), e.constInt64([geo.dilations[i]!], [])]);
    const weighted = e.op('Mul', [t, e.constInt64([numel(geo.kernel.slice(i + 1))], [])]);
    tap = tap ? e.op('Add', [tap, weighted]) : weighted;
  }
  const taps = e.constInt64(
    Array.from({ length: k }, (_, i) => i),
    [1, 1, k, ...out.map(() => 1)],
  );
  const onehot = e.op('Cast', [e.op('Equal', [e.reshape(tap!, [nb, c, 1, ...out]), taps])], { to: castTo(e, dy) });
  const split = e.reshape(e.op('Mul', [onehot, e.reshape(dy, [nb, c, 1, ...out])]), [nb, c * k, ...out]);
  const w = new Float32Array(c * k * k);
  for (let ch = 0; ch < c; ch++) for (let i = 0; i < k; i++) w[(ch * k + i) * k + i] = 1;
  const full = e.op('ConvTranspose', [split, e.constFloat(w, [c * k, 1, ...geo.kernel], dy)], {
    group: c,
    kernel_shape: geo.kernel,
    strides: geo.strides,
    dilations: geo.dilations,
  });
  const fs = e.shape(full);
  const begin = [0, 0, ...geo.pads.slice(0, r).map((p) => -p)];
  const end = [0, 0, ...Array.from({ length: r }, (_, i) => xs[i + 2]! + geo.pads[i]! - fs[i + 2]!)];
  return padOrCrop(e, full, begin, end);
}

const maxPool: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const x = n.inputs[0]!;
    const xs = e.shape(x);
    const ys = e.shape(n.outputs[0]!);
    const geo = poolGeometry(n, e);
    if (n.attrInt('storage_order', 0) !== 0) throw refuse(n, 'MaxPool with storage_order=1 (column-major indices)');
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
    if (overlap && e.opset < 16) return [routeByTap(e, indices, dy!, xs, ys, geo)];
    const flatIdx = e.reshape(indices, [numel(ys)]);
    const scattered = e.op('ScatterElements', [zeros(e, [numel(xs)], dy!), flatIdx, e.reshape(dy!, [numel(ys)])], {
      axis: 0,
      ...(overlap ? { reduction: 'add' } : {}),
    });
    return [e.reshape(scattered, xs)];
  },
};

export const POOL_GRADS: Readonly<Record<string, GradRule>> = {
  GlobalAveragePool: globalAveragePool,
  GlobalMaxPool: globalMaxPool,
  AveragePool: averagePool,
  MaxPool: maxPool,
};
