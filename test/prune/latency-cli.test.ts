// `edgefit prune --target-latency` end to end on the cls model (tables measured on this box, so
// no timing is asserted, only what the report must carry and how the verdict follows its figures),
// and its bad values refused with one line and the usage exit code.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { OCR_MODELS, OCR_FIT_SETS } from '../../devkit/paths.js';
import { fasterVerdict, marginFromPairs, MIN_MARGIN } from '../../src/evaluate/faster.js';

const run = promisify(execFile);
const MAIN = 'dist/src/cli/main.js';
const dir = mkdtempSync(join(tmpdir(), 'edgefit-latency-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, EDGEFIT_CACHE_DIR: join(dir, 'cache') };

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MAIN, ...args], { timeout: 180_000, env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

const CLS = OCR_MODELS.cls.file;

t.test('--target-latency 0.3x on cls: latency allocation, prediction and the speed check in --json', async (t) => {
  const out = join(dir, 'cls.onnx');
  const r = await cli([
    'prune',
    CLS,
    '-o',
    out,
    '--target-latency',
    '0.3x',
    '--calib',
    OCR_FIT_SETS.cls.calibrate,
    '--calib-count',
    '4',
    '--json',
  ]);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, any>;
  t.equal(j.steps[0].allocation, 'latency');
  t.equal(j.round, j.tables.block, "round auto is the tables' block");
  t.ok(j.latency.targetMs < j.latency.originalMs, 'target below the original');
  t.type(j.latency.predictedMs, 'number');
  for (const k of ['inputMs', 'outputMs', 'ratio', 'margin', 'predictedRatio']) t.type(j.speed[k], 'number', `speed.${k}`);
  t.equal(j.speed.threads, 2, 'timed at the --threads default');
  t.equal(j.speed.faster, j.speed.ratio < 1 - j.speed.margin, 'the verdict follows the rule');
  t.ok(j.macs.after < j.macs.before, 'channels really went');

  const skip = await cli([
    'prune',
    CLS,
    '-o',
    join(dir, 's.onnx'),
    '--structured',
    '0.3',
    '--shape',
    'x=1x3x48x192',
    '--no-verify-speed',
    '--json',
  ]);
  t.equal(skip.code, 0, skip.stderr);
  t.equal((JSON.parse(skip.stdout) as { speed: unknown }).speed, null, '--no-verify-speed skips the timing');
  const human = await cli(['prune', CLS, '-o', join(dir, 'h.onnx'), '--structured', '0.3', '--shape', 'x=1x3x48x192']);
  t.match(human.stdout, /^(faster|not faster): .* ms vs the original's .* ms/m, 'the summary says plainly whether it is faster');
});

t.test('bad --target-latency values and combinations: one line, usage exit code', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--target-latency', '0x'], /in \(0, 1\), got 0x \(--target-latency\)/],
    [['--target-latency=-0.5x'], /in \(0, 1\), got -0.5x/],
    [['--target-latency', '1x'], /in \(0, 1\), got 1x/],
    [['--target-latency', '0ms'], /positive time, got 0 ms/],
    [['--target-latency', '5furlongs'], /bad --target-latency '5furlongs'/],
    [['--target-latency', '100000ms'], /not below the model's [\d.]+ ms measured here/],
    [['--target-latency', '0.5x', '--structured', '0.3'], /give one of them/],
    [['--target-latency', '0.5x', '--target-macs', '0.3'], /give one of them/],
    [['--structured', '0.3', '--round', '0'], /positive integer or 'auto', got 0 \(--round\)/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(['prune', CLS, '-o', join(dir, 'bad.onnx'), '--shape', 'x=1x3x48x192', ...args]);
    t.equal(r.code, 2, `${args.join(' ')}: usage exit code`);
    t.match(r.stderr, re, args.join(' '));
    t.equal(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('(see')).length,
      1,
      'one line',
    );
  }
  const det = await cli(['prune', OCR_MODELS.det.file, '-o', join(dir, 'det.onnx'), '--target-latency', '0.5x']);
  t.not(det.code, 0);
  t.match(det.stderr, /dynamic dims .*give --shape x=/, 'dynamic dims without --shape: say which flag');
});

t.test("the speed verdict: faster only below 1 by more than the pairs' noise", async (t) => {
  const steady = Array.from({ length: 15 }, () => 0.8);
  t.equal(marginFromPairs(steady), MIN_MARGIN, 'no spread: the floor margin');
  t.ok(fasterVerdict({ inputMs: 10, outputMs: 9.7, pairRatios: steady }).faster, '0.97x with no noise: faster');
  t.notOk(fasterVerdict({ inputMs: 10, outputMs: 9.9, pairRatios: steady }).faster, '0.99x is within the floor margin');
  const noisy = Array.from({ length: 15 }, (_, i) => 0.6 + 0.05 * i); // IQR 0.35
  const m = marginFromPairs(noisy);
  t.ok(m > 0.1 && m < 0.2, `noisy pairs widen the margin (${m.toFixed(3)})`);
  t.notOk(fasterVerdict({ inputMs: 10, outputMs: 9, pairRatios: noisy }).faster, '0.9x within that noise: not faster');
  t.ok(fasterVerdict({ inputMs: 10, outputMs: 7, pairRatios: noisy }).faster, '0.7x beyond it: faster');
  t.notOk(fasterVerdict({ inputMs: 10, outputMs: 11, pairRatios: steady }).faster, 'slower is never faster');
  t.equal(marginFromPairs([0.5, 0.5]), 0.1, 'too few pairs: a clear 10% asked');
});
