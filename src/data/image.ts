// Image inputs: decode PNG/JPEG with maintained libraries (pngjs, jpeg-js), stretch-resize
// bilinearly with the pixel-centre mapping common resizers use, then scale, normalise and lay out
// as preprocess.json says. Mean/std are indexed by output channel (after any RGB->BGR swap),
// which is how PaddleOCR and torchvision specs are written. This is the one image path: --calib
// for prune, quantize and fit, evaluation, benchmarks and the agent's probe inputs all use it, so
// a fidelity floor means the same number in every command.
//
// Why not sharp (libvips): measured on the test fixtures (sharp 0.35.6, x64), its resize is not
// this one. Its 'linear' kernel differs from this half-pixel bilinear (OpenCV's INTER_LINEAR,
// which PaddleOCR preprocesses with) by 3.1/255 on average, up to 110, upsampling det images to
// 640x640, and by 7.4/255 on average downsampling photos to 64x64 (it antialiases); lanczos3 is
// no closer. Speed is mixed: 1.9x faster on 640x640 det inputs (56 vs 104 ms an image), 3-6x
// slower on 48x320 rec and 48x192 cls crops (12.4 vs 2.2 ms, 3.2 vs 0.7 ms). Its API is async
// (every loader would become so) and it adds 19 MB of native libvips per platform.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { EdgefitError } from '../errors.js';
import type { NdArray } from './ndarray.js';

export const LAYOUTS = ['NCHW', 'NHWC'] as const;
export const COLORS = { RGB: [0, 1, 2], BGR: [2, 1, 0], GRAY: [0] } as const;
export const RESIZES = ['stretch'] as const;
export const IMAGE_EXTS = ['.png', '.jpg', '.jpeg'] as const;

export type Layout = (typeof LAYOUTS)[number];
export type Color = keyof typeof COLORS;

/** The contents of preprocess.json beside an image folder. */
export interface PreprocessSpec {
  /** [height, width] of the model input. */
  size: [number, number];
  layout: Layout;
  color: Color;
  /** Multiplies the 0..255 pixel value before mean/std (1/255 for 0..1 inputs). */
  scale: number;
  /** Per output channel, subtracted after scaling. */
  mean: number[];
  /** Per output channel, divides after subtracting the mean. */
  std: number[];
  resize: (typeof RESIZES)[number];
}

/** Normalisation of 0..255 pixels: (v * scale - mean[c]) / std[c]. */
export interface Normalisation {
  scale: number;
  mean: readonly number[];
  std: readonly number[];
}

/** ImageNet statistics over 0..1 RGB (torchvision, PP-OCR det). */
export const IMAGENET = { scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const satisfies Normalisation;

/**
 * The spec of an NCHW float input of h x w with the usual stretch resize: 3 channels read RGB, 1
 * channel reads BT.601 luma (normalised with the first mean/std). For benchmarks and tests that
 * build inputs without a preprocess.json; the same resize and arithmetic as the folders' loader.
 */
export function nchwSpec(h: number, w: number, channels: 1 | 3, norm: Normalisation): PreprocessSpec {
  const pick = (v: readonly number[]) => (channels === 1 ? [v[0]!] : [v[0]!, v[1]!, v[2]!]);
  const color = channels === 1 ? 'GRAY' : 'RGB';
  return { size: [h, w], layout: 'NCHW', color, scale: norm.scale, mean: pick(norm.mean), std: pick(norm.std), resize: 'stretch' };
}

export interface Rgba {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Validate a parsed preprocess.json; `where` names the file in errors. Defaults: scale 1, mean 0, std 1, stretch. */
export function parsePreprocessSpec(v: unknown, where: string): PreprocessSpec {
  const bad = (msg: string): never => {
    throw new EdgefitError('DATA', `${where}: ${msg}`);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('must be a JSON object');
  const o = v as Record<string, unknown>;
  const known = new Set(['size', 'layout', 'color', 'scale', 'mean', 'std', 'resize']);
  for (const k of Object.keys(o)) if (!known.has(k)) bad(`unknown key '${k}' (known: ${[...known].join(', ')})`);
  const size = o.size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every((d) => Number.isInteger(d) && d > 0 && d <= 16384))
    bad('"size" must be [height, width] in pixels');
  const layout = o.layout ?? 'NCHW';
  if (!LAYOUTS.includes(layout as Layout)) bad(`"layout" must be one of ${LAYOUTS.join(', ')}`);
  const color = o.color ?? 'RGB';
  if (typeof color !== 'string' || !Object.prototype.hasOwnProperty.call(COLORS, color))
    bad(`"color" must be one of ${Object.keys(COLORS).join(', ')}`);
  const channels = COLORS[color as Color].length;
  const scale = o.scale ?? 1;
  if (typeof scale !== 'number' || !Number.isFinite(scale)) bad('"scale" must be a finite number');
  const vec = (key: string, dflt: number, positive: boolean): number[] => {
    const x = o[key] ?? new Array<number>(channels).fill(dflt);
    if (
      !Array.isArray(x) ||
      x.length !== channels ||
      !x.every((n) => typeof n === 'number' && Number.isFinite(n) && (!positive || n > 0))
    ) {
      bad(`"${key}" must be ${channels} ${positive ? 'positive ' : ''}numbers (one per ${color} channel)`);
    }
    return x as number[];
  };
  const resize = o.resize ?? 'stretch';
  if (!RESIZES.includes(resize as 'stretch')) bad(`"resize" must be one of ${RESIZES.join(', ')}`);
  return {
    size: [(size as number[])[0]!, (size as number[])[1]!],
    layout: layout as Layout,
    color: color as Color,
    scale: scale as number,
    mean: vec('mean', 0, false),
    std: vec('std', 1, true),
    resize: 'stretch',
  };
}

export function decodeImage(path: string): Rgba {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new EdgefitError('DATA', `cannot read image ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  const ext = extname(path).toLowerCase();
  try {
    if (ext === '.png') {
      const p = PNG.sync.read(bytes);
      return { width: p.width, height: p.height, data: new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength) };
    }
    if (ext === '.jpg' || ext === '.jpeg') {
      // cap decoder memory: a hostile JPEG header can claim a gigapixel image
      const j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 512 });
      return { width: j.width, height: j.height, data: j.data };
    }
  } catch (e) {
    throw new EdgefitError('DATA', `cannot decode image ${path}: ${(e as Error).message}`, { cause: e });
  }
  throw new EdgefitError('DATA', `not a supported image type: ${path} (use ${IMAGE_EXTS.join(', ')})`);
}

/** One image -> float32 [1,C,H,W] or [1,H,W,C] as the spec says. */
export function preprocessImage(img: Rgba, spec: PreprocessSpec): NdArray {
  const [h, w] = spec.size;
  const order = COLORS[spec.color];
  const c = order.length;
  const out = new Float32Array(c * h * w);
  const sx = img.width / w;
  const sy = img.height / h;
  // per-column source taps, computed once: the inner loop is then plain array reads
  const cx0 = new Int32Array(w),
    cx1 = new Int32Array(w),
    cwx = new Float32Array(w);
  for (let x = 0; x < w; x++) {
    const fx = Math.min(img.width - 1, Math.max(0, (x + 0.5) * sx - 0.5));
    cx0[x] = Math.floor(fx);
    cx1[x] = Math.min(img.width - 1, cx0[x]! + 1);
    cwx[x] = fx - cx0[x]!;
  }
  // GRAY uses ITU-R BT.601 luma, as PIL's convert('L') does
  const gray = spec.color === 'GRAY';
  const src = img.data;
  const rowLuma = (row: number, x: number): number => {
    const i = (row + x) * 4;
    return 0.299 * src[i]! + 0.587 * src[i + 1]! + 0.114 * src[i + 2]!;
  };
  const mul = new Float32Array(c),
    add = new Float32Array(c);
  for (let k = 0; k < c; k++) {
    mul[k] = spec.scale / spec.std[k]!;
    add[k] = -spec.mean[k]! / spec.std[k]!;
  }
  for (let y = 0; y < h; y++) {
    const fy = Math.min(img.height - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(img.height - 1, y0 + 1);
    const wy = fy - y0;
    const r0 = y0 * img.width,
      r1 = y1 * img.width;
    for (let x = 0; x < w; x++) {
      const x0 = cx0[x]!,
        x1 = cx1[x]!,
        wx = cwx[x]!;
      const w00 = (1 - wx) * (1 - wy),
        w01 = wx * (1 - wy),
        w10 = (1 - wx) * wy,
        w11 = wx * wy;
      for (let k = 0; k < c; k++) {
        let v: number;
        if (gray) v = rowLuma(r0, x0) * w00 + rowLuma(r0, x1) * w01 + rowLuma(r1, x0) * w10 + rowLuma(r1, x1) * w11;
        else {
          const ch = order[k]!;
          v =
            src[(r0 + x0) * 4 + ch]! * w00 +
            src[(r0 + x1) * 4 + ch]! * w01 +
            src[(r1 + x0) * 4 + ch]! * w10 +
            src[(r1 + x1) * 4 + ch]! * w11;
        }
        const at = spec.layout === 'NCHW' ? (k * h + y) * w + x : (y * w + x) * c + k;
        out[at] = v * mul[k]! + add[k]!;
      }
    }
  }
  const shape = spec.layout === 'NCHW' ? [1, c, h, w] : [1, h, w, c];
  return { dtype: 'float32', shape, data: out };
}
