// Benchmark of latency-aware pruning (issue 17) on PP-OCRv4 det with real calibration images:
//   node dist/scripts/bench-prune-latency.js [--target 0.5] [--runs 20] [--threads 2] [--calib-count 8]
//     [--sensitivity] [--json tmp/bench-prune-latency.json]
// 1. latency tables: build time (cache off), block and its source.
// 2. A = --target-latency <target>x: activation importance + lsq, widths from the latency knapsack.
// 3. B = the MACs-based allocation at the same latency: the uniform channel ratio a MACs target
//    gives (ratioForMacs), chosen so the tables predict B as fast as A, then pruned for real with
//    --target-macs at B's MACs (same importance, recovery, rounding).
// 4. measured: each against the original and A against B, side by side in this process
//    (interleaved runs, medians, --threads), and fidelity on the judge images (not the calibration
//    ones): pooled map cosine and box F1 (fidelity's text-det task).
// Figures are noisy on a shared box: compare the rows of one run, not across runs.
import { parseArgs } from 'node:util';
import { OCR_FIT_SETS, OCR_MODELS } from '../devkit/paths.js';
import { loadModel, serializeModel } from '../src/onnx/index.js';
import { normalize } from '../src/passes/normalize.js';
import { cloneModel, type Model } from '../src/ir/model.js';
import { dataShapes, loadInputSet } from '../src/data/inputs.js';
import { inputShapes } from '../src/data/model-inputs.js';
import { modelInputs, runFirstOutput, toFeeds } from '../src/runtime/runner.js';
import { compareOne, compareTask } from '../src/fidelity/index.js';
import { buildLatencyTables, predictModelMs } from '../src/analyze/latency/index.js';
import { probeTables } from '../src/evaluate/latency-probes.js';
import { prepareForPruning, prune, type PruneOptions, type PruneReport } from '../src/passes/prune/index.js';
import { analyzeGroups } from '../src/passes/prune/groups.js';
import { robustTables } from '../src/passes/prune/robust-tables.js';
import { structuredPrunePass } from '../src/passes/prune/apply.js';
import { runPass } from '../src/passes/pass.js';
import { uniformKeep } from '../src/passes/prune/select.js';
import { countMacs, scoreGroups } from '../src/passes/prune/structured.js';
import { channelStats } from '../src/calib/stats.js';
import { compensationValues } from '../src/passes/prune/recovery.js';
import { compareLatency } from '../src/evaluate/interleaved.js';
import { fasterVerdict } from '../src/evaluate/faster.js';
import { writeFileAtomic } from '../src/util/fs.js';

const { values: args } = parseArgs({
  options: {
    target: { type: 'string', default: '0.5' },
    runs: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
    'calib-count': { type: 'string', default: '8' },
    sensitivity: { type: 'boolean' },
    json: { type: 'string' },
  },
});
const TARGET = Number(args.target);
const RUNS = Number(args.runs);
const THREADS = Number(args.threads);

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const base = normalize(loadModel(OCR_MODELS.det.file));
  const inputs = modelInputs(base);
  const shapes = dataShapes(OCR_FIT_SETS.det.calibrate, inputs, new Map());
  for (const [k, v] of inputShapes(base, shapes)) shapes.set(k, v);
  const calib = loadInputSet(OCR_FIT_SETS.det.calibrate, inputs, { shapes, limit: Number(args['calib-count']) }).samples;
  const judge = loadInputSet(OCR_FIT_SETS.det.judge, inputs, { shapes, limit: 16 }).samples;
  console.log(
    `det at ${[...shapes.values()][0]!.join('x')}, ${calib.length} calibration images, ${judge.length} judge images, ${THREADS} threads`,
  );

  // 0. as the CLI does: the model as given is the reference; prune works on it prepared (exact
  // folds), whose own speed-up is measured so a fraction target is met against the given model
  const given = serializeModel(base);
  const tT = performance.now();
  const prepared = prepareForPruning(base, shapes);
  prepared.speedup = Math.min(1, (await compareLatency(given, serializeModel(base), toFeeds(calib[0]!), 10, THREADS)).ratio);
  // 1. tables (no cache: the build time is the figure), mapped through whole-model probes
  const tables = await probeTables(base, await buildLatencyTables(base, { shapes, threads: THREADS }), { shapes, threads: THREADS });
  const tablesMs = performance.now() - tT;
  console.log(`exact folds: ${prepared.speedup.toFixed(3)}x the given model's latency; probes ${JSON.stringify(tables.probes)}`);
  // predictions as prune reads the tables (robustly), for A, B and the matching between them
  const robust = robustTables(tables);
  const rawSum = tables.layers.reduce((x, l) => x + l.fullMs, 0);
  console.log(
    `\n## tables: ${s(tablesMs)}, ${tables.layers.length} layers, block ${tables.block} (${tables.blockSource}), original ${tables.modelMs.toFixed(1)} ms, layers at full width add up to ${rawSum.toFixed(1)} ms`,
  );

  const common: PruneOptions = {
    importance: 'activation',
    recover: 'lsq',
    steps: 1,
    round: 'auto',
    shapes,
    samples: calib,
    synthetic: false,
    threads: THREADS,
    skipFidelity: true,
    ...(args.sensitivity ? { allocation: 'sensitivity' as const } : {}),
  };

  // 2. A: by latency
  const a = cloneModel(base);
  const tA = performance.now();
  const ra = await prune(a, { ...common, targetLatency: { fraction: TARGET }, tables, prepared });
  const pruneAMs = performance.now() - tA;
  const predA = predictModelMs(robust, a);
  console.log(`A (latency ${TARGET}x): prune ${s(pruneAMs)}, predicted ${predA.toFixed(1)} ms, MACs ${fmtMacs(ra)}`);

  // 3. B: the MACs-based allocation predicted as fast as A (bisection on the uniform ratio, structure only)
  const stats = await channelStats(base, calib, compensationValues(analyzeGroups(base)), THREADS);
  const ga = analyzeGroups(base);
  const scores = scoreGroups(base, ga, 'activation', stats);
  const at = (r: number): Model => {
    const c = cloneModel(base);
    const cga = analyzeGroups(c);
    const ids = new Map(ga.groups.map((g, i) => [g.id, cga.groups[i]!.id]));
    const keep = uniformKeep(ga.groups, scores, r, tables.block);
    runPass(structuredPrunePass, c, { analysis: cga, keep: new Map([...keep].map(([id, k]) => [ids.get(id)!, k])) });
    return c;
  };
  let lo = 0,
    hi = 0.95;
  for (let i = 0; i < 10; i++) {
    const mid = (lo + hi) / 2;
    if (predictModelMs(robust, at(mid)) > predA) lo = mid;
    else hi = mid;
  }
  const baseMacs = countMacs(cloneModel(base), shapes)!;
  const macsKeep = countMacs(at(hi), shapes)! / baseMacs;
  const b = cloneModel(base);
  const tB = performance.now();
  // (the tables given too: 'auto' rounds to their block, as in the bisection and as A does)
  // (with --sensitivity, A's probe of the same model is reused: the det probe takes minutes)
  const rb = await prune(b, { ...common, targetMacs: 1 - macsKeep, tables, ...(ra.sensitivity ? { sensitivity: ra.sensitivity } : {}) });
  const pruneBMs = performance.now() - tB;
  console.log(
    `B (MACs ${(1 - macsKeep).toFixed(3)} removed, uniform ratio ~${hi.toFixed(3)}): prune ${s(pruneBMs)}, predicted ${predictModelMs(robust, b).toFixed(1)} ms, MACs ${fmtMacs(rb)}`,
  );

  // 4. measured side by side, and fidelity on the judge images
  const bytes = { o: given, a: serializeModel(a), b: serializeModel(b) };
  const feeds = toFeeds(judge[0]!);
  const oa = await compareLatency(bytes.o, bytes.a, feeds, RUNS, THREADS);
  const ob = await compareLatency(bytes.o, bytes.b, feeds, RUNS, THREADS);
  const ab = await compareLatency(bytes.b, bytes.a, feeds, RUNS, THREADS);
  const ref = await runFirstOutput(base, judge, THREADS);
  const fid = async (m: Model) => {
    const got = await runFirstOutput(m, judge, THREADS);
    const one = (x: (typeof ref)[number]) => ({ [x.name]: x });
    const pooled = compareOne(
      ref.map((o) => ({ y: o })),
      got.map((o) => ({ y: o })),
      { metric: 'cosine', over: 'pooled' },
    );
    const task = compareTask('text-det', base.graph, ref.map(one), got.map(one));
    return { pooledCosine: pooled, boxF1: task.value };
  };
  const fa = await fid(a);
  const fb = await fid(b);
  const row = (name: string, c: typeof oa, f: typeof fa, r: PruneReport, ms: number) => {
    const v = fasterVerdict({ inputMs: c.floatMs, outputMs: c.quantizedMs, pairRatios: c.pairRatios });
    console.log(
      `| ${name} | ${c.floatMs.toFixed(1)} | ${c.quantizedMs.toFixed(1)} | ${c.ratio.toFixed(3)} (±${(v.margin * 100).toFixed(1)}%) | ` +
        `${fmtMacs(r)} | ${f.pooledCosine.toFixed(4)} | ${f.boxF1.toFixed(4)} | ${s(ms)} |`,
    );
    return { original: c.floatMs, pruned: c.quantizedMs, ratio: c.ratio, margin: v.margin, macs: r.macs.ratio, ...f, pruneMs: ms };
  };
  console.log(`\n## measured (${RUNS} interleaved runs, ${THREADS} threads, medians; judge images)\n`);
  console.log('| model | original ms | pruned ms | ratio | MACs kept | pooled cosine | box F1 | prune time |');
  console.log('|---|---|---|---|---|---|---|---|');
  const A = row(`A latency ${TARGET}x`, oa, fa, ra, pruneAMs);
  const B = row('B MACs-based', ob, fb, rb, pruneBMs);
  console.log(`\nA vs B side by side: A/B = ${ab.ratio.toFixed(3)} (B ${ab.floatMs.toFixed(1)} ms, A ${ab.quantizedMs.toFixed(1)} ms)`);
  console.log(`tables + prune A: ${s(tablesMs + pruneAMs)}`);
  if (args.json)
    writeFileAtomic(
      args.json,
      JSON.stringify(
        {
          tables: { ms: tablesMs, block: tables.block, source: tables.blockSource, modelMs: tables.modelMs },
          target: TARGET,
          A,
          B,
          aOverB: ab.ratio,
          predA,
        },
        null,
        2,
      ),
    );
}

function fmtMacs(r: PruneReport): string {
  return r.macs.ratio !== null ? `${(r.macs.ratio * 100).toFixed(1)}%` : '?';
}

await main();
