// Gradient rule of Resize (and the older Upsample), nearest and linear. Both resamplings are
// separable: along each axis the output is a constant matrix A (outLen x inLen) times the input,
// one 1 per row for nearest, two interpolation weights per row for linear. The gradient is A^T
// along each axis. The matrices are computed here with onnxruntime's own coordinate arithmetic
// (float32, same rounding), so they match what the forward op did. An integer nearest upsampling
// that copies each pixel into a block (PP-OCR det's 2x, asymmetric + floor) is a reshape and one
// ReduceSum over the copies instead of a MatMul.
import type { Node } from '../../../../ir/node.js';
import type { GradEmitter, GradRule } from '../types.js';
import { mixAxis, refuse } from './layout.js';

const f = Math.fround;

interface ResizeSpec {
  mode: 'nearest' | 'linear';
  coord: string;
  nearest: string;
  /** Per input axis: the scale onnxruntime divides by. */
  scales: number[];
}

function floats(n: Node, i: number, e: GradEmitter): number[] | undefined {
  const c = n.inputs[i] ? e.constant(n.inputs[i]) : undefined;
  const v = c?.toNumbers();
  return v && v.length ? v : undefined;
}

function resizeSpec(n: Node, e: GradEmitter): ResizeSpec {
  const xs = e.shape(n.inputs[0]!);
  const ys = e.shape(n.outputs[0]!);
  const mode = n.attrString('mode') ?? 'nearest';
  if (mode !== 'nearest' && mode !== 'linear') throw refuse(n, `Resize mode '${mode}' (nearest and linear have gradient rules)`);
  // Upsample and opset-10 Resize: asymmetric coordinates, and nearest takes the floor (ceil when shrinking)
  const old = n.opType === 'Upsample' || e.opset < 11;
  const coord = old ? 'asymmetric' : (n.attrString('coordinate_transformation_mode') ?? 'half_pixel');
  const nearest = old ? 'simple' : (n.attrString('nearest_mode') ?? 'round_prefer_floor');
  if (coord === 'tf_crop_and_resize') throw refuse(n, 'Resize with tf_crop_and_resize (a region of interest)');
  if (n.attrInt('antialias', 0) && ys.some((d, i) => d < xs[i]!)) throw refuse(n, 'an antialiased downscaling Resize');
  if ((n.attrString('keep_aspect_ratio_policy') ?? 'stretch') !== 'stretch') throw refuse(n, 'Resize with keep_aspect_ratio_policy');
  let given: number[] | undefined;
  if (n.opType === 'Upsample') given = e.opset >= 9 ? floats(n, 1, e) : n.attrFloats('scales');
  else if (e.opset < 11) given = floats(n, 1, e);
  else if (!floats(n, 3, e)) given = floats(n, 2, e);
  const axes = n.attrInts('axes')?.map((a) => (a < 0 ? a + xs.length : a));
  const scales = xs.map((d, i) => {
    const k = axes ? axes.indexOf(i) : i;
    if (axes && k < 0) return 1;
    const s = given?.[k];
    if (s !== undefined) return f(s);
    // sizes given (or scales computed at run time): onnxruntime divides by out/in
    if (!given || ys[i]! % d === 0) return f(ys[i]! / d);
    throw refuse(n, `its scales are computed at run time and axis ${i} does not resize by an integer factor`);
  });
  return { mode, coord, nearest, scales };
}

/** onnxruntime's map from an output coordinate to an input one (upsamplebase.h), in float32. */
function original(coord: string, x: number, scale: number, inLen: number, outLen: number): number {
  switch (coord) {
    case 'half_pixel':
      return f(f(f(x + 0.5) / scale) - 0.5);
    case 'pytorch_half_pixel':
      return outLen > 1 ? f(f(f(x + 0.5) / scale) - 0.5) : 0;
    case 'tf_half_pixel_for_nearest':
      return f(f(x + 0.5) / scale);
    case 'align_corners':
      return outLen === 1 ? 0 : f(f(x * (inLen - 1)) / (outLen - 1));
    case 'half_pixel_symmetric': {
      const adjustment = f(outLen / f(scale * inLen));
      const offset = f(f(inLen / 2) * f(1 - adjustment));
      return f(offset + f(f(f(x + 0.5) / scale) - 0.5));
    }
    default:
      return f(x / scale);
  }
}

function nearestIndex(rule: string, v: number, downscale: boolean): number {
  switch (rule) {
    case 'round_prefer_floor':
      return v === Math.trunc(v) + 0.5 ? Math.floor(v) : Math.round(v);
    case 'round_prefer_ceil':
      // std::round: halves away from zero
      return Math.sign(v) * Math.round(Math.abs(v));
    case 'floor':
      return Math.floor(v);
    case 'ceil':
      return Math.ceil(v);
    default:
      return downscale ? Math.ceil(v) : Math.trunc(v);
  }
}

/** A (outLen x inLen, row-major) with y = A x along one axis. */
function axisMatrix(spec: ResizeSpec, scale: number, inLen: number, outLen: number): Float32Array {
  const a = new Float32Array(outLen * inLen);
  for (let o = 0; o < outLen; o++) {
    const v = original(spec.coord, o, scale, inLen, outLen);
    if (spec.mode === 'nearest') {
      const i = Math.min(Math.max(nearestIndex(spec.nearest, v, scale < 1), 0), inLen - 1);
      a[o * inLen + i] = 1;
      continue;
    }
    const c = Math.max(0, Math.min(v, inLen - 1));
    const i1 = Math.min(Math.trunc(c), inLen - 1);
    const i2 = Math.min(i1 + 1, inLen - 1);
    if (i1 === i2) {
      a[o * inLen + i1] = 1;
      continue;
    }
    a[o * inLen + i1] = f(Math.abs(c - i2));
    a[o * inLen + i2]! += f(Math.abs(c - i1));
  }
  return a;
}

const isIdentity = (a: Float32Array, d: number): boolean => a.every((v, k) => v === (k % (d + 1) === 0 ? 1 : 0));

/** Whether A copies input i to outputs i*k .. i*k+k-1 (an integer nearest upsampling in blocks). */
function blockFactor(a: Float32Array, inLen: number, outLen: number): number {
  if (outLen % inLen !== 0) return 0;
  const k = outLen / inLen;
  for (let o = 0; o < outLen; o++) if (a[o * inLen + Math.floor(o / k)] !== 1) return 0;
  return k;
}

const resize: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    const ys = e.shape(n.outputs[0]!);
    const spec = resizeSpec(n, e);
    const mats = xs.map((d, i) => axisMatrix(spec, spec.scales[i]!, d, ys[i]!));
    let g = dy!;
    // block copies first: one reshape exposes every copy axis, one ReduceSum folds them
    const blocks = xs.map((d, i) => (isIdentity(mats[i]!, d) && d === ys[i] ? 0 : blockFactor(mats[i]!, d, ys[i]!)));
    if (blocks.some((k) => k > 1)) {
      const split: number[] = [];
      const copies: number[] = [];
      xs.forEach((d, i) => {
        const k = blocks[i]! > 1 ? blocks[i]! : 0;
        split.push(k ? d : ys[i]!);
        if (k) {
          copies.push(split.length);
          split.push(k);
        }
      });
      g = e.reduceSum(e.reshape(g, split), copies, false);
    }
    xs.forEach((d, i) => {
      if (blocks[i]! > 1 || (d === ys[i] && isIdentity(mats[i]!, d))) return;
      const a = mats[i]!;
      const at = new Float32Array(d * ys[i]!);
      for (let o = 0; o < ys[i]!; o++) for (let j = 0; j < d; j++) at[j * ys[i]! + o] = a[o * d + j]!;
      g = mixAxis(e, g, i, at, d);
    });
    return [g];
  },
};

export const RESIZE_GRADS: Readonly<Record<string, GradRule>> = { Resize: resize, Upsample: resize };
