// Training images held as 8-bit values (issue 18): det's 72 training images at 640x640 are 354 MB
// as float32 and a quarter of that as bytes, which keeps a distillation run within a Pi-class RAM
// budget. Images were 8-bit pixels before the loader resized and normalised them, so 256 levels
// per channel between its min and max lose at most half a level (under 0.2 % of the range, less
// than the JPEG noise of the images). A compacted sample decodes on every read of an input: the
// trainer and the augmenter see ordinary float32 rows, and each read is a fresh copy dropped after
// the step that used it.
import type { Sample } from '../../data/inputs.js';
import type { NdArray } from '../../data/ndarray.js';

/** Inputs smaller than this stay float32 (a few KB: nothing to save, and not worth a decode). */
const MIN_ELEMENTS = 4096;

interface Packed {
  shape: number[];
  /** Per channel (axis 1) of every row: its min and its step (range / 255). */
  min: Float32Array;
  step: Float32Array;
  q: Uint8Array;
}

function pack(a: NdArray): Packed {
  const [n, c] = a.shape as [number, number];
  const plane = a.data.length / (n * c);
  const src = a.data as Float32Array;
  const min = new Float32Array(n * c);
  const step = new Float32Array(n * c);
  const q = new Uint8Array(src.length);
  for (let p = 0; p < n * c; p++) {
    const o = p * plane;
    let lo = Infinity,
      hi = -Infinity;
    for (let i = o; i < o + plane; i++) {
      const x = src[i]!;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    const s = hi > lo ? (hi - lo) / 255 : 1;
    min[p] = lo;
    step[p] = s;
    for (let i = o; i < o + plane; i++) q[i] = Math.round((src[i]! - lo) / s);
  }
  return { shape: [...a.shape], min, step, q };
}

function unpack(p: Packed): NdArray {
  const out = new Float32Array(p.q.length);
  const plane = p.q.length / p.min.length;
  for (let k = 0; k < p.min.length; k++) {
    const lo = p.min[k]!,
      s = p.step[k]!;
    for (let i = k * plane; i < (k + 1) * plane; i++) out[i] = lo + p.q[i]! * s;
  }
  return { dtype: 'float32', shape: [...p.shape], data: out };
}

/**
 * The samples with every float32 input of rank >= 3 held as bytes per channel, decoded on read;
 * other inputs as they were. Each sample keeps its identity across reads (the trainer caches the
 * teacher's targets of held-out rows by sample).
 */
export function compactSamples(samples: readonly Sample[]): Sample[] {
  return samples.map((s) => {
    const out: Sample = {};
    for (const [k, a] of Object.entries(s)) {
      if (a.dtype !== 'float32' || a.shape.length < 3 || a.data.length < MIN_ELEMENTS) {
        out[k] = a;
        continue;
      }
      const p = pack(a);
      Object.defineProperty(out, k, { enumerable: true, get: () => unpack(p) });
    }
    return out;
  });
}
