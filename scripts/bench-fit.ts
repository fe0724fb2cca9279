// Issue 16 figures: fit a bundled PP-OCR model (det by default; rec, cls) to latency budgets
// (default 0.5x and 0.33x of the original on this box), calibrating on one real set and judging on
// a disjoint one with the model's task metric (det: box F1, rec: text agreement, cls: label
// agreement), then a fresh side-by-side timing of the original and each fitted model
// (interleaved rounds, same run, 2 threads) to check the result's p50 against its budget.
// Usage: node dist/scripts/bench-fit.js [--model det|rec|cls] [--budgets 0.5x,0.33x] [--rounds 5]
//   [--calib dir] [--judge dir] [--min-fidelity F] [--prefer fidelity|latency] [--max-candidates N]
// (default fidelity floor: the matching board profile's). Per budget: candidates measured, fit
// time, chosen id, its task fidelity on the judge set, the fit's own side-by-side ratio (median,
// min-max over its rounds) and the fresh one.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runFitJob } from '../src/fit/run.js';
import { evaluateModel } from '../src/evaluate/index.js';
import { OCR_FIT_SETS, OCR_MODELS, ROOT } from '../devkit/paths.js';

const arg = (k: string, d: string) => {
  const i = process.argv.indexOf(k);
  return i > 0 ? process.argv[i + 1]! : d;
};
const which = arg('--model', 'det');
if (which !== 'det' && which !== 'rec' && which !== 'cls') throw new Error(`--model takes det, rec or cls, not '${which}'`);
const model = OCR_MODELS[which];
const budgets = arg('--budgets', '0.5x,0.33x').split(',');
const rounds = Number(arg('--rounds', '5'));
const calib = arg('--calib', OCR_FIT_SETS[which].calibrate);
const judge = arg('--judge', OCR_FIT_SETS[which].judge);
const minFid = arg('--min-fidelity', '');
const maxCandidates = arg('--max-candidates', '');
const prefer = arg('--prefer', 'fidelity') === 'latency' ? 'latency' : 'fidelity';
const out = join(ROOT, 'tmp/bench-fit');
mkdirSync(out, { recursive: true });
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
};
const shapes = new Map([['x', [...model.shape]]]);
// timing runs: enough for a stable p50 on the ~0.3 s det, more on the millisecond rec and cls
const runs = which === 'det' ? 15 : 60;

const rows: string[] = [];
let metric = '';
for (const b of budgets) {
  const t0 = performance.now();
  const r = await runFitJob(
    {
      model: model.file,
      output: join(out, `${which}-${b}.onnx`),
      shapes,
      latency: b,
      calib,
      judge,
      threads: 2,
      ...(minFid ? { minFidelity: Number(minFid) } : {}),
      ...(maxCandidates ? { maxCandidates: Number(maxCandidates) } : {}),
      prefer,
      report: join(out, `${which}-${b}.html`),
    },
    (p) => {
      if (p.stage === 'measured')
        console.error(`  [${which} ${b}] ${p.message}${p.etaS !== undefined ? ` (about ${Math.round(p.etaS)} s left)` : ''}`);
    },
  );
  const fitS = (performance.now() - t0) / 1000;
  metric = `${r.task} ${r.fidelityMetric}`;
  console.error(`  [${which} ${b}] budgets ${JSON.stringify(r.budgets)}; notes: ${r.notes.join(' | ')}; cache hits ${r.cacheHits}`);
  const chosen = r.candidates.find((c) => c.id === r.chosenId)!;
  // fresh, interleaved: original, fitted, original, fitted ...
  const po: number[] = [],
    pf: number[] = [];
  for (let i = 0; i < rounds; i++) {
    po.push((await evaluateModel({ model: model.file, shapes, threads: 2, runs, warmup: 3, baseline: false })).latencyMs.p50);
    pf.push((await evaluateModel({ model: r.chosenPath, shapes, threads: 2, runs, warmup: 3, baseline: false })).latencyMs.p50);
  }
  const ratio = median(pf) / median(po);
  const factor = Number(b.replace('x', ''));
  const fitRatio =
    chosen.latencyRatio !== undefined
      ? `${chosen.latencyRatio.toFixed(3)} (${chosen.latencyRatioMin!.toFixed(2)}-${chosen.latencyRatioMax!.toFixed(2)}, ${chosen.rounds?.length ?? 0} rounds)`
      : '1 (original)';
  rows.push(
    `| ${which} | ${b} | ${r.budgets.minFidelity ?? '-'} | ${r.feasible ? 'yes' : 'no'} | ${chosen.id} | ${r.candidates.length} | ${fitS.toFixed(0)} s | ${chosen.fidelity.toFixed(4)} | ${fitRatio} | ${median(po).toFixed(2)} | ${median(pf).toFixed(2)} | ${ratio.toFixed(3)} | ${ratio <= factor ? 'yes' : 'NO'} |`,
  );
  console.error(rows[rows.length - 1]);
}
console.log(`model ${which}; fidelity: ${metric}; calibrate: ${calib}; judge: ${judge}`);
console.log(`fresh evaluation: ${rounds} interleaved rounds x ${runs} runs, 2 threads, medians of p50`);
console.log(
  '| model | budget | floor | feasible | chosen | candidates | fit time | fidelity (judge set) | fit ratio (min-max) | original p50 ms | fitted p50 ms | fresh ratio | p50 under budget |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
