// Distillation after pruning: the pruned model trained against the original's outputs on real
// data (MNIST digits, average-pooled to the MLP fixture's 8x8 input) beats the lsq-recovered one
// on held-out samples; the CLI runs it end to end and reports it in --json; bad input is refused.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES } from '../../devkit/builder.js';
import { runCli } from '../../devkit/paths.js';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import type { Sample } from '../../src/data/inputs.js';
import { readNpy, writeNpy } from '../../src/data/npy.js';
import { cloneModel } from '../../src/ir/model.js';
import { saveModel } from '../../src/onnx/index.js';
import { prune } from '../../src/passes/prune/index.js';
import { distill, distillTrainable, splitHeldOut } from '../../src/passes/train/distill.js';
import { runFirstOutput } from '../../src/runtime/runner.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-distill-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** MNIST digits cropped to 24x24 and 3x3-average-pooled to 8x8, as x.npy [n,1,8,8] in `out`. */
function digits8(n: number, out: string): Float32Array {
  const raw = join(dir, 'raw');
  writeMnistLabelled(raw, { split: 'train', limit: n });
  const x = readNpy(join(raw, 'x.npy')).data as Float32Array;
  const y = new Float32Array(n * 64);
  for (let s = 0; s < n; s++)
    for (let r = 0; r < 8; r++)
      for (let c = 0; c < 8; c++) {
        let sum = 0;
        for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) sum += x[s * 784 + (2 + r * 3 + i) * 28 + 2 + c * 3 + j]!;
        y[s * 64 + r * 8 + c] = sum / 9;
      }
  writeNpy(join(out, 'x.npy'), { dtype: 'float32', shape: [n, 1, 8, 8], data: y });
  return y;
}

const calibDir = join(dir, 'calib');
const { mkdirSync } = await import('node:fs');
mkdirSync(calibDir);
const pixels = digits8(64, calibDir);
const samples: Sample[] = Array.from({ length: 64 }, (_, i) => ({
  x: { dtype: 'float32', shape: [1, 1, 8, 8], data: pixels.slice(i * 64, (i + 1) * 64) },
}));

t.test('the trainable set is the layers weights and biases', async (t) => {
  const m = FIXTURES.mlp();
  t.same(distillTrainable(m).sort(), ['fc_b_15', 'fc_b_3', 'fc_b_9', 'fc_w_14', 'fc_w_2', 'fc_w_8'].sort());
  const { train, heldOut } = splitHeldOut(samples);
  t.equal(train.length + heldOut.length, 64);
  t.equal(heldOut.length, 16, 'one in four held out (lsq rule)');
});

t.test('pruned + lsq, then distilled: held-out fidelity to the original improves', async (t) => {
  const teacher = FIXTURES.mlp();
  const student = cloneModel(teacher);
  const shapes = new Map([['x', [1, 1, 8, 8]]]);
  await prune(student, {
    structured: 0.6,
    importance: 'l1',
    recover: 'lsq',
    steps: 1,
    round: 1,
    shapes,
    samples,
    synthetic: false,
    skipFidelity: true,
  });
  const r = await distill(student, teacher, { minutes: 0.25, maxSteps: 150, samples, threads: 1, lr: 2e-3 });
  t.equal(r.trainSamples, 48);
  t.equal(r.heldOutSamples, 16);
  t.ok(r.training.improved, 'training lowered the held-out loss');
  t.ok(r.training.heldOutAfter < r.training.heldOutBefore, `loss ${r.training.heldOutBefore} -> ${r.training.heldOutAfter}`);
  t.ok(r.fidelityAfter.cosine > r.fidelityBefore.cosine, `held-out cosine ${r.fidelityBefore.cosine} -> ${r.fidelityAfter.cosine}`);
  t.equal(r.training.losses.y?.kind ?? Object.values(r.training.losses)[0]!.kind, 'kl', 'logits: KL');
});

/** The MLP and a copy pruned 70 % (it gets many rows wrong), with 16 calibration rows and 48 of its own training rows. */
async function prunedMlp() {
  const teacher = FIXTURES.mlp();
  const student = cloneModel(teacher);
  await prune(student, {
    structured: 0.7,
    importance: 'l1',
    recover: 'none',
    steps: 1,
    round: 1,
    shapes: new Map([['x', [1, 1, 8, 8]]]),
    samples,
    synthetic: false,
    skipFidelity: true,
  });
  return { teacher, student, calib: samples.slice(0, 16), own: samples.slice(16) };
}

t.test('hardHeldOut: the training rows the start gets most wrong join the held-out set (with a task only)', async (t) => {
  const { teacher, student, calib, own } = await prunedMlp();
  const base = { minutes: 0.05, maxSteps: 3, samples: calib, trainSamples: own, threads: 1, lr: 1e-3 };
  const r = await distill(cloneModel(student), teacher, { ...base, task: 'classify', hardHeldOut: 0.1 });
  t.ok(r.hardHeldOut >= 1 && r.hardHeldOut <= 5, `${r.hardHeldOut} of 48 rows moved (at most a tenth, rounded)`);
  t.equal(r.heldOutSamples, 16 + r.hardHeldOut, 'the calibration rows and the moved ones are held out');
  t.equal(r.trainSamples, 48 - r.hardHeldOut, 'the moved rows no longer train');
  const none = await distill(cloneModel(student), teacher, { ...base, hardHeldOut: 0.1 });
  t.equal(none.hardHeldOut, 0, 'without a task nothing says which rows are hard');
  t.equal(none.trainSamples, 48);
  await t.rejects(distill(cloneModel(student), teacher, { ...base, task: 'classify', hardHeldOut: 1.5 }), /hardHeldOut is a share/);
});

t.test('oversampleHard: the training rows the start gets wrong are drawn more often (with a task only)', async (t) => {
  const { teacher, student, calib, own } = await prunedMlp();
  // the rows whose top-1 the pruned start changes, counted here directly
  const top1 = (o: { data: ArrayLike<number> }): number => {
    let b = 0;
    for (let i = 1; i < o.data.length; i++) if (o.data[i]! > o.data[b]!) b = i;
    return b;
  };
  const [ref, got] = [await runFirstOutput(teacher, own, 1), await runFirstOutput(student, own, 1)];
  const wrong = ref.filter((r, i) => top1(r) !== top1(got[i]!)).length;
  t.ok(wrong > 0 && wrong < own.length, `the start changes the top-1 of ${wrong} of ${own.length} rows`);
  const base = { minutes: 0.05, maxSteps: 3, samples: calib, trainSamples: own, threads: 1, lr: 1e-3 };
  const r = await distill(cloneModel(student), teacher, { ...base, task: 'classify', oversampleHard: 3 });
  t.equal(r.oversampled, wrong, 'exactly those rows are drawn more often');
  t.equal(r.trainSamples, 48, 'and all rows still train');
  t.equal((await distill(cloneModel(student), teacher, { ...base, oversampleHard: 3 })).oversampled, 0, 'without a task: none');
  t.equal(
    (await distill(cloneModel(student), teacher, { ...base, task: 'classify', oversampleHard: 1 })).oversampled,
    0,
    'a factor of 1: none',
  );
  await t.rejects(
    distill(cloneModel(student), teacher, { ...base, task: 'classify', oversampleHard: 0.5 }),
    /oversampleHard is a factor of at least 1/,
  );
});

t.test('CLI: prune --recover distill --train-minutes 0.2 runs end to end and reports the training', async (t) => {
  const model = join(dir, 'mlp.onnx');
  saveModel(FIXTURES.mlp(), model);
  const out = join(dir, 'mlp-d.onnx');
  const common = ['prune', model, '-o', out, '--structured', '0.5', '--threads', '1', '--no-verify-speed'];
  const r = await runCli(
    [...common, '--recover', 'distill', '--train-minutes', '0.2', '--calib', calibDir, '--calib-count', '64', '--json'],
    {
      timeoutMs: 90_000,
    },
  );
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    distill: {
      trainSamples: number;
      heldOutSamples: number;
      training: {
        steps: number;
        seconds: number;
        heldOutBefore: number;
        heldOutAfter: number;
        judged?: { name: string; before: number; after: number };
        kernels?: { used: string; rewritten: Record<string, number>; ms: Record<string, number> };
      };
    }[];
    steps: { distill?: { steps: number } }[];
  };
  t.equal(j.distill.length, 1);
  const d = j.distill[0]!;
  t.ok(d.training.steps > 0, `${d.training.steps} steps`);
  t.ok(d.training.seconds <= 12.5, `${d.training.seconds} s of a 12 s budget`);
  t.equal(j.steps[0]!.distill?.steps, d.training.steps, 'the history step records it');
  // which conv kernels the step ran, and the timings that chose them (src/passes/train/nchwc.ts)
  const k = d.training.kernels;
  t.ok(
    k && ['generic', 'all', 'depthwise'].includes(k.used) && (k.used === 'generic' || k.ms[k.used]! < k.ms['generic']!),
    `conv kernels: ${JSON.stringify(k)}`,
  );

  // the CLI's --task (auto: a classifier's logits) scored every held-out evaluation and picked the weights
  t.equal(d.training.judged?.name, 'top1', 'judged by top-1 agreement');
  t.ok(d.training.judged!.after >= d.training.judged!.before, 'never worse by it');
  t.match(r.stderr, /distill: step \d+/, 'progress on stderr');

  // iterative pruning: a distillation after each step, the minutes split between them
  const two = await runCli(
    [...common, '--steps', '2', '--recover', 'distill', '--train-minutes', '0.1', '--calib', calibDir, '--calib-count', '64', '--json'],
    { timeoutMs: 90_000 },
  );
  t.equal(two.code, 0, two.stderr);
  const j2 = JSON.parse(two.stdout) as { distill: { training: { seconds: number } }[] };
  t.equal(j2.distill.length, 2, 'one distillation per step');
  t.ok(
    j2.distill.every((x) => x.training.seconds <= 3.2),
    `each within half of the 6 s: ${j2.distill.map((x) => x.training.seconds).join(', ')} s`,
  );

  const bad = await runCli([...common, '--recover', 'distill', '--train-minutes', '-1', '--calib', calibDir]);
  t.equal(bad.code, 2, 'usage error');
  t.match(bad.stderr, /--train-minutes must be a positive number/);
  t.equal(bad.stderr.trim().split('\n').length, 1, 'one line');
  const noData = await runCli([...common, '--recover', 'distill', '--train-minutes', '0.1']);
  t.not(noData.code, 0);
  t.match(noData.stderr, /trains on real data.*--calib/);
  t.equal(noData.stderr.trim().split('\n').length, 1, 'one line');
});
