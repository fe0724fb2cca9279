// No false successes from bad input (issue 20), through the real CLI: each attack from the issue
// is done and must now end in one line and a non-zero exit, with nothing written:
// zero or negative dims in --shape (every command), budgets out of range, an output path that
// cannot be written (checked before any work), and NaN calibration data.
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import { writeNpy } from '../../src/data/npy.js';
import { OCR_MODELS, ROOT, runCli, type CliResult } from '../../devkit/paths.js';

const MNIST = join(ROOT, 'models/mnist-cnn.onnx');
const DET = OCR_MODELS.det.file;
const dir = mkdtempSync(join(tmpdir(), 'edgefit-cli-inputs-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const cache = join(dir, 'cache');
const env = { EDGEFIT_CACHE_DIR: cache };

function refused(t: Test, r: CliResult, code: number, re: RegExp): void {
  t.equal(r.code, code, `exit ${code}`);
  t.match(r.stderr, re);
  t.equal(r.stderr.split('\n').filter((l) => l.startsWith('edgefit:')).length, 1, 'one error line');
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.equal(r.stdout, '', 'no claimed result');
}

t.test('fit --shape x=0x3x640x640 --latency-ms 50 is a usage error, not a 0.5 ms success', async (t) => {
  const out = join(dir, 'zero.onnx');
  const r = await runCli(['fit', DET, '--shape', 'x=0x3x640x640', '--latency-ms', '50', '-o', out], { env });
  refused(t, r, 2, /input 'x' \(0x3x640x640\) has dim 0/);
  t.notOk(existsSync(out), 'no model written');
  t.notOk(existsSync(cache), 'no candidate measured');
});

t.test('every command that takes --shape refuses zero and negative dims', async (t) => {
  const o = join(dir, 'never.onnx');
  const cases: string[][] = [
    ['fit', DET, '-o', o, '--shape', 'x=1x3x-640x640'],
    ['quantize', DET, '-o', o, '--mode', 'dynamic', '--shape', 'x=1x0x640x640'],
    ['prune', DET, '-o', o, '--structured', '0.3', '--shape', 'x=1x3x640x0'],
    ['eval', DET, '--shape', 'x=0x3x640x640'],
    ['latency', DET, '--shape', 'x=1x3x0x640'],
    ['inspect', DET, '--shape', 'x=1x3x640x-1'],
    ['serve', DET, '--port', '0', '--shape', 'x=0x3x640x640'],
    ['agent', '--model', DET, '--state-dir', join(dir, 'agent-state'), '--shape', 'x=0x3x640x640'],
  ];
  for (const args of cases) {
    const r = await runCli(args, { env, timeoutMs: 60_000 });
    t.equal(r.code, 2, `${args[0]}: exit 2 (${r.stderr.trim()})`);
    t.match(r.stderr, /every dim must be a whole number of at least 1/, `${args[0]}: says why`);
  }
  t.notOk(existsSync(o));
  t.notOk(existsSync(join(dir, 'agent-state', 'state.db')), 'the agent did not start');
});

t.test('budgets out of range are usage errors before any work', async (t) => {
  const o = join(dir, 'budget.onnx');
  for (const [flag, v, re] of [
    ['--latency-ms', '-1', /latency budget \(ms\) must be above 0.*got -1 \(--latency-ms\)/],
    ['--latency-ms', '0', /latency budget/],
    ['--ram-mb', '-5', /RAM budget/],
    ['--min-fidelity', '0', /fidelity floor .*got 0 \(--min-fidelity\)/],
    ['--min-fidelity', '1.5', /fidelity floor/],
    ['--size-mb', '0', /size budget/],
    ['--latency', '0x', /relative latency budget/],
  ] as const) {
    const r = await runCli(['fit', MNIST, '-o', o, flag, v], { env });
    refused(t, r, 2, re);
  }
  t.notOk(existsSync(o));
  t.notOk(existsSync(cache), 'nothing measured');
});

t.test('an output path that cannot be written is refused before any work, for every command that writes', async (t) => {
  const folder = join(dir, 'a-folder');
  mkdirSync(folder);
  const missing = join(dir, 'no-such-folder', 'out.onnx');
  const underFile = join(dir, 'a-file', 'out.onnx');
  writeFileSync(join(dir, 'a-file'), 'x');
  const cal = writeMnistLabelled(join(dir, 'cal'), { split: 'train', limit: 8 }).xPath;
  for (const [bad, re] of [
    [folder, /is a folder/],
    [missing, /folder .*no-such-folder does not exist/],
    [underFile, /a-file is not a folder/],
  ] as const) {
    const started = Date.now();
    refused(t, await runCli(['fit', MNIST, '-o', bad, '--calib', cal], { env }), 2, re);
    refused(t, await runCli(['fit', MNIST, '-o', join(dir, 'ok.onnx'), '--report', bad, '--calib', cal], { env }), 2, /report/);
    refused(t, await runCli(['quantize', MNIST, '-o', bad, '--mode', 'static', '--calib', cal], { env }), 2, re);
    refused(t, await runCli(['prune', MNIST, '-o', bad, '--structured', '0.3'], { env }), 2, re);
    refused(t, await runCli(['eval', MNIST, '--out', bad], { env }), 2, /report/);
    t.ok(Date.now() - started < 30_000, 'refused at once, not after a search');
  }
  t.notOk(existsSync(cache), 'no fit started');
  t.same(
    readdirSync(dir).filter((f) => f.endsWith('.probe')),
    [],
    'the writability probe leaves nothing behind',
  );
});

t.test('an all-NaN calibration .npy is refused, not a fully int8 model at "cosine mean NaN"', async (t) => {
  const nan = join(dir, 'nan.npy');
  writeNpy(nan, { dtype: 'float32', shape: [8, 1, 28, 28], data: new Float32Array(8 * 784).fill(NaN) });
  const out = join(dir, 'nan-int8.onnx');
  const q = await runCli(['quantize', MNIST, '-o', out, '--mode', 'static', '--calib', nan, '--min-fidelity', '0.99', '--json']);
  refused(t, q, 1, /nan\.npy: 8 of 8 sample\(s\) hold NaN or infinite values/);
  t.notOk(existsSync(out), 'no model written');
  const f = await runCli(['fit', MNIST, '-o', out, '--calib', nan, '--min-fidelity', '0.99', '--shape', 'x=1x1x28x28'], { env });
  refused(t, f, 1, /8 of 8 sample\(s\) hold NaN/);
  t.notOk(existsSync(out));
  // a judge set with one NaN sample among good ones: refused too, never averaged over
  const judge = join(dir, 'judge.npy');
  const d = new Float32Array(4 * 784).fill(0.5);
  d[2 * 784 + 5] = NaN;
  writeNpy(judge, { dtype: 'float32', shape: [4, 1, 28, 28], data: d });
  const cal = writeMnistLabelled(join(dir, 'cal2'), { split: 'train', limit: 8 }).xPath;
  const j = await runCli(['fit', MNIST, '-o', out, '--calib', cal, '--judge', judge, '--shape', 'x=1x1x28x28'], { env });
  refused(t, j, 1, /1 of 4 sample\(s\) hold NaN .*first: sample 2/);
});
