// The whole `edgefit fit` job: probe the box, pick the board profile, resolve budgets (flags
// override the profile's defaults), fit, and write the model, frontier and optional report.
import { resolve, dirname, basename, join } from 'node:path';
import { probeHardware, selectProfile, parseLatency } from '../profile/index.js';
import { EdgefitError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { fitModel, type FitOutcome } from './index.js';
import { renderReport } from './report.js';
import type { Budgets, FitProgress } from './types.js';

export interface FitJob {
  model: string;
  output: string;
  shapes: Map<string, number[]>;
  latencyMs?: number;
  /** '0.5x' style or a bare fraction. */
  latency?: string;
  ramMb?: number;
  minFidelity?: number;
  profile?: string;
  calib?: string;
  report?: string;
  threads?: number;
  workDir?: string;
}

export interface FitJobResult extends FitOutcome {
  profile: string;
  budgets: Budgets;
  hardware: unknown;
}

export async function runFitJob(job: FitJob, onProgress: (p: FitProgress) => void): Promise<FitJobResult> {
  if (job.latencyMs !== undefined && job.latency !== undefined) throw new EdgefitError('USAGE', 'give either --latency-ms or --latency, not both');
  if (job.minFidelity !== undefined && !(job.minFidelity >= 0 && job.minFidelity <= 1)) throw new EdgefitError('USAGE', `--min-fidelity must be in [0, 1], got ${job.minFidelity}`);
  const hw = await probeHardware();
  const sel = selectProfile(hw, job.profile);
  const budgets: Budgets = {};
  if (job.latencyMs !== undefined) budgets.latencyMs = job.latencyMs;
  else if (job.latency !== undefined) {
    budgets.latencyFactor = parseLatency(job.latency);
    if (!(budgets.latencyFactor > 0)) throw new EdgefitError('USAGE', `--latency must look like 0.5x, got '${job.latency}'`);
  }
  else if (sel.latency.kind === 'ms') budgets.latencyMs = sel.latency.ms;
  else budgets.latencyFactor = sel.latency.factor;
  budgets.ramMb = job.ramMb ?? sel.ramMb;
  budgets.minFidelity = job.minFidelity ?? sel.minFidelity;
  const out = resolve(job.output);
  const workDir = job.workDir ?? join(dirname(out), `.${basename(out, '.onnx')}.edgefit`);
  const result = await fitModel(
    { modelPath: resolve(job.model), shapes: Object.fromEntries(job.shapes), budgets, profile: sel.profile.name, calibDataPath: job.calib, outputDir: workDir, threads: job.threads ?? sel.threads },
    onProgress,
    { outputPath: out, tryQuant: sel.int8.benefit !== 'unlikely', hardwareId: `${hw.cpu.brand ?? ''}|${hw.cpu.cores}|${hw.board.model ?? ''}` },
  );
  if (job.report) {
    writeFileAtomic(job.report, renderReport({
      model: job.model,
      budgets: { latencyMs: result.latencyBudgetMs, ramMb: budgets.ramMb, minFidelity: budgets.minFidelity },
      candidates: result.candidates,
      frontier: result.frontier,
      chosenId: result.chosenId,
      feasible: result.feasible,
      hardware: hw,
      profile: sel.profile.name,
      notes: result.notes,
      elapsedMs: result.elapsedMs,
    }));
  }
  return { ...result, profile: sel.profile.name, budgets, hardware: hw };
}
