// Input sets: image folders with preprocess.json, labelled folders, npy stacks split to the
// model's batch, synthetic data, and the one-line errors for data that does not fit.
import t from 'tap';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, copyFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { loadInputSet, synthesizeInputs, resolveShape, type ModelInput } from '../../src/data/inputs.js';
import { decodeImage, parsePreprocessSpec, preprocessImage } from '../../src/data/image.js';
import { writeNpy } from '../../src/data/npy.js';
import { writeNpz } from '../../src/data/npz.js';
import { ROOT } from '../../devkit/paths.js';

const FIX = join(ROOT, 'test/fixtures');
const dir = mkdtempSync(join(tmpdir(), 'edgefit-inputs-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const det: ModelInput[] = [{ name: 'x', dtype: 'float32', shape: ['N', 3, 640, 640] }];
const cls: ModelInput[] = [{ name: 'x', dtype: 'float32', shape: [null, 3, 48, 192] }];
const mnist: ModelInput[] = [{ name: 'x', dtype: 'float32', shape: ['N', 1, 28, 28] }];

t.test('image folder + preprocess.json -> normalised NCHW samples', async (t) => {
  const set = loadInputSet(join(FIX, 'ocr/det'), det);
  t.equal(set.kind, 'images');
  t.equal(set.synthetic, false);
  t.equal(set.samples.length, 8, 'one sample per png');
  t.equal(set.files?.length, 8, 'the file of each sample');
  t.equal(set.files![0], 'astronaut.png', 'in sorted order, as read');
  t.same(
    loadInputSet(join(FIX, 'ocr/det'), det, { limit: 2 }).files,
    set.files!.slice(0, 2),
    'a limit keeps the names of the samples kept',
  );
  const x = set.samples[0]!.x!;
  t.same(x.shape, [1, 3, 640, 640]);
  // a white pixel of an upscaled page, BGR, (1/255*255 - mean)/std per output channel
  const img = decodeImage(join(FIX, 'ocr/det/page-left.png'));
  const one = preprocessImage(
    img,
    parsePreprocessSpec(
      { size: [img.height, img.width], layout: 'NHWC', color: 'BGR', scale: 1, mean: [0, 0, 0], std: [1, 1, 1] },
      'inline',
    ),
  );
  // identity-size NHWC with no normalisation reproduces the decoded pixels (BGR order)
  const i = 37 * img.width + 11;
  t.same(
    Array.from(one.data.subarray(i * 3, i * 3 + 3) as Float32Array),
    [img.data[i * 4 + 2], img.data[i * 4 + 1], img.data[i * 4]],
    'same-size resize is the identity',
  );
  const data = x.data as Float32Array;
  let lo = Infinity,
    hi = -Infinity;
  for (const v of data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  t.ok(lo >= -0.485 / 0.229 - 1e-5 && hi <= (1 - 0.406) / 0.225 + 1e-5, `normalised range [${lo.toFixed(2)}, ${hi.toFixed(2)}]`);
});

t.test('a folder of symlinks to images is a set like the images themselves; a dangling link is skipped', async (t) => {
  const d = join(dir, 'links');
  mkdirSync(d);
  for (const f of ['preprocess.json', 'astronaut.png', 'page-left.png']) symlinkSync(join(FIX, 'ocr/det', f), join(d, f));
  symlinkSync(join(dir, 'no-such.png'), join(d, 'zz-gone.png'));
  const set = loadInputSet(d, det);
  t.equal(set.kind, 'images');
  t.same(set.files, ['astronaut.png', 'page-left.png']);
  const direct = loadInputSet(join(FIX, 'ocr/det'), det);
  const i = direct.files!.indexOf('page-left.png');
  t.same(set.samples[1]!.x!.data, direct.samples[i]!.x!.data, 'the same values as the file it links to');
});

t.test('JPEG and PNG of the same picture preprocess alike (NHWC, GRAY)', async (t) => {
  const d = join(dir, 'jpg');
  mkdirSync(d);
  const png = decodeImage(join(FIX, 'images/coffee.png'));
  writeFileSync(join(d, 'coffee.jpg'), jpeg.encode({ width: png.width, height: png.height, data: Buffer.from(png.data) }, 95).data);
  writeFileSync(join(d, 'preprocess.json'), JSON.stringify({ size: [32, 48], layout: 'NHWC', color: 'GRAY', scale: 1 / 255 }));
  const set = loadInputSet(d, [{ name: 'img', dtype: 'float32', shape: [1, 32, 48, 1] }]);
  const j = set.samples[0]!.img!;
  t.same(j.shape, [1, 32, 48, 1]);
  const p = preprocessImage(png, parsePreprocessSpec({ size: [32, 48], layout: 'NHWC', color: 'GRAY', scale: 1 / 255 }, 'inline'));
  let maxDiff = 0;
  for (let i = 0; i < p.data.length; i++)
    maxDiff = Math.max(maxDiff, Math.abs((p.data as Float32Array)[i]! - (j.data as Float32Array)[i]!));
  t.ok(maxDiff < 0.06, `JPEG q95 vs PNG after downscale: max diff ${maxDiff.toFixed(4)} of 1`);
});

t.test('class subfolders -> labelled set, labels by sorted position', async (t) => {
  const set = loadInputSet(join(FIX, 'ocr/cls'), cls);
  t.equal(set.kind, 'labelled-images');
  t.same(set.classNames, ['0', '180']);
  t.equal(set.labels!.length, set.samples.length);
  t.same([...new Set(set.labels)], [0, 1]);
  // round-robin over the classes: each sample's file is in its label's folder
  t.same(set.files!.slice(0, 3), ['0/page-01.png', '180/page-02.png', '0/page-03.png']);
  t.ok(
    set.files!.every((f, i) => f.startsWith(`${set.classNames![set.labels![i]!]}/`)),
    'every file sits in its label folder',
  );
  t.same(set.samples[0]!.x!.shape, [1, 3, 48, 192]);
});

t.test('x.npy + labels.txt: a stack splits into batch-1 samples', async (t) => {
  const d = join(dir, 'lab');
  mkdirSync(d);
  const n = 6;
  writeNpy(join(d, 'x.npy'), {
    dtype: 'float32',
    shape: [n, 1, 28, 28],
    data: Float32Array.from({ length: n * 784 }, (_, i) => Math.floor(i / 784)),
  });
  writeFileSync(join(d, 'labels.txt'), '0\n1\n2\n3\n4\n5\n');
  const set = loadInputSet(d, mnist);
  t.equal(set.kind, 'labelled-npy');
  t.equal(set.samples.length, n);
  t.same(set.labels, [0, 1, 2, 3, 4, 5]);
  t.same(set.samples[3]!.x!.shape, [1, 1, 28, 28]);
  t.equal((set.samples[3]!.x!.data as Float32Array)[0], 3, 'sample 3 holds row 3');
  t.equal(loadInputSet(d, mnist, { limit: 2 }).labels!.length, 2);
  writeFileSync(join(d, 'labels.txt'), '0\n1\n');
  t.throws(() => loadInputSet(d, mnist), /labels\.txt has 2 labels for 6 samples/);
  writeFileSync(join(d, 'labels.txt'), '0\n1\nseven\n3\n4\n5\n');
  t.throws(() => loadInputSet(d, mnist), /labels\.txt:3: label 'seven'/);
});

t.test('npz keyed by input name, float64 cast to float32, shape errors', async (t) => {
  const p = join(dir, 'two.npz');
  writeNpz(p, { x: { dtype: 'float64', shape: [2, 1, 28, 28], data: new Float64Array(2 * 784).fill(0.5) } });
  const set = loadInputSet(p, mnist);
  t.equal(set.samples.length, 2);
  t.equal(set.samples[1]!.x!.dtype, 'float32');
  const bad = join(dir, 'bad.npy');
  writeNpy(bad, { dtype: 'float32', shape: [1, 1, 32, 32], data: new Float32Array(1024) });
  t.throws(() => loadInputSet(bad, mnist), /data of shape 1x1x32x32 does not fit input 'x' \?x1x28x28/);
  const ints = join(dir, 'ints.npy');
  writeNpy(ints, { dtype: 'uint16', shape: [1, 1, 28, 28], data: new Uint16Array(784) });
  t.throws(() => loadInputSet(ints, mnist), /data is uint16 but the model input wants float32/);
  t.throws(() => loadInputSet(join(dir, 'nope'), mnist), /cannot read data .*ENOENT/);
  // image folder without its spec
  const imgs = join(dir, 'imgs');
  mkdirSync(imgs);
  copyFileSync(join(FIX, 'images/camera.png'), join(imgs, 'camera.png'));
  t.throws(() => loadInputSet(imgs, det), /needs a preprocess\.json/);
  writeFileSync(join(imgs, 'preprocess.json'), JSON.stringify({ size: [640, 640], layout: 'NCHW', color: 'RGB', mean: [0, 0] }));
  t.throws(() => loadInputSet(imgs, det), /"mean" must be 3 numbers/);
  writeFileSync(join(imgs, 'preprocess.json'), JSON.stringify({ size: [64, 64], color: 'RGB' }));
  t.throws(() => loadInputSet(imgs, det), /data of shape 1x3x64x64 does not fit input 'x' \?x3x640x640/);
  const broken = join(dir, 'broken');
  mkdirSync(broken);
  writeFileSync(join(broken, 'preprocess.json'), JSON.stringify({ size: [640, 640] }));
  writeFileSync(
    join(broken, 'a.png'),
    Buffer.concat([PNG.sync.write(Object.assign(new PNG({ width: 4, height: 4 }), {})).subarray(0, 30)]),
  );
  t.throws(() => loadInputSet(broken, det), /cannot decode image .*a\.png/);
});

t.test('synthetic: seeded, right dtype and shape, plausible ranges, flagged', async (t) => {
  const inputs: ModelInput[] = [
    { name: 'x', dtype: 'float32', shape: ['N', 3, 'H', 'W'] },
    { name: 'ids', dtype: 'int64', shape: [1, 16] },
    { name: 'mask', dtype: 'bool', shape: [1, 16] },
  ];
  t.throws(() => synthesizeInputs(inputs), {
    message: /^input 'x' has dynamic dims \?x3x\?x\?$/,
    remedy: { option: 'shapes', input: 'x', example: '1x3x224x224' },
  });
  const shapes = new Map([['x', [1, 3, 32, 48]]]);
  const a = synthesizeInputs(inputs, { shapes, seed: 7, count: 3 });
  const b = synthesizeInputs(inputs, { shapes, seed: 7, count: 3 });
  const c = synthesizeInputs(inputs, { shapes, seed: 8, count: 3 });
  t.equal(a.synthetic, true);
  t.equal(a.source, 'synthetic');
  t.equal(a.samples.length, 3);
  t.same(a.samples[0]!.x!.shape, [1, 3, 32, 48]);
  t.same(Array.from(a.samples[2]!.x!.data as Float32Array), Array.from(b.samples[2]!.x!.data as Float32Array), 'same seed, same values');
  t.notSame(
    Array.from(a.samples[0]!.x!.data as Float32Array),
    Array.from(c.samples[0]!.x!.data as Float32Array),
    'other seed, other values',
  );
  const xs = Array.from(a.samples[0]!.x!.data as Float32Array);
  const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length);
  t.ok(
    Math.abs(mean) < 0.1 && Math.abs(sd - 1) < 0.1 && Math.max(...xs.map(Math.abs)) <= 3,
    `float ~N(0,1) clipped: mean ${mean.toFixed(3)} sd ${sd.toFixed(3)}`,
  );
  t.equal(a.samples[0]!.ids!.dtype, 'int64');
  t.ok(
    Array.from(a.samples[0]!.ids!.data as BigInt64Array).every((v) => v >= 0n && v < 10n),
    'ids are small non-negative',
  );
  t.ok(
    Array.from(a.samples[0]!.mask!.data as Uint8Array).every((v) => v === 0 || v === 1),
    'bool is 0/1',
  );
  t.throws(
    () => resolveShape({ name: 'x', dtype: 'float32', shape: [1, 3, 640, 640] }, new Map([['x', [1, 3, 320, 320]]])),
    /disagrees with the model's fixed input shape/,
  );
});
