// `edgefit eval` end to end through the real CLI: the JSON fields issue 3 lists, and one clear
// line with a non-zero exit for each kind of bad input, with no report file left behind.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, ROOT, OCR_MODELS } from '../../devkit/paths.js';

const MNIST = join(ROOT, 'models/mnist-cnn.onnx');
const dir = mkdtempSync(join(tmpdir(), 'edgefit-evalcli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('--json on real images with a reference: the documented fields', async (t) => {
  const out = join(dir, 'report.json');
  const r = await runCli([
    'eval',
    OCR_MODELS.cls.file,
    '--reference',
    OCR_MODELS.cls.file,
    '--data',
    join(ROOT, 'test/fixtures/ocr/cls'),
    '--runs',
    '4',
    '--json',
    '--out',
    out,
  ]);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, any>;
  for (const k of ['p50', 'p95', 'p99', 'mean', 'cv']) t.type(j.latencyMs[k], 'number', `latencyMs.${k}`);
  t.equal(j.latencyMs.runs, 4);
  t.ok(j.loadMs > 0);
  t.ok(j.peakRssMb > j.modelRssMb && j.modelRssMb > 0, `peak ${j.peakRssMb} MiB, model ${j.modelRssMb} MiB`);
  t.equal(j.inputs, join(ROOT, 'test/fixtures/ocr/cls'));
  t.equal(j.synthetic, false);
  t.same(
    [j.fidelity.value, j.fidelity.metric, j.fidelity.cosine, j.fidelity.snrDb, j.fidelity.top1Agreement],
    [1, 'top1', 1, null, 1],
    'self: fidelity 1, infinite SNR as null',
  );
  t.ok(j.accuracy.value >= 0.8, `PP-OCR cls accuracy on the labelled crops ${j.accuracy.correct}/${j.accuracy.total}`);
  t.same(JSON.parse(readFileSync(out, 'utf8')), j, '--out holds the same report');
});

t.test('synthetic inputs are flagged', async (t) => {
  const r = await runCli(['eval', MNIST, '--reference', MNIST, '--runs', '2', '--json', '--fidelity-metric', 'cosine']);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, any>;
  t.equal(j.inputs, 'synthetic');
  t.equal(j.synthetic, true);
  t.equal(j.fidelity.synthetic, true);
  t.equal(j.fidelity.metric, 'cosine');
  const h = await runCli(['eval', MNIST, '--runs', '2']);
  t.match(h.stdout, /SYNTHETIC inputs/, 'the human report says so too');
});

t.test('bad input: one line, non-zero exit, nothing written', async (t) => {
  const out = join(dir, 'never.json');
  const cases: [string, string[], number, RegExp][] = [
    ['unreadable data', ['--data', join(dir, 'missing')], 1, /^edgefit: cannot read data .*missing: ENOENT$/],
    [
      'shape mismatch',
      ['--data', join(ROOT, 'test/fixtures/ocr/det')],
      1,
      /^edgefit: .*data of shape 1x3x640x640 does not fit input 'x' \?x1x28x28$/,
    ],
    [
      'reference with other outputs',
      ['--reference', OCR_MODELS.rec.file],
      1,
      /^edgefit: reference .* has outputs \[.*\] but the model has \[logits\]: not comparable$/,
    ],
    ['bad --shape', ['--shape', 'x=1by1'], 2, /^edgefit: bad --shape 'x=1by1'/],
    ['bad --threads', ['--threads', '0'], 2, /^edgefit: --threads must be an integer >= 1, got 0$/],
    ['over the RSS cap', ['--rss-cap-mb', '20'], 3, /^edgefit: model evaluation used \d+ MiB RSS, over the 20 MiB cap; killed$/],
  ];
  for (const [name, args, code, re] of cases) {
    const r = await runCli(['eval', MNIST, '--runs', '2', '--out', out, ...args]);
    t.equal(r.code, code, `${name}: exit ${code}`);
    const lines = r.stderr.trim().split('\n');
    t.match(lines[0], re, name);
    t.ok(lines.length <= 2 && !/\n\s+at /.test(r.stderr), `${name}: no stack`);
    t.equal(r.stdout, '', `${name}: nothing on stdout`);
    t.notOk(existsSync(out), `${name}: no report written`);
  }
  const missing = await runCli(['eval', join(dir, 'nope.onnx')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /model file not found/);
});

t.test('--task text-det: the det judged by its boxes, printed and stored with the report', async (t) => {
  const det = OCR_MODELS.det.file;
  const data = join(ROOT, 'test/fixtures/ocr/det');
  const common = ['--data', data, '--shape', 'x=1x3x640x640', '--limit', '2', '--runs', '1', '--threads', '2'];
  const r = await runCli(['eval', det, '--reference', det, '--task', 'text-det', ...common]);
  t.equal(r.code, 0, r.stderr);
  t.match(
    r.stdout,
    /^task {7}text-det \(given\): box F1 1, precision 1, recall 1, mask IoU 1, (\d+) boxes vs \1 in the reference over 2 sample\(s\)$/m,
  );
  t.match(r.stdout, /^fidelity {3}1\.000000 \(boxF1\) vs /m);
  const j = JSON.parse((await runCli(['eval', det, '--reference', det, ...common, '--json'])).stdout) as Record<string, any>;
  t.same([j.fidelity.task, j.fidelity.taskAuto, j.fidelity.metric, j.fidelity.value], ['text-det', true, 'boxF1', 1], 'auto-detected');
  t.same([j.fidelity.taskFigures.precision, j.fidelity.taskFigures.recall], [1, 1]);
  const bad = await runCli(['eval', det, '--reference', det, '--task', 'ctc', ...common]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^edgefit: task ctc does not fit this model's outputs \(sigmoid_0\.tmp_0 1x1x640x640\): .* \(--task\)\n$/);
  const unknown = await runCli(['eval', det, '--task', 'boxes']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown task 'boxes': expected auto or one of classify, text-det, detect, ctc, embed, raw \(--task\)/);
});
