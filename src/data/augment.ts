// Light augmentation of NCHW image samples for training on the box (issue 18): random crops (det
// trains on 320x320 crops of 640x640 images: a quarter of the compute per step), horizontal flips,
// scale jitter and brightness, each drawn from the caller's seeded generator so a run repeats.
// Applied to the training rows only; a held-out row is never augmented. Every 4-D float32 input
// of a sample gets the same draw (a second image input stays aligned with the first).
import { EdgefitError } from '../errors.js';
import { packedWindow, type PackedWindow } from './compact.js';
import type { Sample } from './inputs.js';
import type { NdArray } from './ndarray.js';

export interface AugmentOptions {
  /** Random crop [height, width] (a side larger than the image, after scaling, is refused). */
  crop?: readonly [number, number];
  /** Mirror left-right with probability 1/2. */
  flip?: boolean;
  /** Resize by a factor drawn uniformly from [min, max] before cropping (bilinear). */
  scale?: readonly [number, number];
  /** Shift every value by up to ± this fraction of the sample's value range (in the model's input space, after its normalisation). */
  brightness?: number;
  /**
   * With this probability, the crop becomes black-and-white print: every pixel black or white by
   * Otsu's threshold on its luminance, black and white being each channel's darkest and brightest
   * value in the crop. Binarised scans are a kind of input a training set may hold few of (PP-OCRv4
   * det's distilled students fit the training set's 8 binarised pages but not an unseen one).
   */
  binarise?: number;
}

function resizeBilinear(src: Float32Array, n: number, c: number, h: number, w: number, oh: number, ow: number): Float32Array {
  const out = new Float32Array(n * c * oh * ow);
  const sy = h / oh,
    sx = w / ow;
  for (let p = 0; p < n * c; p++) {
    const base = p * h * w;
    const ob = p * oh * ow;
    for (let y = 0; y < oh; y++) {
      // half-pixel centres, as onnxruntime's and OpenCV's resize
      const fy = Math.min(h - 1, Math.max(0, (y + 0.5) * sy - 0.5));
      const y0 = Math.floor(fy),
        y1 = Math.min(h - 1, y0 + 1),
        wy = fy - y0;
      for (let x = 0; x < ow; x++) {
        const fx = Math.min(w - 1, Math.max(0, (x + 0.5) * sx - 0.5));
        const x0 = Math.floor(fx),
          x1 = Math.min(w - 1, x0 + 1),
          wx = fx - x0;
        const a = src[base + y0 * w + x0]! * (1 - wx) + src[base + y0 * w + x1]! * wx;
        const b = src[base + y1 * w + x0]! * (1 - wx) + src[base + y1 * w + x1]! * wx;
        out[ob + y * ow + x] = a * (1 - wy) + b * wy;
      }
    }
  }
  return out;
}

interface Draw {
  scale: number;
  flip: boolean;
  /** Crop origin as fractions of the free room (so images of different sizes stay aligned). */
  fy: number;
  fx: number;
  shift: number;
  bw: boolean;
}

/** The crop's origin in an h x w image (a side larger than the image is refused). */
function cropOrigin(o: AugmentOptions, d: Draw, h: number, w: number): { y0: number; x0: number; ch: number; cw: number } {
  const [ch, cw] = o.crop ?? [h, w];
  if (ch > h || cw > w) throw new EdgefitError('DATA', `a ${ch}x${cw} crop does not fit a ${h}x${w} image`);
  return { y0: Math.floor(d.fy * (h - ch + 1 - 1e-9)), x0: Math.floor(d.fx * (w - cw + 1 - 1e-9)), ch, cw };
}

/** Flip, brightness and black-and-white on a cropped [n, c, ch, cw] in place; `range`: the whole image's (brightness). */
function finish(out: Float32Array, n: number, c: number, ch: number, cw: number, d: Draw, range: () => [number, number]): void {
  if (d.flip) for (let r = 0; r < n * c * ch; r++) out.subarray(r * cw, (r + 1) * cw).reverse();
  if (d.shift) {
    const [lo, hi] = range();
    const delta = d.shift * (hi - lo);
    for (let i = 0; i < out.length; i++) out[i]! += delta;
  }
  if (d.bw) binariseInPlace(out, n, c, ch * cw);
}

function apply(a: NdArray, o: AugmentOptions, d: Draw): NdArray {
  if (a.dtype !== 'float32' || a.shape.length !== 4) return a;
  const [n, c] = a.shape as [number, number, number, number];
  let [, , h, w] = a.shape as [number, number, number, number];
  let data = a.data as Float32Array;
  if (d.scale !== 1) {
    const oh = Math.max(1, Math.round(h * d.scale)),
      ow = Math.max(1, Math.round(w * d.scale));
    data = resizeBilinear(data, n, c, h, w, oh, ow);
    h = oh;
    w = ow;
  }
  const { y0, x0, ch, cw } = cropOrigin(o, d, h, w);
  const out = new Float32Array(n * c * ch * cw);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < ch; y++)
      out.set(data.subarray(p * h * w + (y0 + y) * w + x0, p * h * w + (y0 + y) * w + x0 + cw), p * ch * cw + y * cw);
  finish(out, n, c, ch, cw, d, () => {
    let lo = Infinity,
      hi = -Infinity;
    for (const v of data) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    return [lo, hi];
  });
  return { dtype: 'float32', shape: [n, c, ch, cw], data: out };
}

/** apply() on an input held as bytes (compact.ts), decoding the crop's window alone (unscaled draws only). */
function applyPacked(win: PackedWindow, o: AugmentOptions, d: Draw): NdArray {
  const [n, c, h, w] = win.shape;
  const { y0, x0, ch, cw } = cropOrigin(o, d, h, w);
  const out = win.read(y0, x0, ch, cw);
  finish(out, n, c, ch, cw, d, () => win.range());
  return { dtype: 'float32', shape: [n, c, ch, cw], data: out };
}

/** Otsu's threshold of values in [0, 1] (256 bins): the cut that maximises the between-class variance. */
export function otsu(values: Float32Array): number {
  const bins = new Float64Array(256);
  for (const v of values) bins[Math.min(255, Math.max(0, Math.floor(v * 256)))]! += 1;
  let total = 0,
    sum = 0;
  for (let i = 0; i < 256; i++) {
    total += bins[i]!;
    sum += i * bins[i]!;
  }
  let w0 = 0,
    s0 = 0,
    best = 0,
    cut = 128;
  for (let i = 0; i < 255; i++) {
    w0 += bins[i]!;
    s0 += i * bins[i]!;
    const w1 = total - w0;
    if (!w0 || !w1) continue;
    const between = w0 * w1 * (s0 / w0 - (sum - s0) / w1) ** 2;
    if (between > best) {
      best = between;
      cut = i + 1;
    }
  }
  return cut / 256;
}

/** Each image of `data` ([n, c, plane]) as black-and-white print (AugmentOptions.binarise). */
function binariseInPlace(data: Float32Array, n: number, c: number, plane: number): void {
  for (let i = 0; i < n; i++) {
    const lo = new Float32Array(c).fill(Infinity);
    const hi = new Float32Array(c).fill(-Infinity);
    for (let k = 0; k < c; k++)
      for (let j = (i * c + k) * plane, e = j + plane; j < e; j++) {
        lo[k] = Math.min(lo[k]!, data[j]!);
        hi[k] = Math.max(hi[k]!, data[j]!);
      }
    // luminance: the channels' mean, each first mapped to [0, 1] by its own range (the model's
    // normalisation is an affine map per channel, so this is the image's own scale)
    const lum = new Float32Array(plane);
    for (let k = 0; k < c; k++) {
      const span = hi[k]! - lo[k]! || 1;
      for (let j = 0, b = (i * c + k) * plane; j < plane; j++) lum[j]! += (data[b + j]! - lo[k]!) / span / c;
    }
    const t = otsu(lum);
    for (let k = 0; k < c; k++) for (let j = 0, b = (i * c + k) * plane; j < plane; j++) data[b + j] = lum[j]! < t ? lo[k]! : hi[k]!;
  }
}

/** The augmentation `o` as TrainSpec.augment wants it. */
export function augmenter(o: AugmentOptions): (s: Sample, next: () => number) => Sample {
  if (o.crop && !o.crop.every((v) => Number.isInteger(v) && v > 0))
    throw new EdgefitError('USAGE', `a crop must be two positive integers, got ${o.crop.join('x')}`);
  if (o.scale && !(o.scale[0] > 0 && o.scale[1] >= o.scale[0]))
    throw new EdgefitError('USAGE', `a scale range must be 0 < min <= max, got ${o.scale.join('..')}`);
  if (o.brightness !== undefined && !(o.brightness >= 0 && o.brightness < 1))
    throw new EdgefitError('USAGE', `brightness must be a fraction in [0, 1), got ${o.brightness}`);
  if (o.binarise !== undefined && !(o.binarise >= 0 && o.binarise <= 1))
    throw new EdgefitError('USAGE', `binarise is a probability in [0, 1], got ${o.binarise}`);
  return (s, next) => {
    const d: Draw = {
      scale: o.scale ? o.scale[0] + next() * (o.scale[1] - o.scale[0]) : 1,
      flip: !!o.flip && next() < 0.5,
      fy: next(),
      fx: next(),
      shift: o.brightness ? (2 * next() - 1) * o.brightness : 0,
      // drawn last and only when asked, so runs without it repeat their draws as before
      bw: !!o.binarise && next() < o.binarise,
    };
    const out: Sample = {};
    for (const k of Object.keys(s)) {
      // a packed image is read through its window when no scale jitter needs the whole of it
      const win = d.scale === 1 ? packedWindow(s, k) : undefined;
      out[k] = win ? applyPacked(win, o, d) : apply(s[k]!, o, d);
    }
    return out;
  };
}
