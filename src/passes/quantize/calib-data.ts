// Image and .npy helpers for the quantize benchmark and tests, which crop realistic inputs
// (text lines out of a scanned page) before resizing. The CLI reads --calib with the shared
// loaders of src/data/.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { EdgefitError } from '../../errors.js';

export interface Preprocess {
  /** Multiplies 0..255 pixel values first (default 1/255). */
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
}

export const IMAGENET: Preprocess = { scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

interface Rgba { width: number; height: number; data: Uint8Array }

export function readImage(path: string): Rgba {
  const buf = readFileSync(path);
  try {
    const ext = extname(path).toLowerCase();
    if (ext === '.png') {
      const p = PNG.sync.read(buf);
      return { width: p.width, height: p.height, data: p.data };
    }
    const j = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true });
    return { width: j.width, height: j.height, data: j.data };
  } catch (e) {
    throw new EdgefitError('DATA', `cannot decode image ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** Bilinear resize to h x w, normalise, lay out as 1 x C x h x w (C = 3, or 1 for grey models). */
export function imageToTensor(img: Rgba, h: number, w: number, channels: number, pre: Preprocess): Float32Array {
  const out = new Float32Array(channels * h * w);
  const sy = img.height / h;
  const sx = img.width / w;
  for (let y = 0; y < h; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(img.height - 1, Math.floor(fy));
    const y1 = Math.min(img.height - 1, y0 + 1);
    const dy = fy - y0;
    for (let x = 0; x < w; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5);
      const x0 = Math.min(img.width - 1, Math.floor(fx));
      const x1 = Math.min(img.width - 1, x0 + 1);
      const dx = fx - x0;
      const px = (yy: number, xx: number, c: number): number => img.data[(yy * img.width + xx) * 4 + c]!;
      const rgb = [0, 1, 2].map((c) => (px(y0, x0, c) * (1 - dx) + px(y0, x1, c) * dx) * (1 - dy) + (px(y1, x0, c) * (1 - dx) + px(y1, x1, c) * dx) * dy);
      if (channels === 1) {
        const grey = 0.299 * rgb[0]! + 0.587 * rgb[1]! + 0.114 * rgb[2]!;
        out[y * w + x] = (grey * pre.scale - pre.mean[0]) / pre.std[0];
      } else {
        for (let c = 0; c < 3; c++) out[c * h * w + y * w + x] = (rgb[c]! * pre.scale - pre.mean[c]!) / pre.std[c]!;
      }
    }
  }
  return out;
}

/** Parse a little-endian float32 .npy file (version 1-3, C order). */
export function readNpy(path: string): { shape: number[]; data: Float32Array } {
  const b = readFileSync(path);
  if (b.length < 10 || b.toString('latin1', 1, 6) !== 'NUMPY') throw new EdgefitError('DATA', `${path}: not a .npy file`);
  const major = b[6]!;
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = b.toString('latin1', start, start + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  if (descr !== '<f4') throw new EdgefitError('DATA', `${path}: dtype ${descr ?? '?'} unsupported, calibration data must be float32 ('<f4')`);
  if (/'fortran_order':\s*True/.test(header)) throw new EdgefitError('DATA', `${path}: Fortran-order arrays are not supported`);
  const shapeTxt = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '';
  const shape = shapeTxt.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const off = start + hlen;
  const n = shape.reduce((a, d) => a * d, 1);
  if (b.length - off !== n * 4) throw new EdgefitError('DATA', `${path}: holds ${b.length - off} data bytes, shape (${shape.join(', ')}) needs ${n * 4}`);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = b.readFloatLE(off + 4 * i);
  return { shape, data };
}
