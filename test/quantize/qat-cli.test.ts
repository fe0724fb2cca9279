// edgefit quantize --mode qat through the real CLI: progress on stderr, the model written in the
// static QDQ form (int8 kernels), the training report in --json, and one-line errors (issue 18).
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import { ROOT, runCli } from '../../devkit/paths.js';
import { loadModel } from '../../src/onnx/index.js';

const MNIST = join(ROOT, 'models/mnist-cnn.onnx');
const dir = mkdtempSync(join(tmpdir(), 'edgefit-qat-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const cal = writeMnistLabelled(join(dir, 'cal'), { split: 'train', limit: 32 }).xPath;

t.test('qat trains the static int8 model and writes it in QDQ form with a training report', async (t) => {
  const out = join(dir, 'qat.onnx');
  const r = await runCli(['quantize', MNIST, '-o', out, '--mode', 'qat', '--train-minutes', '0.15', '--calib', cal, '--json', '--force'], {
    timeoutMs: 240_000,
  });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /qat: step \d+ .*loss \d/, 'progress lines with the loss');
  const j = JSON.parse(r.stdout) as Record<string, any>;
  t.equal(j.mode, 'qat');
  t.equal(j.written, 'qat');
  t.ok(j.qat.training.steps > 0, `${j.qat.training.steps} training steps`);
  t.equal(j.qat.trainSamples + j.qat.heldOutSamples, 32, 'the calibration samples split into training and held-out');
  t.ok(j.qat.fidelityQat.cosine > 0.99, `held-out cosine vs float ${j.qat.fidelityQat.cosine}`);
  t.ok((j.runtimeOps.QLinearConv ?? 0) > 0, `int8 kernels: ${JSON.stringify(j.runtimeOps)}`);
  const m = loadModel(out);
  t.ok(
    m.graph.nodes.some((n) => n.opType === 'QuantizeLinear'),
    'QDQ form',
  );
  t.notOk(
    m.graph.nodes.some((n) => n.opType === 'Round'),
    'no fake quantizer left',
  );
});

t.test('qat with --train-data trains on it and holds every calibration sample out', async (t) => {
  const train = writeMnistLabelled(join(dir, 'train'), { split: 'test', limit: 48 }).xPath;
  const out = join(dir, 'qat-own.onnx');
  const r = await runCli(
    ['quantize', MNIST, '-o', out, '--mode', 'qat', '--train-minutes', '0.05', '--calib', cal, '--train-data', train, '--json', '--force'],
    { timeoutMs: 240_000 },
  );
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { qat: { trainSamples: number; heldOutSamples: number } };
  t.equal(j.qat.trainSamples, 48, 'every training sample trains, no calibration sample among them');
  t.equal(j.qat.heldOutSamples, 32, 'every calibration sample is held out');
});

t.test('qat in text: the held-out line is its fidelity, not a claim that nothing was measured', async (t) => {
  const out = join(dir, 'qat-text.onnx');
  const r = await runCli(['quantize', MNIST, '-o', out, '--mode', 'qat', '--train-minutes', '0.05', '--calib', cal, '--force'], {
    timeoutMs: 240_000,
  });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^held-out vs float: static int8 cosine \d\.\d+.*; qat int8 cosine \d\.\d+/m);
  t.match(r.stdout, /^quantization-aware training from static quantization \(minmax\) -> /m);
  t.match(r.stdout, /^fidelity: the held-out line above/m);
  t.notMatch(r.stdout, /not measured/, 'calibration data was given and measured');
});

t.test('qat without --train-minutes or data is a one-line error', async (t) => {
  const out = join(dir, 'bad.onnx');
  for (const [args, re] of [
    [['--calib', cal], /--mode qat needs --train-minutes/],
    [['--train-minutes', '0', '--calib', cal], /a positive number of minutes\), got 0/],
    [['--train-minutes', '1'], /qat needs calibration data/],
    [
      ['--train-minutes', '1', '--calib', cal, '--train-freeze-stride', '1'],
      /--train-freeze-stride must be 0 \(train every layer\) or an integer from 2, got 1/,
    ],
  ] as const) {
    const r = await runCli(['quantize', MNIST, '-o', out, '--mode', 'qat', ...args]);
    t.not(r.code, 0, 'non-zero exit');
    t.match(r.stderr, re);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
    t.notOk(existsSync(out), 'nothing written');
  }
});

t.test('training flags outside --mode qat are a one-line usage error, before any work', async (t) => {
  const out = join(dir, 'static.onnx');
  for (const flag of ['--train-data', '--train-minutes', '--train-ram-mb', '--train-freeze-stride']) {
    const r = await runCli(['quantize', MNIST, '-o', out, '--mode', 'static', '--calib', cal, flag, flag === '--train-data' ? cal : '1']);
    t.equal(r.code, 2, `${flag}: usage exit code`);
    t.match(r.stderr, new RegExp(`${flag} is for --mode qat`));
    t.notOk(existsSync(out), 'nothing written');
  }
});
