// Calibration data defines the input shapes a model leaves dynamic (issue 16): the real PP-OCRv4
// det (input x: [N, 3, H, W], all free) fed a small .npy or an image folder needs no --shape; a
// given shape still wins (images are resized to it) and one an array contradicts fails naming both.
import t from 'tap';
import { join } from 'node:path';
import { OCR_MODELS, ROOT, runCli } from '../../devkit/paths.js';
import { dataShapes, loadInputSet, type ModelInput } from '../../src/data/inputs.js';
import { writeNpy } from '../../src/data/npy.js';
import { EdgefitError } from '../../src/errors.js';
import { testDir } from '../helpers/tmp.js';

const dir = testDir('edgefit-data-shapes-');
process.env.EDGEFIT_CACHE_DIR = join(dir, 'cache');
const DET: ModelInput = { name: 'x', dtype: 'float32', shape: ['N', 3, 'H', 'W'] };
const npy = join(dir, 'det64.npy');
// three 64x64 samples: small enough for a whole fit of det in seconds
const data = new Float32Array(3 * 3 * 64 * 64).map((_, i) => Math.sin(i * 0.37));
writeNpy(npy, { dtype: 'float32', shape: [3, 3, 64, 64], data });

t.test('an [N,3,64,64] .npy and an image folder define the shape of a dynamic input', async (t) => {
  t.same([...dataShapes(npy, [DET])], [['x', [1, 3, 64, 64]]]);
  t.same(dataShapes(join(ROOT, 'test/fixtures/ocr/det'), [DET]).get('x'), [1, 3, 640, 640], "the folder's preprocess.json size");
  const fixed: ModelInput = { name: 'x', dtype: 'float32', shape: ['N', 1, 28, 28] };
  t.same(dataShapes(npy, [fixed]).size, 0, 'a model that fixes its dims is left to its own shape (the data is not read)');
});

t.test('a given shape wins; an array that contradicts it is a one-line error naming input, both shapes and the option', async (t) => {
  const given = new Map([['x', [1, 3, 320, 320]]]);
  t.same(dataShapes(join(ROOT, 'test/fixtures/ocr/det'), [DET], given).get('x'), [1, 3, 320, 320], 'images resize to it');
  const set = loadInputSet(join(ROOT, 'test/fixtures/ocr/det'), [DET], { shapes: given, limit: 1 });
  t.same(set.samples[0]!.x!.shape, [1, 3, 320, 320]);
  let e: EdgefitError | undefined;
  try {
    loadInputSet(npy, [DET], { shapes: new Map([['x', [1, 3, 96, 96]]]) });
  } catch (err) {
    e = err as EdgefitError;
  }
  t.ok(e instanceof EdgefitError, 'an array cannot be resized to the given shape');
  if (!e) return;
  t.equal(e.code, 'SHAPE');
  t.match(e.message, /input 'x'.*1x3x96x96.*1x3x64x64/);
  t.same(e.remedy, { option: 'shapes', input: 'x', example: '1x3x64x64' });
  const r = await runCli(['eval', OCR_MODELS.det.file, '--data', npy, '--shape', 'x=1x3x96x96', '--runs', '1']);
  t.equal(r.code, 1);
  t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.match(r.stderr, /input 'x'.*1x3x96x96.*1x3x64x64.*--shape x=1x3x64x64/);
});

t.test('prune, quantize and fit of the real det need no --shape with a .npy', async (t) => {
  const pruned = await runCli(['prune', OCR_MODELS.det.file, '--calib', npy, '--structured', '0.2', '-o', join(dir, 'p.onnx'), '--json']);
  t.equal(pruned.code, 0, pruned.stderr);
  t.ok(JSON.parse(pruned.stdout).macs.ratio < 0.9, 'channels were removed');
  const q = await runCli(['quantize', OCR_MODELS.det.file, '--calib', npy, '--mode', 'static', '-o', join(dir, 'q.onnx'), '--json']);
  t.equal(q.code, 0, q.stderr);
  t.match(JSON.parse(q.stdout), { fidelity: { samples: 3 } }, 'calibrated and measured on the .npy');
  const fit = await runCli(['fit', OCR_MODELS.det.file, '--calib', npy, '-o', join(dir, 'f.onnx'), '--latency', '10x', '--json']);
  t.equal(fit.code, 0, fit.stderr);
  const j = JSON.parse(fit.stdout);
  t.equal(j.calibration.synthetic, false);
  t.equal(j.calibration.samples + j.calibration.judgeSamples, 3, 'every sample either calibrates or judges');
  t.match(j.notes.join('\n'), /judged on only 1 sample/, 'a tiny judge set is called weak');
  const bad = await runCli(['fit', OCR_MODELS.det.file, '--calib', npy, '--shape', 'x=1x3x96x96', '-o', join(dir, 'g.onnx')]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /input 'x'.*1x3x96x96.*1x3x64x64.*--shape/);
});

t.test('a calibrate/judge pair given where one set is wanted names both halves', async (t) => {
  const pair = join(ROOT, 'assets/calib/det');
  t.throws(() => loadInputSet(pair, [DET]), {
    code: 'DATA',
    message: /holds a calibrate\/ and a judge\/ set: give .*calibrate or .*judge/,
  });
  t.equal(loadInputSet(join(pair, 'judge'), [DET], { limit: 2 }).samples.length, 2);
});
