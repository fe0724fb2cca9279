// What a training the agent holds between steps costs the served model: det's inference timed in
// this process (as the serve process times its probes) before a det distillation starts, while it
// trains, while it is stopped, and after it ends, all in one run:
//   node dist/scripts/bench-held-training.js [--minutes 4] [--runs 15] [--threads 2]
// The training is `edgefit prune <det> --target-latency 0.5x --recover distill` in a child process
// at normal priority; "stopped" is that child under SIGSTOP (1.5 s after it, so the step it was in
// is frozen, not finishing): no instruction of it runs, as at the agent's gate, where it awaits a
// promise. If a held training still slowed the box (its memory, its idle threads), "stopped" would
// sit above "after". Rounds alternate running and stopped; base and after are four timings each.
// Only ratios within one run mean anything on a shared box.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { CLI, OCR_FIT_SETS, OCR_MODELS } from '../devkit/paths.js';
import { openSession } from '../src/runtime/session.js';
import { median } from './interleave.js';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '4' },
    runs: { type: 'string', default: '15' },
    threads: { type: 'string', default: '2' },
  },
});
const RUNS = Number(args.runs);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const det = OCR_MODELS.det;
const session = await openSession(det.file, { threads: Number(args.threads) });
// a real judge image would time the same: det's latency does not depend on the pixels
const x = new ort.Tensor('float32', new Float32Array(det.shape.reduce((a: number, b: number) => a * b, 1)).fill(0.3), [...det.shape]);
const input = session.inputNames[0]!;
/** Median of RUNS inferences, ms. */
const timed = async (): Promise<number> => {
  const t: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await session.run({ [input]: x });
    t.push(performance.now() - t0);
  }
  return median(t);
};

for (let i = 0; i < 3; i++) await session.run({ [input]: x });
const base: number[] = [];
for (let i = 0; i < 4; i++) base.push(await timed());

const dir = mkdtempSync(join(tmpdir(), 'edgefit-held-'));
const child = spawn(
  process.execPath,
  [
    CLI,
    'prune',
    det.file,
    '-o',
    join(dir, 'pruned.onnx'),
    '--target-latency',
    '0.5x',
    '--recover',
    'distill',
    '--train-minutes',
    args.minutes,
    '--calib',
    OCR_FIT_SETS.det.calibrate,
    '--shape',
    `x=${det.shape.join('x')}`,
    '--no-verify-speed',
  ],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
let training = false;
let exited = false;
child.stderr.on('data', (b: Buffer) => {
  // the distillation's progress lines: from its first step on, the child is training
  if (/distill: step/.test(b.toString())) training = true;
});
const done = new Promise<number | null>((r) => child.on('exit', (code) => ((exited = true), r(code))));

const running: number[] = [];
const stopped: number[] = [];
while (!exited) {
  await sleep(3000);
  if (exited) break;
  const t = await timed();
  if (!training || exited) continue;
  running.push(t);
  child.kill('SIGSTOP');
  await sleep(1500);
  stopped.push(await timed());
  child.kill('SIGCONT');
  process.stderr.write(`training ${running.at(-1)!.toFixed(1)} ms, stopped ${stopped.at(-1)!.toFixed(1)} ms\n`);
}
const code = await done;
rmSync(dir, { recursive: true, force: true });
if (code !== 0) throw new Error(`the training child exited with ${code}`);
const after: number[] = [];
for (let i = 0; i < 4; i++) after.push(await timed());

const f = (v: number): string => v.toFixed(1);
console.log(`det inference, ${args.threads} threads, medians of ${RUNS} runs per timing:`);
console.log(`  before the training      ${f(median(base))} ms (${base.map(f).join(' ')})`);
console.log(`  while it trains          ${f(median(running))} ms (${running.length} timings)`);
console.log(
  `  while it is stopped      ${f(median(stopped))} ms (${stopped.length} timings, ${f(Math.min(...stopped))}-${f(Math.max(...stopped))})`,
);
console.log(`  after it ended           ${f(median(after))} ms (${after.map(f).join(' ')})`);
console.log(
  `  stopped / after ${(median(stopped) / median(after)).toFixed(3)}, stopped / before ${(median(stopped) / median(base)).toFixed(3)}`,
);
