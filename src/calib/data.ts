// Calibration data for --calib: a folder of images with a preprocess.json (PaddleOCR-style
// resize/scale/mean/std), or a labelled folder (x.npy float32 [N,...] + optional labels.txt),
// or a single .npy. Each sample becomes one batch-1 feed of the model's single input.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { PNG } from 'pngjs';
import { EdgefitError } from '../errors.js';
import type { Sample } from './runner.js';

export interface CalibSet {
  samples: Sample[];
  labels: number[] | null;
  source: string;
  synthetic: false;
}

interface Preprocess {
  size: [number, number];
  color?: 'RGB' | 'BGR' | 'GRAY';
  scale?: number;
  mean?: number[];
  std?: number[];
}

export function parseNpy(buf: Uint8Array, what: string): { shape: number[]; data: Float32Array } {
  const magic = String.fromCharCode(...buf.subarray(1, 6));
  if (buf[0] !== 0x93 || magic !== 'NUMPY') throw new EdgefitError('DATA', `${what}: not a .npy file`);
  const major = buf[6]!;
  const hlen = major === 1 ? buf[8]! | (buf[9]! << 8) : buf[8]! | (buf[9]! << 8) | (buf[10]! << 16) | (buf[11]! << 24);
  const off = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(buf.subarray(off, off + hlen));
  if (!/'descr':\s*'<f4'/.test(header)) throw new EdgefitError('DATA', `${what}: only little-endian float32 .npy is supported`);
  if (/'fortran_order':\s*True/.test(header)) throw new EdgefitError('DATA', `${what}: Fortran-ordered .npy is not supported`);
  const m = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!m) throw new EdgefitError('DATA', `${what}: .npy header has no shape`);
  const shape = m[1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const start = off + hlen;
  if (buf.byteLength - start < n * 4) throw new EdgefitError('DATA', `${what}: truncated .npy (${shape.join('x')} float32 needs ${n * 4} bytes)`);
  const copy = buf.slice(start, start + n * 4);
  return { shape, data: new Float32Array(copy.buffer, copy.byteOffset, n) };
}

function pngToTensor(file: string, p: Preprocess, channels: number): Float32Array {
  let img: PNG;
  try {
    img = PNG.sync.read(readFileSync(file));
  } catch (e) {
    throw new EdgefitError('DATA', `${file}: not a readable PNG`, { cause: e });
  }
  const [h, w] = p.size;
  const scale = p.scale ?? 1 / 255;
  const mean = p.mean ?? [0, 0, 0];
  const std = p.std ?? [1, 1, 1];
  const out = new Float32Array(channels * h * w);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(img.height - 1, Math.floor(((y + 0.5) * img.height) / h));
    for (let x = 0; x < w; x++) {
      const sx = Math.min(img.width - 1, Math.floor(((x + 0.5) * img.width) / w));
      const i = (sy * img.width + sx) * 4;
      const rgb = [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
      for (let c = 0; c < channels; c++) {
        const v = channels === 1 ? (rgb[0]! + rgb[1]! + rgb[2]!) / 3 : p.color === 'BGR' ? rgb[2 - c]! : rgb[c]!;
        out[(c * h + y) * w + x] = (v * scale - mean[c]!) / std[c]!;
      }
    }
  }
  return out;
}

function pngsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const f = join(dir, e);
    if (statSync(f).isDirectory()) out.push(...pngsUnder(f));
    else if (extname(e).toLowerCase() === '.png') out.push(f);
  }
  return out;
}

/** Load up to `limit` samples for the model input `input` (batch-1 shape `shape`). */
export function loadCalibration(path: string, input: string, shape: readonly number[], limit = 32): CalibSet {
  if (!existsSync(path)) throw new EdgefitError('FILE_NOT_FOUND', `calibration data not found: ${path}`);
  const per = shape.slice(1).reduce((a, b) => a * b, 1);
  const st = statSync(path);
  const npyPath = st.isDirectory() ? join(path, 'x.npy') : path;
  if (npyPath.endsWith('.npy') && existsSync(npyPath)) {
    const { shape: s, data } = parseNpy(readFileSync(npyPath), npyPath);
    const count = s[0] ?? 0;
    if (s.slice(1).reduce((a, b) => a * b, 1) !== per) throw new EdgefitError('DATA', `${npyPath}: samples of shape [${s.slice(1)}] do not fit input '${input}' [${shape.slice(1)}]`);
    const n = Math.min(count, limit);
    const samples: Sample[] = [];
    for (let i = 0; i < n; i++) samples.push({ [input]: { dims: [1, ...shape.slice(1)], data: data.slice(i * per, (i + 1) * per) } });
    let labels: number[] | null = null;
    const lp = join(st.isDirectory() ? path : join(path, '..'), 'labels.txt');
    if (existsSync(lp)) labels = readFileSync(lp, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(0, n).map(Number);
    return { samples, labels, source: npyPath, synthetic: false };
  }
  if (!st.isDirectory()) throw new EdgefitError('DATA', `${path}: expected a folder of images with preprocess.json, or x.npy`);
  const ppFile = join(path, 'preprocess.json');
  if (!existsSync(ppFile)) throw new EdgefitError('DATA', `${path}: no preprocess.json beside the images`);
  let pp: Preprocess;
  try {
    pp = JSON.parse(readFileSync(ppFile, 'utf8')) as Preprocess;
  } catch (e) {
    throw new EdgefitError('DATA', `${ppFile}: not valid JSON`, { cause: e });
  }
  if (!Array.isArray(pp.size) || pp.size.length !== 2) throw new EdgefitError('DATA', `${ppFile}: "size" must be [height, width]`);
  // the model's --shape wins over preprocess.json's size (e.g. a smaller det input)
  if (shape.length === 4) pp = { ...pp, size: [shape[2]!, shape[3]!] };
  // images in class subfolders (cls/0, cls/180): label = index of the folder in sorted order,
  // and the samples are taken round-robin over classes so a limit keeps them balanced
  const classes = readdirSync(path).filter((e) => statSync(join(path, e)).isDirectory()).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  let files: { file: string; label: number | null }[];
  if (classes.length) {
    const per = classes.map((c, i) => pngsUnder(join(path, c)).map((file) => ({ file, label: i })));
    files = [];
    for (let r = 0; per.some((l) => l.length > r); r++) for (const l of per) if (l[r]) files.push(l[r]!);
  } else files = pngsUnder(path).map((file) => ({ file, label: null }));
  files = files.slice(0, limit);
  if (!files.length) throw new EdgefitError('DATA', `${path}: no .png images`);
  const c = shape[1] ?? 3;
  const samples = files.map((f) => ({ [input]: { dims: [1, c, pp.size[0], pp.size[1]], data: pngToTensor(f.file, pp, c) } }));
  return { samples, labels: classes.length ? files.map((f) => f.label!) : null, source: path, synthetic: false };
}
