// Benchmark of distillation after pruning (issue 18), on this box.
//   node dist/scripts/bench-distill.js [--only mnist] [--minutes 3] [--train 2000] [--target-macs 0.7]
//     [--batch 32] [--lr 5e-4] [--threads 2] [--json tmp/bench-distill.json]
// MNIST CNN (models/mnist-cnn.onnx) with 70 % of its MACs removed (the prune option takes the
// fraction REMOVED: PruneOptions.targetMacs), activation importance + lsq, then distilled WITHOUT
// labels: the student learns the original's logits (KL, T=4) on --train digits of the train split
// (lsq calibrates on the first 512 of them); accuracy of original, pruned+lsq and pruned+distill on
// the 1996 held-out digits of the test split, which neither recovery saw. Figures: train minutes,
// steps, one step vs one inference of the same batch (medians), peak RSS.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadCalib } from '../devkit/calib.js';
import { writeMnistLabelled } from '../devkit/mnist-to-labelled.js';
import type { Sample } from '../src/data/inputs.js';
import { cloneModel, type Model } from '../src/ir/model.js';
import { loadModel } from '../src/onnx/index.js';
import { normalize } from '../src/passes/normalize.js';
import { prune } from '../src/passes/prune/index.js';
import { countMacs } from '../src/passes/prune/structured.js';
import { distill } from '../src/passes/train/distill.js';
import { runFirstOutput } from '../src/runtime/runner.js';
import { writeFileAtomic } from '../src/util/fs.js';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'mnist' },
    minutes: { type: 'string', default: '3' },
    train: { type: 'string', default: '2000' },
    'target-macs': { type: 'string', default: '0.7' },
    batch: { type: 'string', default: '32' },
    lr: { type: 'string' },
    threads: { type: 'string', default: '2' },
    json: { type: 'string' },
  },
});
const threads = Number(args.threads);

async function accuracy(m: Model, samples: readonly Sample[], labels: readonly number[]): Promise<number> {
  const outs = await runFirstOutput(m, samples, threads);
  let ok = 0;
  outs.forEach((o, i) => {
    let best = 0;
    for (let j = 1; j < o.data.length; j++) if (o.data[j]! > o.data[best]!) best = j;
    if (best === labels[i]) ok++;
  });
  return ok / outs.length;
}

async function mnist(dir: string): Promise<Record<string, unknown>> {
  const shape = [1, 1, 28, 28];
  const nTrain = Number(args.train);
  writeMnistLabelled(join(dir, 'train'), { split: 'train', limit: nTrain });
  writeMnistLabelled(join(dir, 'test'), { split: 'test' });
  const trainSet = loadCalib(join(dir, 'train'), shape, nTrain).samples;
  const test = loadCalib(join(dir, 'test'), shape, 5000);
  const labels = test.labels!;
  const original = normalize(loadModel('models/mnist-cnn.onnx'));
  const shapes = new Map([['x', shape]]);
  const accOrig = await accuracy(original, test.samples, labels);

  const pruned = cloneModel(original);
  const t0 = performance.now();
  const pr = await prune(pruned, {
    targetMacs: Number(args['target-macs']),
    importance: 'activation',
    recover: 'lsq',
    steps: 1,
    round: 1,
    shapes,
    samples: trainSet.slice(0, 512),
    synthetic: false,
    threads,
    skipFidelity: true,
  });
  const pruneS = (performance.now() - t0) / 1000;
  const accLsq = await accuracy(pruned, test.samples, labels);

  const student = cloneModel(pruned);
  let lastTenth = -1;
  const d = await distill(student, original, {
    minutes: Number(args.minutes),
    samples: trainSet,
    threads,
    batch: Number(args.batch),
    lr: args.lr !== undefined ? Number(args.lr) : undefined,
    onProgress: (p) => {
      const tenth = Math.floor((p.seconds / p.budgetSeconds) * 10);
      if (tenth === lastTenth && p.heldOut === undefined) return;
      lastTenth = tenth;
      process.stderr.write(
        `  step ${p.step} ${p.seconds.toFixed(0)} s loss ${p.loss.toPrecision(4)}${p.heldOut !== undefined ? ` held-out ${p.heldOut.toPrecision(4)}` : ''}\n`,
      );
    },
  });
  const accDistill = await accuracy(student, test.samples, labels);
  const t = d.training;
  const macs = countMacs(cloneModel(student), shapes);
  const row = {
    model: 'mnist-cnn',
    macsRemoved: pr.macs.ratio !== null ? +(1 - pr.macs.ratio).toFixed(4) : null,
    macs: { before: pr.macs.before, after: macs },
    params: pr.params,
    accuracy: { original: accOrig, prunedLsq: accLsq, prunedDistill: accDistill },
    lossPoints: { lsq: +((accOrig - accLsq) * 100).toFixed(2), distill: +((accOrig - accDistill) * 100).toFixed(2) },
    pruneSeconds: +pruneS.toFixed(1),
    distill: {
      trainSamples: d.trainSamples,
      heldOutSamples: d.heldOutSamples,
      minutes: +(t.seconds / 60).toFixed(2),
      steps: t.steps,
      batch: t.batch,
      stepMs: t.stepMs,
      graphMs: t.graphMs,
      forwardMs: t.forwardMs,
      stepOverForward: +(t.stepMs / t.forwardMs).toFixed(2),
      heldOutLoss: [t.heldOutBefore, t.heldOutAfter],
      bestStep: t.bestStep,
      loss: t.losses,
      lr: t.lr,
      threads: t.threads,
      peakRssMb: t.peakRssMb,
      trainedParams: t.trainedParams,
      heldOutCosine: [d.fidelityBefore.cosine, d.fidelityAfter.cosine],
      heldOutTop1Agreement: [d.fidelityBefore.top1Agreement, d.fidelityAfter.top1Agreement],
    },
  };
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  process.stdout.write(
    `MNIST CNN, ${((row.macsRemoved ?? 0) * 100).toFixed(1)}% of MACs removed (activation + lsq), ${labels.length} held-out digits:\n` +
      `  accuracy original ${pct(accOrig)}, pruned+lsq ${pct(accLsq)} (${row.lossPoints.lsq} points lost), ` +
      `pruned+distill ${pct(accDistill)} (${row.lossPoints.distill} points lost)\n` +
      `  distillation: ${t.steps} steps of batch ${t.batch} in ${(t.seconds / 60).toFixed(2)} min on ${d.trainSamples} unlabelled digits ` +
      `(${d.heldOutSamples} held out for its loss); step ${t.stepMs} ms (onnxruntime forward+backward ${t.graphMs} ms) ` +
      `vs inference of the same batch ${t.forwardMs} ms (${row.distill.stepOverForward}x; timed beside each other); peak RSS ${t.peakRssMb} MB; ${threads} threads\n`,
  );
  return row;
}

const dir = mkdtempSync(join(tmpdir(), 'edgefit-bench-distill-'));
try {
  const rows: unknown[] = [];
  const only = new Set(args.only!.split(','));
  if (only.has('mnist')) rows.push(await mnist(dir));
  if (args.json) writeFileAtomic(args.json, JSON.stringify({ date: new Date().toISOString(), args, rows }, null, 2) + '\n');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
