// Benchmark of the latency tables (issue 17): build time, the block and its staircase, and the
// tables' predicted latency of pruned copies against their measured latency.
//   node dist/scripts/bench-latency-table.js [--only det,rec,cls] [--model path.onnx:x=1x3x224x224 ...]
//     [--ratios 0.25,0.5] [--round 8] [--runs 15] [--threads 2] [--cache dir] [--json out.json]
// For each model: build the tables (fresh unless --cache), then prune uniform copies (L1, no
// recovery, widths rounded to --round) and time each against the original in one process,
// interleaved, medians, 2 intra-op threads (evaluate/interleaved.ts), beside what predictModelMs says.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { OCR_MODELS } from '../devkit/paths.js';
import { buildLatencyTables, calibratedMs, predictModelMs, type LatencyTables } from '../src/analyze/latency/index.js';
import { probeTables, uniformCut } from '../src/evaluate/latency-probes.js';
import { syntheticSamples } from '../src/data/model-inputs.js';
import { compareLatency } from '../src/evaluate/interleaved.js';
import { type Model } from '../src/ir/model.js';
import { loadModel, serializeModel } from '../src/onnx/index.js';
import { normalize } from '../src/passes/normalize.js';
import { prepareForPruning } from '../src/passes/prune/index.js';
import { robustTables } from '../src/passes/prune/robust-tables.js';
import { toFeeds } from '../src/runtime/runner.js';
import { writeFileAtomic } from '../src/util/fs.js';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'det,rec,cls' },
    model: { type: 'string', multiple: true, default: [] },
    ratios: { type: 'string', default: '0.25,0.5' },
    round: { type: 'string', default: '8' },
    runs: { type: 'string', default: '15' },
    threads: { type: 'string', default: '2' },
    cache: { type: 'string' },
    json: { type: 'string' },
  },
});

interface Subject {
  name: string;
  file: string;
  input?: string;
  shape: number[];
}

const subjects: Subject[] = [];
for (const k of (args.only ?? '').split(',').filter(Boolean)) {
  const m = OCR_MODELS[k as keyof typeof OCR_MODELS];
  if (!m) throw new Error(`unknown model ${k} (det, rec, cls)`);
  subjects.push({ name: k, file: m.file, shape: [...m.shape] });
}
for (const spec of args.model ?? []) {
  // path.onnx:input=1x3x224x224 (the input shape is needed: zoo exports have a dynamic batch)
  const m = /^(.*\.onnx):([^=]+)=([\dx]+)$/.exec(spec);
  if (!m) throw new Error(`--model wants path.onnx:input=1x3x224x224, got ${spec}`);
  subjects.push({ name: m[1]!.split('/').pop()!, file: m[1]!, input: m[2]!, shape: m[3]!.split('x').map(Number) });
}

const ratios = args.ratios!.split(',').map(Number);
const round = Number(args.round);
const runs = Number(args.runs);
const threads = Number(args.threads);

function staircase(t: LatencyTables): string[] {
  return t.blockEvidence.map((e) => `  ${e.layer}: ${e.widths.map((w, i) => `${w}:${e.ms[i]!.toFixed(3)}`).join(' ')}`);
}

const rows: unknown[] = [];
const cacheDir = args.cache ?? mkdtempSync(join(tmpdir(), 'edgefit-lt-'));
try {
  for (const s of subjects) {
    const base: Model = normalize(loadModel(s.file));
    const input = s.input ?? base.graph.runtimeInputs()[0]!.name;
    const shapes = new Map([[input, s.shape]]);
    // tables time the model as prune() cuts it (shape and exact folds done); pruned copies are
    // compared with that prepared model, so the folds' own gain is not counted as the tables'
    prepareForPruning(base, shapes);
    const t0 = performance.now();
    let measured = 0;
    const tables = await buildLatencyTables(base, { shapes, threads, cacheDir, onProgress: () => measured++ });
    const wall = performance.now() - t0;
    console.log(`\n## ${s.name} ${s.shape.join('x')}, ${threads} threads`);
    console.log(
      `tables: ${tables.layers.length} layers, ${measured} measurements, build ${(tables.buildMs / 1000).toFixed(1)} s` +
        ` (wall ${(wall / 1000).toFixed(1)} s${measured ? '' : ', from cache'}), model ${tables.modelMs.toFixed(2)} ms,` +
        ` block ${tables.block} (${tables.blockSource})`,
    );
    for (const l of staircase(tables)) console.log(l);
    const tp = performance.now();
    const probed = await probeTables(base, tables, { shapes, threads });
    console.log(
      `probes (${((performance.now() - tp) / 1000).toFixed(1)} s): ` +
        probed.probes!.map((q) => `predicted ${q.predicted.toFixed(3)} measured ${q.measured.toFixed(3)}`).join('; '),
    );
    const [sample] = syntheticSamples(base, shapes, 1);
    const feeds = toFeeds(sample!);
    const origBytes = serializeModel(base);
    console.log(
      '\n| ratio | predicted ms | measured ms | original ms (same run) | measured ratio | predicted ratio | error % | robust ratio | robust error % | calibrated ratio | calibrated error % |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    // as the allocation reads them (robust lines per side, layers capped by the model)
    const robust = robustTables(probed);
    for (const ratio of ratios) {
      const m = await uniformCut(base, ratio, round, shapes);
      const c = await compareLatency(origBytes, serializeModel(m), feeds, runs, threads);
      // the prediction is anchored to the tables' model time; scale it to this run's original
      // (the box is shared: the same model takes different times minutes apart)
      const predictedRatio = predictModelMs(tables, m) / tables.modelMs;
      const robustRatio = predictModelMs(robust, m) / robust.modelMs;
      const robustErr = ((robustRatio * c.floatMs - c.quantizedMs) / c.quantizedMs) * 100;
      // mapped through the whole-model probes (uniform cuts at PROBE_RATIOS, not these ratios): what prune reports
      const calRatio = calibratedMs(probed, predictModelMs(robust, m)) / robust.modelMs;
      const calErr = ((calRatio * c.floatMs - c.quantizedMs) / c.quantizedMs) * 100;
      const predicted = predictedRatio * c.floatMs;
      const err = ((predicted - c.quantizedMs) / c.quantizedMs) * 100;
      const row = {
        model: s.name,
        ratio,
        predictedMs: predicted,
        measuredMs: c.quantizedMs,
        originalMs: c.floatMs,
        measuredRatio: c.ratio,
        predictedRatio,
        errorPct: err,
        robustRatio,
        robustErrorPct: robustErr,
        calibratedRatio: calRatio,
        calibratedErrorPct: calErr,
      };
      rows.push({ ...row, buildMs: tables.buildMs, block: tables.block, blockSource: tables.blockSource });
      console.log(
        `| ${ratio} | ${predicted.toFixed(2)} | ${c.quantizedMs.toFixed(2)} | ${c.floatMs.toFixed(2)} | ${c.ratio.toFixed(3)} | ${predictedRatio.toFixed(3)} | ${err.toFixed(1)} | ${robustRatio.toFixed(3)} | ${robustErr.toFixed(1)} | ${calRatio.toFixed(3)} | ${calErr.toFixed(1)} |`,
      );
    }
  }
} finally {
  if (!args.cache) rmSync(cacheDir, { recursive: true, force: true });
}
if (args.json) writeFileAtomic(args.json, JSON.stringify(rows, null, 2));
