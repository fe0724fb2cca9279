// Training images held as 8-bit values (issue 18): det's 72 training images at 640x640 are 354 MB
// as float32 and a quarter of that as bytes, which keeps a distillation run within a Pi-class RAM
// budget. Images were 8-bit pixels before the loader resized and normalised them, so 256 levels
// per channel between its min and max lose at most half a level (under 0.2 % of the range, less
// than the JPEG noise of the images). A compacted sample decodes on every read of an input: the
// trainer and the augmenter see ordinary float32 rows, and each read is a fresh copy dropped after
// the step that used it. The augmenter reads a crop's window alone (packedWindow): decoding
// whole 640x640 images to crop 192x192 of each took 13 ms of every QAT det step, and their
// garbage as long again in collections.
import type { Sample } from './inputs.js';
import type { NdArray } from './ndarray.js';

/** Inputs smaller than this stay float32 (a few KB: nothing to save, and not worth a decode). */
const MIN_ELEMENTS = 4096;

interface Packed {
  shape: number[];
  /** Per channel (axis 1) of every row: its min and its step (range / 255). */
  min: Float32Array;
  step: Float32Array;
  q: Uint8Array;
  /** Per channel of every row: its largest value as decoded (its smallest decodes to min). */
  top: Float32Array;
}

function pack(a: NdArray): Packed {
  const [n, c] = a.shape as [number, number];
  const plane = a.data.length / (n * c);
  const src = a.data as Float32Array;
  const min = new Float32Array(n * c);
  const step = new Float32Array(n * c);
  const q = new Uint8Array(src.length);
  const top = new Float32Array(n * c);
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
    let most = 0;
    for (let i = o; i < o + plane; i++) most = Math.max(most, (q[i] = Math.round((src[i]! - lo) / s)));
    top[p] = min[p]! + most * step[p]!; // as unpack decodes it: from the stored float32 min and step
  }
  return { shape: [...a.shape], min, step, q, top };
}

/** Decodes `len` bytes of plane `k` from `src` on into `out` from `dst` on: the one decode rule. */
function decodeRun(p: Packed, k: number, src: number, out: Float32Array, dst: number, len: number): void {
  const lo = p.min[k]!,
    s = p.step[k]!;
  for (let i = 0; i < len; i++) out[dst + i] = lo + p.q[src + i]! * s;
}

function unpack(p: Packed): NdArray {
  const out = new Float32Array(p.q.length);
  const plane = p.q.length / p.min.length;
  for (let k = 0; k < p.min.length; k++) decodeRun(p, k, k * plane, out, k * plane, plane);
  return { dtype: 'float32', shape: [...p.shape], data: out };
}

const PACKED = new WeakMap<Sample, Map<string, Packed>>();

/** A packed 4-D input read a window at a time: the values a decode of the whole would hold there. */
export interface PackedWindow {
  shape: readonly [number, number, number, number];
  /** Rows y0..y0+h, columns x0..x0+w of every plane, as float32 [n, c, h, w]. */
  read(y0: number, x0: number, h: number, w: number): Float32Array<ArrayBuffer>;
  /** The smallest and largest value of the whole input. */
  range(): [number, number];
}

/** Input `key` of a sample compactSamples made, when it is held packed and 4-D; else undefined. */
export function packedWindow(s: Sample, key: string): PackedWindow | undefined {
  const p = PACKED.get(s)?.get(key);
  if (!p || p.shape.length !== 4) return undefined;
  const [n, c, hh, ww] = p.shape as [number, number, number, number];
  return {
    shape: [n, c, hh, ww],
    read: (y0, x0, h, w) => {
      const out = new Float32Array(n * c * h * w);
      for (let k = 0; k < n * c; k++)
        for (let y = 0; y < h; y++) decodeRun(p, k, k * hh * ww + (y0 + y) * ww + x0, out, (k * h + y) * w, w);
      return out;
    },
    range: () => {
      let lo = Infinity,
        hi = -Infinity;
      for (let k = 0; k < n * c; k++) {
        lo = Math.min(lo, p.min[k]!);
        hi = Math.max(hi, p.top[k]!);
      }
      return [lo, hi];
    },
  };
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
      const held = PACKED.get(out) ?? new Map<string, Packed>();
      PACKED.set(out, held.set(k, p));
    }
    return out;
  });
}
