// The whole `edgefit fit` job: probe the box, pick the board profile, resolve budgets (flags
// override the profile's defaults), fit, and write the model, frontier and optional report.
import { resolve, join } from 'node:path';
import { homedir } from 'node:os';
import { readModelBytes } from '../onnx/index.js';
import { sha256 } from './cache.js';
import { probeHardware, selectProfile } from '../profile/index.js';
import { checkBudgets, mergeBudgets, parseLatency, type Budgets } from '../budgets/index.js';
import { EdgefitError } from '../errors.js';
import { checkWritable, writeFileAtomic } from '../util/fs.js';
import { fitModel, type FitOutcome } from './index.js';
import { renderReport } from './report.js';
import type { FitProgress } from './types.js';
import type { Task } from '../fidelity/tasks.js';

export interface FitJob {
  model: string;
  output: string;
  shapes: Map<string, number[]>;
  latencyMs?: number;
  /** '0.5x' style or a bare fraction. */
  latency?: string;
  ramMb?: number;
  minFidelity?: number;
  /** Compressed (gzip) size budget in MB. */
  sizeMb?: number;
  profile?: string;
  calib?: string;
  /** Data the candidates are judged on, disjoint from calib (default: calib's judge/ subfolder, else a split of it). */
  judge?: string;
  report?: string;
  threads?: number;
  /** What the model is for, which decides the fidelity metric (absent or 'auto': detected). */
  task?: Task | 'auto';
  /** Where candidates and their measurements are kept (default: fitCacheDir of the model). */
  workDir?: string;
  /** 'fidelity' (default): never below the fidelity floor; 'latency': trade it knowingly. */
  prefer?: 'fidelity' | 'latency';
  /** Cap on measured candidates (default: fitModel's). */
  maxCandidates?: number;
  /** Minutes the fit may train its best candidate on this box (0 / absent: none). */
  trainMinutes?: number;
  /** Peak RAM of that training, MB (absent: the trainer's default). */
  trainRamMb?: number;
}

/**
 * The per-model candidate cache: $EDGEFIT_CACHE_DIR, else $XDG_CACHE_HOME/edgefit, else
 * ~/.cache/edgefit, then fit/<model hash>. Shared by every fit of the same model bytes, so a
 * second fit to another budget or output re-uses the first one's measurements (entries are
 * keyed by model, shapes, calibration set and box, and checked against the model file's hash).
 */
export function fitCacheDir(modelBytes: Uint8Array): string {
  const root = process.env.EDGEFIT_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'edgefit');
  return join(root, 'fit', sha256(modelBytes).slice(0, 16));
}

export interface FitJobResult extends FitOutcome {
  profile: string;
  budgets: Budgets;
  hardware: unknown;
}

export async function runFitJob(job: FitJob, onProgress: (p: FitProgress) => void): Promise<FitJobResult> {
  if (job.latencyMs !== undefined && job.latency !== undefined)
    throw new EdgefitError('USAGE', 'give either an absolute or a relative latency budget, not both', { remedy: { option: 'latency' } });
  if (job.trainMinutes !== undefined && !(job.trainMinutes >= 0 && job.trainMinutes <= 1440))
    throw new EdgefitError('USAGE', `the training time must be 0 to 1440 minutes, got ${job.trainMinutes}`);
  const latencyFactor = job.latency !== undefined ? parseLatency(job.latency) : undefined;
  if (latencyFactor !== undefined && !(latencyFactor > 0))
    throw new EdgefitError('USAGE', `a relative latency budget must look like 0.5x, got '${job.latency}'`, {
      remedy: { option: 'latency' },
    });
  // every budget in range before any work (a latency of -1 ms would be "met" by nothing)
  const given = checkBudgets({
    latencyMs: job.latencyMs,
    latencyFactor,
    ramMb: job.ramMb,
    minFidelity: job.minFidelity,
    sizeMb: job.sizeMb,
  });
  const out = resolve(job.output);
  checkWritable(out);
  if (job.report) checkWritable(resolve(job.report), 'report');
  const hw = await probeHardware();
  const sel = selectProfile(hw, job.profile);
  // flags override the profile's budgets field by field (a latency flag replaces either latency form)
  const budgets = mergeBudgets(sel.budgets, given);
  const workDir = job.workDir ?? fitCacheDir(readModelBytes(resolve(job.model)));
  const result = await fitModel(
    {
      modelPath: resolve(job.model),
      shapes: Object.fromEntries(job.shapes),
      budgets,
      profile: sel.profile.name,
      calibDataPath: job.calib,
      judgeDataPath: job.judge,
      outputDir: workDir,
      threads: job.threads ?? sel.threads,
      ...(job.task && job.task !== 'auto' ? { task: job.task } : {}),
      prefer: job.prefer ?? 'fidelity',
      ...(job.trainMinutes ? { trainMinutes: job.trainMinutes } : {}),
      ...(job.trainRamMb !== undefined ? { trainRamMb: job.trainRamMb } : {}),
    },
    onProgress,
    {
      outputPath: out,
      tryQuant: sel.int8.benefit !== 'unlikely',
      hardwareId: `${hw.cpu.brand ?? ''}|${hw.cpu.cores}|${hw.board.model ?? ''}`,
      ...(job.maxCandidates !== undefined ? { maxCandidates: job.maxCandidates } : {}),
    },
  );
  if (job.report) {
    writeFileAtomic(
      job.report,
      renderReport({
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
        referenceMs: result.referenceLatencyP50Ms,
      }),
    );
  }
  return { ...result, profile: sel.profile.name, budgets, hardware: hw };
}
