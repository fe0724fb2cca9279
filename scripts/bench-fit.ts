// Issue 6 figures: fit PP-OCRv4 det to latency budgets (default 0.5x and 0.33x of the original
// on this box), then a fresh side-by-side evaluation of the original and each fitted model
// (interleaved rounds, same run, 2 threads) to check the result's p50 is under its budget.
// Usage: node dist/scripts/bench-fit.js [--budgets 0.5x,0.33x] [--rounds 5] [--calib dir] [--min-fidelity F]
//   [--prefer fidelity|latency]
// (default fidelity floor: the matching board profile's). Per budget: candidates measured, fit
// time, chosen id, fidelity, the fit's own side-by-side ratio (median, min-max over its rounds)
// and the fresh one.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runFitJob } from '../src/fit/run.js';
import { evaluateModel } from '../src/evaluate/index.js';
import { OCR_MODELS, ROOT } from '../devkit/paths.js';

const arg = (k: string, d: string) => {
  const i = process.argv.indexOf(k);
  return i > 0 ? process.argv[i + 1]! : d;
};
const budgets = arg('--budgets', '0.5x,0.33x').split(',');
const rounds = Number(arg('--rounds', '5'));
const calib = arg('--calib', join(ROOT, 'test/fixtures/ocr/det'));
const minFid = arg('--min-fidelity', '');
const prefer = arg('--prefer', 'fidelity') === 'latency' ? 'latency' : 'fidelity';
const out = join(ROOT, 'tmp/bench-fit');
mkdirSync(out, { recursive: true });
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
};
const shapes = new Map([['x', [...OCR_MODELS.det.shape]]]);

const rows: string[] = [];
for (const b of budgets) {
  const t0 = performance.now();
  const r = await runFitJob(
    {
      model: OCR_MODELS.det.file,
      output: join(out, `det-${b}.onnx`),
      shapes,
      latency: b,
      calib,
      threads: 2,
      ...(minFid ? { minFidelity: Number(minFid) } : {}),
      prefer,
      report: join(out, `det-${b}.html`),
    },
    (p) => {
      if (p.stage === 'measured')
        console.error(`  [${b}] ${p.message}${p.etaS !== undefined ? ` (about ${Math.round(p.etaS)} s left)` : ''}`);
    },
  );
  const fitS = (performance.now() - t0) / 1000;
  console.error(`  [${b}] budgets ${JSON.stringify(r.budgets)}; notes: ${r.notes.join(' | ')}; cache hits ${r.cacheHits}`);
  const chosen = r.candidates.find((c) => c.id === r.chosenId)!;
  // fresh, interleaved: original, fitted, original, fitted ...
  const po: number[] = [],
    pf: number[] = [];
  for (let i = 0; i < rounds; i++) {
    po.push((await evaluateModel({ model: OCR_MODELS.det.file, shapes, threads: 2, runs: 15, warmup: 3, baseline: false })).latencyMs.p50);
    pf.push((await evaluateModel({ model: r.chosenPath, shapes, threads: 2, runs: 15, warmup: 3, baseline: false })).latencyMs.p50);
  }
  const ratio = median(pf) / median(po);
  const factor = Number(b.replace('x', ''));
  const fitRatio =
    chosen.latencyRatio !== undefined
      ? `${chosen.latencyRatio.toFixed(3)} (${chosen.latencyRatioMin!.toFixed(2)}-${chosen.latencyRatioMax!.toFixed(2)}, ${chosen.rounds?.length ?? 0} rounds)`
      : '1 (original)';
  rows.push(
    `| ${b} | ${r.feasible ? 'yes' : 'no'} | ${chosen.id} | ${r.candidates.length} | ${fitS.toFixed(0)} s | ${chosen.fidelity.toFixed(4)} | ${fitRatio} | ${median(po).toFixed(1)} | ${median(pf).toFixed(1)} | ${ratio.toFixed(3)} | ${ratio <= factor ? 'yes' : 'NO'} |`,
  );
  console.error(rows[rows.length - 1]);
}
console.log(`calibration/fidelity data: ${calib}; fresh evaluation: ${rounds} interleaved rounds x 15 runs, 2 threads, medians of p50`);
console.log(
  '| budget | feasible | chosen | candidates | fit time | fidelity | fit ratio (min-max) | original p50 ms | fitted p50 ms | fresh ratio | p50 under budget |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
