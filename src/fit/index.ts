// fitModel: the product's promise. Profile the box, measure the original, then search pruning
// ratio x precision for the least-compressed model that meets the budgets, measuring every
// candidate on this box in an isolated child process.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { EdgefitError } from '../errors.js';
import { readModelBytes, parseModel } from '../onnx/index.js';
import { cloneModel, type Model } from '../ir/model.js';
import { prepareForPruning } from '../passes/prune/index.js';
import { normalize } from '../passes/normalize.js';
import { foldPass } from '../passes/cleanup/fold.js';
import { runPass } from '../passes/pass.js';
import { annotateShapes } from '../ir/shapes.js';
import { analyzeCost } from '../analyze/index.js';
import { writeFileAtomic } from '../util/fs.js';
import { syntheticSamples } from '../data/model-inputs.js';
import { dataShapes, loadInputSet } from '../data/inputs.js';
import { modelInputs } from '../runtime/runner.js';
import { evaluateModel, latencyStats } from '../evaluate/index.js';
import { probeTables } from '../evaluate/latency-probes.js';
import { resolveTask } from '../fidelity/tasks.js';
import { buildCandidate, contentSha } from './candidates.js';
import { compactSamples } from '../data/compact.js';
import type { Sample } from '../data/inputs.js';
import {
  CALIBRATE_LIMIT,
  JUDGE_LIMIT,
  calibrationNotes,
  calibrationParts,
  trainingFolder,
  splitCalibration,
  type CalibData,
  type Split,
} from './calibration.js';
import { int8Flavour } from './precision.js';
import type { GroupSensitivity } from '../passes/prune/sensitivity.js';
import { forwardOnly, trainingProgress } from './progress.js';
import { CandidateCache, sha256 } from './cache.js';
import { searchFrontier, type Measured, type Retimed } from './search.js';
import type {
  CandidateConfig,
  FitProgress,
  FitRequest,
  FitResult,
  FrontierEntry,
  LatencyRound,
  TrainingSummary,
  TrainPoint,
} from './types.js';
import { buildLatencyTables, type LatencyTables } from '../analyze/latency/index.js';

export type { FitRequest, FitResult, FrontierEntry, Fitter, Budgets } from './types.js';

export interface FitOptions {
  /** Where to write the chosen model (and <out>.frontier.json beside it). */
  outputPath?: string;
  /** Try int8 (default true; the profile may say int8 does not pay here). */
  tryQuant?: boolean;
  /** Timed runs per candidate. */
  runs?: number;
  maxCandidates?: number;
  /** Interleaved original-then-candidate rounds each candidate is timed in (default 3): latency
   * is judged as the ratio to the original timed in the same rounds. */
  rounds?: number;
  /** Interleaved rounds that re-time a candidate whose decision is within the noise band of a
   * budget, a precision about to be dropped, and the choice (default 3; 0 = off). */
  confirmRounds?: number;
  /** Identity of this box for the cache (model + hardware + budgets decide reuse). */
  hardwareId?: string;
  /** Awaited before every training step (TrainSpec.gate): the agent holds training while the box serves requests. */
  trainGate?: () => Promise<void>;
  /**
   * How structured pruning is spread: 'sensitivity' (default with real calibration data) removes
   * a fraction of MACs, most from the groups whose measured fidelity drop is smallest (the probe
   * runs once per model, calibration set and box, and is cached); 'uniform' removes the same
   * fraction of channels from every group (always so on synthetic inputs).
   */
  allocation?: 'uniform' | 'sensitivity';
  /**
   * With real calibration data and the sensitivity allocation, what a candidate's structured
   * ratio removes: 'latency' (default, issue 17) the fraction of the original's latency the
   * latency tables predict (measured once per fit on this box, cached), or 'macs' the fraction of
   * MACs (the allocation before issue 17, kept for comparison).
   */
  structuredBy?: 'latency' | 'macs';
}

export interface FitOutcome extends FitResult {
  feasible: boolean;
  candidates: FrontierEntry[];
  latencyBudgetMs: number | null;
  notes: string[];
  elapsedMs: number;
  /** What calibrated (source, samples) and what judged the candidates (judgeSource, judgeSamples), never the same samples. */
  calibration: { source: string; samples: number; synthetic: boolean; judgeSource: string; judgeSamples: number; split: Split };
  chosenPath: string;
  /** Candidates whose measurement came from the content-hash cache. */
  cacheHits: number;
}

// Calibration goes through the same loader (and so the same resize) as the fidelity evaluation
// of the candidates, with the same shapes; where the model's input dims are dynamic and no shape
// is given, the calibration data defines them (dataShapes), written into `shapes` for the whole fit.
// Candidates are judged on samples that did not calibrate them (splitCalibration).
function loadSamples(req: FitRequest, shapes: Map<string, number[]>, inputName: string, modelBytes: Uint8Array): CalibData {
  const model = normalize(parseModel(modelBytes));
  if (!req.calibDataPath) {
    if (req.judgeDataPath)
      throw new EdgefitError('USAGE', `judge data ${req.judgeDataPath} was given without calibration data`, {
        remedy: { option: 'calib' },
      });
    // seeded noise: the evaluator's own synthetic inputs (another seed) judge, so the two differ too
    return {
      samples: syntheticSamples(model, shapes, 8),
      source: 'synthetic',
      synthetic: true,
      judge: undefined,
      judgeSource: 'synthetic',
      judgeCount: 4,
      split: 'synthetic',
    };
  }
  const inputs = modelInputs(model);
  const parts = calibrationParts(req.calibDataPath, req.judgeDataPath);
  for (const [k, v] of dataShapes(parts.calibrate, inputs, shapes)) shapes.set(k, v);
  if (!shapes.get(inputName))
    throw new EdgefitError('USAGE', `input '${inputName}' needs a shape so calibration data can be shaped`, {
      remedy: { option: 'shapes', input: inputName },
    });
  if (parts.judge !== undefined) {
    const set = loadInputSet(parts.calibrate, inputs, { shapes, limit: CALIBRATE_LIMIT });
    // loaded once here to fail early and count it; each evaluation loads it again from the path
    const judged = loadInputSet(parts.judge, inputs, { shapes, limit: JUDGE_LIMIT });
    return {
      samples: set.samples,
      source: set.source,
      synthetic: false,
      judge: parts.judge,
      judgeSource: judged.source,
      judgeCount: judged.samples.length,
      split: parts.split,
      ...withTrain(req.calibDataPath),
    };
  }
  const all = loadInputSet(parts.calibrate, inputs, { shapes, limit: CALIBRATE_LIMIT + JUDGE_LIMIT });
  const { calibrate, judge } = splitCalibration(all);
  return {
    samples: calibrate.samples,
    source: all.source,
    synthetic: false,
    judge,
    judgeSource: `${all.source} (${judge === calibrate ? 'the calibration sample itself' : 'every other sample'})`,
    judgeCount: judge.samples.length,
    split: judge === calibrate ? 'none' : 'alternate',
    ...withTrain(req.calibDataPath),
  };
}

/** The training folder's images, held as bytes (a quarter of the float32 memory: compact.ts). */
function loadTraining(path: string, original: Uint8Array, shapes: Map<string, number[]>): Sample[] {
  return compactSamples(loadInputSet(path, modelInputs(normalize(parseModel(original))), { shapes }).samples);
}

const withTrain = (calibPath: string): { train?: string } => {
  const train = trainingFolder(calibPath);
  return train ? { train } : {};
};

/** The model as prune() will cut it (shape and exact folds): the graph the latency tables must time. */
function preparedCopy(model: Model, shapes: Map<string, number[]>): Model {
  const m = cloneModel(model);
  prepareForPruning(m, shapes);
  return m;
}

/** Whether the exact folds (the folded candidate's build) take ops out of the original's graph. */
function foldsDiffer(model: Model): boolean {
  const m = cloneModel(model);
  runPass(foldPass, m, 'float');
  return m.graph.nodes.length < model.graph.nodes.length;
}

export async function fitModel(
  req: FitRequest,
  onProgress: (p: FitProgress) => void = () => {},
  opts: FitOptions = {},
): Promise<FitOutcome> {
  const t0 = performance.now();
  const original = readModelBytes(req.modelPath);
  const probe = normalize(parseModel(original));
  const shapes = new Map(Object.entries(req.shapes));
  annotateShapes(probe, { shapes }); // fails early on a --shape naming no input
  const inputs = probe.graph.runtimeInputs();
  if (inputs.length !== 1)
    throw new EdgefitError('UNSUPPORTED', `fit handles single-input models for now; this one has ${inputs.length} inputs`);
  const inputName = inputs[0]!.name;
  const quantMode = int8Flavour(analyzeCost(probe));
  const threads = req.threads ?? 2;
  const calib = loadSamples(req, shapes, inputName, original);
  // the training folder's images: loaded by the first candidate that trains, then shared
  let trainSet: Sample[] | undefined;
  // what the model is for decides every candidate's fidelity (box F1 for a det, text agreement for
  // a rec ...): resolved once from the original's graph, so all candidates are judged alike
  const judged = resolveTask(req.task, probe.graph);

  const outDir = resolve(req.outputDir);
  const candDir = join(outDir, 'candidates');
  mkdirSync(candDir, { recursive: true });
  const referencePath = join(candDir, 'reference.onnx');
  if (!existsSync(referencePath) || sha256(readFileSync(referencePath)) !== sha256(original)) writeFileAtomic(referencePath, original);
  const salt = [
    sha256(original),
    JSON.stringify([...shapes]),
    calib.source,
    calib.samples.length,
    calib.judgeSource,
    calib.judgeCount,
    opts.hardwareId ?? '',
    opts.runs ?? 20,
    // (fidelity in another task's metric is another figure; 'raw' keeps the keys of fits before tasks)
    ...(judged.task === 'raw' ? [] : [judged.task]),
    `rounds${opts.rounds ?? 3}`,
    'widths-auto', // candidates' kept widths are block multiples since issue 17 (older cached builds were not)
  ].join('|');
  const cache = new CandidateCache(join(outDir, 'cache'), salt);
  const dataForEval = calib.judge;
  const structuredBy = !calib.synthetic && opts.allocation !== 'uniform' ? (opts.structuredBy ?? 'latency') : 'channels';
  // the original's latency tables: measured by the first latency candidate, once per fit, and
  // cached beside the candidates (keyed by model, box, threads and shapes)
  // (a minute or two on det the first time: progress says so, at the fraction the search reached)
  let tables: Promise<LatencyTables> | undefined;
  let lastProgress: FitProgress = { fraction: 0, stage: 'measure' };
  const show = forwardOnly(onProgress);
  const report = (p: FitProgress): void => {
    lastProgress = p;
    show(p);
  };
  const tablesOnce = (): Promise<LatencyTables> =>
    (tables ??= (async () => {
      const at = (message: string): void => show({ fraction: lastProgress.fraction, stage: 'latency tables', message });
      at('measuring the layers on this box');
      const prepared = preparedCopy(probe, shapes);
      let quarter = 0;
      const t = await buildLatencyTables(prepared, {
        shapes,
        threads,
        cacheDir: join(outDir, 'cache', 'latency'),
        onProgress: (done, total) => {
          if (total > 0 && done / total >= (quarter + 1) / 4) at(`${++quarter * 25}% of ${total} layer timings`);
        },
      });
      at('timing two pruned probes of the whole model');
      return probeTables(prepared, t, { shapes, threads });
    })());
  // the sensitivity probe (minutes on det) is measured by the first candidate that needs it and
  // kept beside the cache, so later candidates and later fits of the same model re-use it
  const sensFile = join(outDir, 'cache', `sensitivity-${cache.key('sensitivity')}.json`);
  let sensitivity: GroupSensitivity[] | undefined;
  try {
    if (existsSync(sensFile)) sensitivity = JSON.parse(readFileSync(sensFile, 'utf8')) as GroupSensitivity[];
  } catch {
    sensitivity = undefined; // torn or foreign: probe again
  }

  // the ~20 timed runs a candidate used to get at once are spread over interleaved rounds (the
  // original, then the candidate, a few runs each), so both see the same load and the ratio's
  // spread shows how steady the box was
  const rounds = Math.max(1, opts.rounds ?? 3);
  const perRound = Math.max(3, Math.round((opts.runs ?? 20) / (rounds + 1)));
  const timeOnly = async (model: string, t: number) =>
    (await evaluateModel({ model, data: dataForEval, shapes, threads: t, runs: perRound, warmup: 2, limit: 1, baseline: false })).latencyMs;
  const side = async (modelPath: string, t: number, n: number): Promise<LatencyRound[]> => {
    const out: LatencyRound[] = [];
    for (let i = 0; i < n; i++) {
      // (the original at the reference's thread count: the budget is a fraction of it as deployed;
      // the order alternates, so a load that rises or falls through the rounds favours neither)
      const first = i % 2 === 0 ? await timeOnly(referencePath, threads) : await timeOnly(modelPath, t);
      const second = i % 2 === 0 ? await timeOnly(modelPath, t) : await timeOnly(referencePath, threads);
      const [ref, cand] = i % 2 === 0 ? [first, second] : [second, first];
      out.push({ referenceP50Ms: ref.p50, candidateP50Ms: cand.p50, candidateP95Ms: cand.p95 });
    }
    return out;
  };

  let cacheHits = 0;
  // the figures of every model measured in this fit, by content and threads: a config that builds
  // one of them again (two latency targets whose widths round alike) is not measured twice
  const byContent = new Map<string, Measured>();
  const contentKey = (sha: string, threads: number) => `${sha}|t${threads}`;
  const evaluate = async (config: CandidateConfig): Promise<Measured> => {
    const key = cache.key(config);
    const hit = cache.get(key);
    if (hit) {
      cacheHits++;
      if (hit.contentSha && !byContent.has(contentKey(hit.contentSha, config.threads)))
        byContent.set(contentKey(hit.contentSha, config.threads), hit);
      return hit;
    }
    const isRef = config.structured === 0 && config.unstructured === 0 && config.quant === 'none' && !config.folded;
    // the model does not depend on threads: one file per build, timed at each thread count
    const path = isRef ? referencePath : join(candDir, `${cache.key({ ...config, threads: 0 })}.onnx`);
    if (!isRef && !existsSync(path)) {
      let heldOut: TrainPoint['heldOut'];
      const built = await buildCandidate(config, {
        original,
        shapes,
        samples: calib.samples,
        synthetic: calib.synthetic,
        trainSamples: calib.train ? () => (trainSet ??= loadTraining(calib.train!, original, shapes)) : undefined,
        threads,
        sensitivity,
        tables: tablesOnce,
        ...(req.trainRamMb !== undefined ? { trainRamMb: req.trainRamMb } : {}),
        ...(opts.trainGate ? { trainGate: opts.trainGate } : {}),
        task: judged.task,
        onTrain: (p) => {
          if (p.heldOut !== undefined) heldOut = { step: p.step, loss: p.heldOut };
          show({
            ...trainingProgress(lastProgress, p.seconds, p.budgetSeconds),
            stage: 'training',
            train: { step: p.step, loss: p.loss, ...(heldOut ? { heldOut } : {}) },
            message:
              `step ${p.step}, loss ${p.loss.toPrecision(3)}` +
              `${p.heldOut !== undefined ? `, held-out ${p.heldOut.toPrecision(3)}` : ''}` +
              `${p.score !== undefined ? ` (${judged.def.metric} ${p.score.toFixed(4)})` : ''}, ${Math.round(p.seconds)} of ${Math.round(p.budgetSeconds)} s`,
          });
        },
      });
      // the training record beside the model: a later measurement of the same file keeps it
      if (built.training) writeFileAtomic(`${path}.training.json`, JSON.stringify(built.training));
      writeFileAtomic(path, built.bytes);
      if (built.sensitivity && !sensitivity) {
        sensitivity = built.sensitivity;
        writeFileAtomic(sensFile, JSON.stringify(sensitivity));
      }
    }
    const bytes = readFileSync(path);
    const built = isRef ? undefined : contentSha(bytes);
    const same = built ? byContent.get(contentKey(built, config.threads)) : undefined;
    if (same) {
      // the same graph and weights: the same figures (the search keeps one of the two)
      const m: Measured = { ...same, modelPath: path, sha256: sha256(bytes), sizeBytes: bytes.byteLength };
      cache.put(key, m);
      return m;
    }
    // the original as deployed is timed in one go (the base of relative budgets); a candidate
    // gets a few runs here (fidelity, RAM) and its latency from the rounds below
    const baseline = isRef && config.threads === threads;
    const report = await evaluateModel({
      model: path,
      reference: referencePath,
      data: dataForEval,
      shapes,
      threads: config.threads,
      runs: baseline ? (opts.runs ?? 20) : perRound,
      warmup: 3,
      limit: 16,
      fidelityMetric: 'auto',
      task: judged.task,
    });
    // a relative budget is a ratio: time the original right beside each candidate, so a change
    // in the box's load during a long search does not pass or fail candidates by itself
    const sideBySide = baseline ? undefined : await side(path, config.threads, rounds);
    const trainingFile = `${path}.training.json`;
    const training =
      config.train && existsSync(trainingFile) ? (JSON.parse(readFileSync(trainingFile, 'utf8')) as TrainingSummary) : undefined;
    const m: Measured = {
      ...(training ? { training } : {}),
      ...(baseline ? { referenceP50Ms: report.latencyMs.p50 } : { rounds: sideBySide }),
      latencyP50Ms: report.latencyMs.p50,
      latencyP95Ms: report.latencyMs.p95,
      modelRssMb: report.modelRssMb ?? report.peakRssMb,
      fidelity: report.fidelity?.value ?? 1,
      sizeBytes: bytes.byteLength,
      compressedBytes: gzipSync(bytes).byteLength,
      modelPath: path,
      sha256: sha256(bytes),
      ...(built ? { contentSha: built } : {}),
    };
    cache.put(key, m);
    if (built) byContent.set(contentKey(built, config.threads), m);
    return m;
  };

  const median = (xs: number[]) => latencyStats(xs).p50;
  // more interleaved original / candidate rounds, pooled by the search with the entry's own
  const confirm = async (e: FrontierEntry): Promise<Retimed> => {
    const r = await side(e.modelPath, e.config.threads, opts.confirmRounds ?? 3);
    // the search pools them with the entry's own; so does a later fit, through the cache
    cache.addRounds(cache.key(e.config), r);
    return {
      latencyP50Ms: median(r.map((x) => x.candidateP50Ms)),
      latencyP95Ms: median(r.map((x) => x.candidateP95Ms ?? x.candidateP50Ms)),
      referenceP50Ms: median(r.map((x) => x.referenceP50Ms)),
      rounds: r,
    };
  };

  const outcome = await searchFrontier(
    {
      evaluate,
      onProgress: report,
      cached: (c) => cache.get(cache.key(c)) !== undefined,
      ...(opts.confirmRounds === 0 ? {} : { confirm }),
    },
    {
      budgets: req.budgets,
      threads,
      tryQuant: opts.tryQuant,
      quantMode,
      maxCandidates: opts.maxCandidates ?? 15,
      structuredBy,
      prefer: req.prefer ?? 'fidelity',
      trainMinutes: req.trainMinutes ?? 0,
      ...(req.trainFrom ? { trainFrom: req.trainFrom } : {}),
      foldsDiffer: foldsDiffer(probe),
    },
  );
  let chosenPath = outcome.chosen.modelPath;
  if (opts.outputPath) {
    writeFileAtomic(opts.outputPath, readFileSync(outcome.chosen.modelPath));
    chosenPath = resolve(opts.outputPath);
  }
  const result: FitOutcome = {
    chosenId: outcome.chosen.id,
    frontier: outcome.frontier,
    referenceLatencyP50Ms: outcome.reference.latencyP50Ms,
    shortfall: outcome.shortfall,
    fitter: 'fitModel',
    task: judged.task,
    fidelityMetric: judged.def.metric,
    feasible: outcome.feasible,
    candidates: outcome.candidates,
    latencyBudgetMs: outcome.latencyBudgetMs,
    notes: [
      `fidelity judged as task ${judged.task} (${judged.auto ? `auto-detected: ${judged.reason}` : 'given'}) by ${judged.def.metric}`,
      ...outcome.notes,
      ...(calib.synthetic
        ? ['fidelity measured on seeded synthetic inputs: give --calib with real data for figures that mean something']
        : []),
      ...calibrationNotes(calib),
    ],
    elapsedMs: performance.now() - t0,
    calibration: {
      source: calib.source,
      samples: calib.samples.length,
      synthetic: calib.synthetic,
      judgeSource: calib.judgeSource,
      judgeSamples: calib.judgeCount,
      split: calib.split,
    },
    chosenPath,
    cacheHits,
  };
  const frontierFile = opts.outputPath
    ? `${opts.outputPath.replace(/\.onnx$/, '')}.frontier.json`
    : join(outDir, `${basename(req.modelPath, '.onnx')}.frontier.json`);
  writeFileAtomic(frontierFile, JSON.stringify({ model: req.modelPath, budgets: req.budgets, shapes: req.shapes, ...result }, null, 2));
  return result;
}
