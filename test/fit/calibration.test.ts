// A fit never judges a candidate on a sample that calibrated it (issue 16): a judge path, the
// calibrate/ and judge/ subfolders of the calibration folder, or a deterministic split of one set.
import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, OCR_MODELS, runCli } from '../../devkit/paths.js';
import { calibrationNotes, calibrationParts, splitCalibration, type CalibData } from '../../src/fit/calibration.js';
import type { InputSet } from '../../src/data/inputs.js';
import { testDir } from '../helpers/tmp.js';

const sample = (v: number) => ({ x: { dtype: 'float32' as const, shape: [1], data: Float32Array.of(v) } });
const set = (n: number, labels?: number[]): InputSet => ({
  source: 'mem',
  kind: labels ? 'labelled-npy' : 'npy',
  synthetic: false,
  samples: Array.from({ length: n }, (_, i) => sample(i)),
  ...(labels ? { labels } : {}),
});
const values = (s: InputSet) => s.samples.map((x) => (x.x!.data as Float32Array)[0]);

t.test('a flat set alternates: even samples calibrate, odd ones judge, none both', async (t) => {
  const { calibrate, judge } = splitCalibration(set(5));
  t.same(values(calibrate), [0, 2, 4]);
  t.same(values(judge), [1, 3]);
});

t.test('a labelled set alternates within each class, so both halves keep every class', async (t) => {
  // the loader takes labelled folders round-robin over the classes: 0,1,0,1,...
  const { calibrate, judge } = splitCalibration(set(8, [0, 1, 0, 1, 0, 1, 0, 1]));
  t.same(calibrate.labels, [0, 1, 0, 1]);
  t.same(judge.labels, [0, 1, 0, 1]);
  t.same(values(calibrate), [0, 1, 4, 5]);
  t.same(values(judge), [2, 3, 6, 7]);
});

t.test('one sample cannot be split, and the notes say the figures are flattered and weak', async (t) => {
  const one = set(1);
  const { calibrate, judge } = splitCalibration(one);
  t.equal(calibrate, one);
  t.equal(judge, one);
  const c: CalibData = { samples: one.samples, source: 'mem', synthetic: false, judge, judgeSource: 'mem', judgeCount: 1, split: 'none' };
  const notes = calibrationNotes(c).join('\n');
  t.match(notes, /also judges/);
  t.match(notes, /only 1 sample/);
  t.same(calibrationNotes({ ...c, judgeCount: 8, split: 'folders' }), []);
});

t.test('calibrate/ and judge/ subfolders are used; a judge path wins over judge/', async (t) => {
  const dir = testDir('edgefit-calib-');
  t.same(calibrationParts(dir), { calibrate: dir, split: 'alternate' }, 'a flat folder is split');
  mkdirSync(join(dir, 'calibrate'));
  mkdirSync(join(dir, 'judge'));
  t.same(calibrationParts(dir), { calibrate: join(dir, 'calibrate'), judge: join(dir, 'judge'), split: 'folders' });
  t.same(calibrationParts(dir, '/elsewhere'), { calibrate: join(dir, 'calibrate'), judge: '/elsewhere', split: 'judge-path' });
});

t.test('a fit of the real det on the bundled set calibrates on calibrate/ and judges on judge/', async (t) => {
  const dir = testDir('edgefit-calib-fit-');
  const r = await runCli(
    // 160x160 (the images are resized to it) keeps the test short; a generous budget keeps the original
    ['fit', OCR_MODELS.det.file, '--calib', join(ROOT, 'assets/calib/det'), '--shape', 'x=1x3x160x160', '-o', join(dir, 'det.onnx')].concat(
      ['--latency', '10x', '--json'],
    ),
    { env: { ...process.env, EDGEFIT_CACHE_DIR: join(dir, 'cache') } },
  );
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout).calibration, {
    source: join(ROOT, 'assets/calib/det/calibrate'),
    samples: 16,
    judgeSource: join(ROOT, 'assets/calib/det/judge'),
    judgeSamples: 16,
    split: 'folders',
    synthetic: false,
  });
});
