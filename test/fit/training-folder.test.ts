// Where distillation's training images come from (issue 18): a `train` folder in or beside the
// calibration folder (assets/calib/det lays out calibrate/, judge/ and train/), or --train-data;
// the calibration samples are then held out whole.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, randn, rng } from '../../devkit/builder.js';
import { ROOT, runCli } from '../../devkit/paths.js';
import { writeNpy } from '../../src/data/npy.js';
import { saveModel } from '../../src/onnx/index.js';
import { trainingFolder } from '../../src/fit/calibration.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-trainfolder-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('a train folder inside the calibration folder, or beside a calibrate folder', async (t) => {
  t.equal(trainingFolder(join(ROOT, 'assets/calib/det')), join(ROOT, 'assets/calib/det/train'), 'inside');
  t.equal(trainingFolder(join(ROOT, 'assets/calib/det/calibrate')), join(ROOT, 'assets/calib/det/train'), "beside (the agent's default)");
  t.equal(trainingFolder(join(ROOT, 'assets/calib/det/judge')), undefined, 'only beside a folder named calibrate');
  const flat = join(dir, 'flat');
  mkdirSync(flat);
  t.equal(trainingFolder(flat), undefined, 'none');
});

t.test('CLI: prune --recover distill trains on --train-data and holds the --calib samples out', async (t) => {
  const next = rng(5);
  const write = (name: string, n: number): string => {
    const d = join(dir, name);
    mkdirSync(d);
    writeNpy(join(d, 'x.npy'), { dtype: 'float32', shape: [n, 1, 8, 8], data: Float32Array.from(randn(next, n * 64)) });
    return d;
  };
  const calib = write('calib', 16);
  const train = write('train-set', 40);
  const model = join(dir, 'mlp.onnx');
  saveModel(FIXTURES.mlp(), model);
  const common = ['prune', model, '-o', join(dir, 'out.onnx'), '--structured', '0.5', '--threads', '1', '--no-verify-speed'];
  const r = await runCli([...common, '--recover', 'distill', '--train-minutes', '0.1', '--calib', calib, '--train-data', train, '--json'], {
    timeoutMs: 90_000,
  });
  t.equal(r.code, 0, r.stderr);
  const d = (JSON.parse(r.stdout) as { distill: { trainSamples: number; heldOutSamples: number }[] }).distill[0]!;
  t.equal(d.trainSamples, 40, 'every training sample trains');
  t.equal(d.heldOutSamples, 16, 'every calibration sample is held out');
  const bad = await runCli([...common, '--recover', 'lsq', '--calib', calib, '--train-data', train]);
  t.equal(bad.code, 2, 'usage error without distill');
  t.match(bad.stderr, /--train-data is for --recover distill/);
  const frozen = await runCli([...common, '--recover', 'lsq', '--calib', calib, '--train-freeze-stride', '8']);
  t.equal(frozen.code, 2, 'usage error without distill');
  t.match(frozen.stderr, /--train-freeze-stride is for --recover distill/);
});
