// The prune pipeline: K rounds of (score -> cut a little -> repair), then optional unstructured
// sparsity, then measure. The original model is the teacher for recovery and fidelity. The
// output carries a replayable history in its metadata (key edgefit.prune.history).
import { EdgefitError } from '../../errors.js';
import { cloneModel, type Model } from '../../ir/model.js';
import { analyzeCost } from '../../analyze/cost.js';
import { channelStats, type ChannelStats } from '../../calib/stats.js';
import { runFirstOutput } from '../../runtime/runner.js';
import { compareTask, singleOutputFidelity, type SingleOutputFidelity, type Task, type TaskFidelity } from '../../fidelity/index.js';
import type { Sample } from '../../data/inputs.js';
import { structuredPrunePass } from './apply.js';
import { foldShapesPass, type FoldDetails } from '../cleanup/fold-shapes.js';
import { runAsyncPass, runPass } from '../pass.js';
import { foldPass, type FoldReport } from '../cleanup/fold.js';
import { analyzeGroups, type GroupAnalysis } from './groups.js';
import type { Importance } from './importance.js';
import { biasCompensation, biasCompensationPass, compensationValues, lsqRecoveryPass, type LsqReport, type Recovery } from './recovery.js';
import { uniformKeep } from './select.js';
import { allocateBySensitivity, groupSensitivity, type GroupSensitivity } from './sensitivity.js';
import { countMacs, ratioForMacs, scoreGroups, type GroupRecord } from './structured.js';
import { allocateByLatency } from './latency-alloc.js';
import { resolveRound, type Round } from './round.js';
import { layerWidths } from './widths.js';
import { robustTables } from './robust-tables.js';
import { calibratedMs, predictMs, rawForCalibratedMs } from '../../analyze/latency/predict.js';
import type { LatencyTables } from '../../analyze/latency/types.js';
import { distill, type DistillReport } from '../train/distill.js';
import type { TrainProgress } from '../train/types.js';
import { modelSizes, unstructuredPrunePass, wandaValues, type UnstructuredMethod, type UnstructuredReport } from './unstructured.js';

export const HISTORY_KEY = 'edgefit.prune.history';

export interface PruneOptions {
  /** Fraction of channels removed from every prunable group. */
  structured?: number;
  /** Fraction of MACs to remove (alternative to structured). */
  targetMacs?: number;
  /**
   * Predicted latency to reach (alternative to structured and targetMacs; needs `tables`): a
   * fraction of the original's measured latency (tables.modelMs) or milliseconds.
   */
  targetLatency?: { fraction: number } | { ms: number };
  /** Latency tables of this model on this box (analyze/latency): the latency target's predictions, and `round: 'auto'`'s block. */
  tables?: LatencyTables;
  unstructured?: number;
  unstructuredMethod?: UnstructuredMethod;
  unstructuredScope?: 'layer' | 'global';
  nm?: [number, number];
  importance: Importance;
  recover: Recovery;
  /**
   * Per-group ratios: the same everywhere, or from measured per-group sensitivity. With a latency
   * target, 'sensitivity' makes the knapsack weigh cuts by the measured fidelity drop instead of importance.
   */
  allocation?: 'uniform' | 'sensitivity';
  /** Ratios probed per group by the sensitivity analysis. */
  sensitivityRatios?: number[];
  /** Calibration samples the sensitivity probe runs (default 4). */
  sensitivitySamples?: number;
  /**
   * A sensitivity probe of this same model (report.sensitivity of an earlier run with the same
   * importance), reused for step 1 instead of probing again: benchmarks sweep ratios with one probe.
   */
  sensitivity?: GroupSensitivity[];
  steps: number;
  /** Kept widths are multiples of this; 'auto': the tables' block, else this CPU's (round.ts). */
  round: Round;
  shapes: Map<string, number[]>;
  samples: Sample[];
  synthetic: boolean;
  threads?: number;
  /** Ridge strengths lsq chooses from on held-out rows (default RIDGES). */
  lsqRidges?: readonly number[];
  /** Skip the final fidelity run (benchmarks measure it themselves). */
  skipFidelity?: boolean;
  /** prepareForPruning's report when the caller ran it already (before measuring latency tables). */
  prepared?: Prepared;
  /**
   * Also judge the result by the model's task ('auto': detected from the teacher), issue 16; with
   * recover 'distill', the task's metric picks the trained weights kept (unset: 'auto').
   */
  task?: Task | 'auto';
  /** recover 'distill': training minutes in all, split evenly over the steps. */
  trainMinutes?: number;
  /** recover 'distill': the training process's peak RAM budget, MB (TrainSpec.ramMb). */
  trainRamMb?: number;
  /** recover 'distill': the stem left frozen (TrainSpec.freezeStride; unset: the trainer's default). */
  freezeStride?: number;
  /** recover 'distill': a training set of its own (then `samples` are its held-out set; distill.ts). */
  trainSamples?: Sample[];
  /** recover 'distill': the trainer's progress, with the prune step it belongs to. */
  onTrainProgress?: (step: number, p: TrainProgress) => void;
  /** recover 'distill': awaited before every training step (TrainSpec.gate). */
  trainGate?: () => Promise<void>;
}

export interface HistoryStep {
  step: number;
  ratio: number;
  importance: Importance;
  recover: Recovery;
  groups: GroupRecord[];
  /** 'latency': widths chosen by the latency knapsack (by importance, or by sensitivity when `by` says so). */
  allocation: 'uniform' | 'sensitivity' | 'latency';
  by?: 'importance' | 'sensitivity';
  /** Fidelity-drop threshold chosen by the sensitivity allocation. */
  threshold?: number;
  /** Latency allocation: this step's target and the tables' prediction for its widths, ms. */
  targetMs?: number;
  predictedMs?: number;
  /** The multiple kept widths were rounded to. */
  round?: number;
  biasCompensated: number;
  lsq: LsqReport | null;
  /** recover 'distill': the training's outline (the full report is PruneReport.distill). */
  distill?: { steps: number; seconds: number; heldOutBefore: number; heldOutAfter: number; improved: boolean };
}

export interface PruneReport {
  params: { before: number; after: number };
  macs: { before: number | null; after: number | null; ratio: number | null };
  groups: {
    total: number;
    pruned: { group: string; size: number; kept: number }[];
    skipped: { group: string; size: number; reasons: string[] }[];
  };
  steps: HistoryStep[];
  unstructured: (UnstructuredReport & { gzipBytesBefore: number; gzipBytesAfter: number }) | null;
  fidelity: (SingleOutputFidelity & { synthetic: boolean; task?: TaskFidelity }) | null;
  /** Graph surgery time (analysis, scoring, cutting), excluding calibration runs, ms. */
  surgeryMs: number;
  calibration: { samples: number; synthetic: boolean };
  /** The per-group probe of step 1 when the allocation was by sensitivity. */
  sensitivity: GroupSensitivity[] | null;
  /** Shape chains made constant before the analysis (run-time Reshape shapes it can then read). */
  shapeFold: FoldDetails;
  /** The exact folds done next (cleanup/fold.ts): fewer ops for onnxruntime to leave its fast layout for. */
  exactFolds: FoldReport;
  /** The folded model's latency over the model as given, when the caller timed it (Prepared.speedup). */
  foldSpeedup: number | null;
  /** Tables' figures when they were given: the original's measured ms, the target and the prediction for the result. */
  latency: { originalMs: number; targetMs: number | null; predictedMs: number } | null;
  /** The multiple kept widths were rounded to ('auto' resolved). */
  round: number;
  /** recover 'distill': one training report per step (held-out split of the calibration samples). */
  distill: DistillReport[];
}

export interface Prepared {
  shapeFold: FoldDetails;
  exactFolds: FoldReport;
  /**
   * The prepared model's latency over the model as given, when the caller timed them side by side:
   * a target that is a fraction of the original is then met against the original, not against
   * the already faster prepared model the tables timed.
   */
  speedup?: number;
}

/**
 * What pruning starts from, in place: with the input shapes fixed, run-time shape chains become
 * constants the analysis reads (ShuffleNetV2's channel shuffle, attention head splits;
 * fold-shapes.ts), then the exact folds (cleanup/fold.ts) take the elementwise glue onnxruntime
 * cannot fuse. Outputs are unchanged. Latency tables are measured on the prepared model.
 */
export function prepareForPruning(model: Model, shapes: Map<string, number[]>): Prepared {
  const shapeFold = runPass(foldShapesPass, model, { shapes }).details;
  model.analysisShapes = shapes;
  const exactFolds = runPass(foldPass, model, 'float').details;
  return { shapeFold, exactFolds };
}

/** MACs of `model` pruned with `keep` (on a clone; group order is stable across clones). */
function macsOfKeep(model: Model, ga: GroupAnalysis, keep: ReadonlyMap<number, number[]>, shapes: ReadonlyMap<string, number[]>): number {
  const c = cloneModel(model);
  const cga = analyzeGroups(c);
  const ids = new Map(ga.groups.map((g, i) => [g.id, cga.groups[i]!.id]));
  runPass(structuredPrunePass, c, { analysis: cga, keep: new Map([...keep].map(([id, k]) => [ids.get(id)!, k])) });
  return countMacs(c, shapes) ?? Infinity;
}

function paramsOf(m: Model): number {
  return analyzeCost(m).params;
}

async function statsFor(model: Model, ga: GroupAnalysis, o: PruneOptions): Promise<Map<string, ChannelStats> | undefined> {
  if (o.importance !== 'activation' && o.recover === 'none') return undefined;
  return channelStats(model, o.samples, compensationValues(ga), o.threads);
}

export async function prune(model: Model, o: PruneOptions): Promise<PruneReport> {
  if ([o.structured, o.targetMacs, o.targetLatency].filter((v) => v !== undefined).length > 1)
    throw new EdgefitError('USAGE', 'give one of a channel ratio, a MACs target or a latency target, not several', {
      remedy: { option: o.targetLatency !== undefined ? 'targetLatency' : 'targetMacs' },
    });
  const targetMs = latencyTarget(o);
  // the tables as the allocation and the report read them: robust lines, not every timing outlier
  const tables = o.tables && robustTables(o.tables);
  for (const [k, v] of [
    ['structured', o.structured],
    ['targetMacs', o.targetMacs],
    ['unstructured', o.unstructured],
  ] as const) {
    if (v !== undefined && !(v >= 0 && v < 1))
      throw new EdgefitError('USAGE', `the ${k === 'targetMacs' ? 'MACs-target' : k} ratio must be a fraction in [0, 1), got ${v}`, {
        remedy: { option: k },
      });
  }
  if (!Number.isInteger(o.steps) || o.steps < 1 || o.steps > 50)
    throw new EdgefitError('USAGE', `prune steps must be an integer 1..50, got ${o.steps}`, { remedy: { option: 'steps' } });
  const round = resolveRound(o.round, o.tables);
  if (
    (o.importance === 'activation' || o.recover !== 'none' || o.unstructuredMethod === 'wanda' || o.allocation === 'sensitivity') &&
    !o.samples.length
  )
    throw new EdgefitError('DATA', 'activation importance and recovery need calibration samples');
  if (o.recover === 'distill') {
    if (!(o.trainMinutes !== undefined && o.trainMinutes > 0 && Number.isFinite(o.trainMinutes)))
      throw new EdgefitError('USAGE', `distillation needs a positive training time in minutes, got ${o.trainMinutes}`);
    if (o.synthetic)
      throw new EdgefitError('DATA', 'distillation trains on real calibration data, and none was given (synthetic inputs teach nothing)', {
        remedy: { option: 'calib' },
      });
  }

  // a caller that measured latency tables prepared the model first (the tables must time the graph
  // that is pruned); preparing again would find nothing, so its report is the one kept
  const { shapeFold, exactFolds } = o.prepared ?? prepareForPruning(model, o.shapes);
  // exact, so the teacher is prepared too: recovery matches values by name, and a folded conv's
  // output must be compared with the same (post-affine) value of the teacher
  const teacher = cloneModel(model);
  const baseMacs = countMacs(cloneModel(model), o.shapes);
  const paramsBefore = paramsOf(model);
  const first = analyzeGroups(model);
  if (targetMs !== null) {
    // tables name the layers of the model they were measured on: none found here, none would be cut
    const here = layerWidths(model, first, new Map());
    if (!o.tables!.layers.some((l) => here.has(l.node)))
      throw new EdgefitError('DATA', "the latency tables name none of this model's weight layers: they were built for another model");
  }
  const steps: HistoryStep[] = [];
  const distills: DistillReport[] = [];
  let surgeryMs = 0;
  let sensitivityMs = 0;
  let probe: GroupSensitivity[] | null = null;
  // current channel i of a layer output <-> original channel origOf[i] (for the teacher's targets)
  const origOf = new Map<string, number[]>();
  const structuredWanted = (o.structured ?? 0) > 0 || (o.targetMacs ?? 0) > 0 || targetMs !== null;

  for (let k = 1; structuredWanted && k <= o.steps; k++) {
    let ga = analyzeGroups(model);
    const stats = await statsFor(model, ga, o);
    const t0 = performance.now();
    let ratio: number;
    if (o.targetMacs !== undefined) {
      if (baseMacs === null)
        throw new EdgefitError('SHAPE', 'MACs are unknown, so a MACs target cannot be met: every dynamic input needs a shape', {
          remedy: { option: 'shapes' },
        });
      const keepFrac = Math.pow(1 - o.targetMacs, k / o.steps);
      ratio = ratioForMacs(model, o.shapes, baseMacs, keepFrac, { importance: o.importance, round, stats });
      ga = analyzeGroups(model);
    } else if (targetMs !== null) {
      ratio = 0; // the knapsack below chooses the widths; the ratio recorded is what it removed
    } else {
      ratio = 1 - Math.pow(1 - o.structured!, 1 / o.steps);
    }
    const scores = scoreGroups(model, ga, o.importance, stats);
    let keep = uniformKeep(ga.groups, scores, ratio, round);
    let allocation: HistoryStep['allocation'] = 'uniform';
    let threshold: number | undefined;
    let stepTarget: number | undefined;
    let predictedMs: number | undefined;
    let by: HistoryStep['by'];
    let sens: GroupSensitivity[] | undefined;
    const tS = performance.now();
    if (o.allocation === 'sensitivity') {
      const reuse =
        k === 1 &&
        o.sensitivity &&
        o.sensitivity.every((s) => ga.groups[s.index]?.label === s.label && ga.groups[s.index]!.size === s.size);
      sens = reuse
        ? o.sensitivity!
        : await groupSensitivity(
            model,
            ga,
            scores,
            o.samples.slice(0, o.sensitivitySamples ?? 4),
            o.sensitivityRatios ?? [0.3, 0.5, 0.7, 0.85],
            o.threads,
          );
      if (k === 1) probe = sens;
    }
    if (targetMs !== null) {
      // approached geometrically over the steps, like the MACs target
      stepTarget = tables!.modelMs * Math.pow(targetMs / tables!.modelMs, k / o.steps);
      // the knapsack sums the layers' own savings: it aims at the raw prediction whose
      // probe-calibrated value is the target (predict.ts; unchanged when the tables have no probes)
      const rawTarget = rawForCalibratedMs(tables!, stepTarget);
      const alloc = allocateByLatency(model, ga, { tables: tables!, targetMs: rawTarget, block: round, scores, sensitivity: sens });
      keep = alloc.keep;
      allocation = 'latency';
      by = sens ? 'sensitivity' : 'importance';
      predictedMs = calibratedMs(tables!, alloc.predictedMs);
      const total = ga.groups.filter((g) => scores.has(g.id)).reduce((a, g) => a + g.size, 0);
      const sizeOf = new Map(ga.groups.map((g) => [g.id, g.size]));
      ratio = total ? [...keep].reduce((a, [id, kk]) => a + sizeOf.get(id)! - kk.length, 0) / total : 0;
      if (sens) sensitivityMs += performance.now() - tS;
    } else if (sens) {
      const sizeOf = new Map(ga.groups.map((g) => [g.id, g.size]));
      const uniformMacs = o.targetMacs !== undefined ? macsOfKeep(model, ga, keep, o.shapes) : null;
      const removedUniform = [...keep].reduce((a, [id, k]) => a + sizeOf.get(id)! - k.length, 0);
      const meets = (cand: Map<number, number[]>): boolean => {
        // at least what the uniform ratio would achieve, in MACs or in channels
        if (uniformMacs !== null) return macsOfKeep(model, ga, cand, o.shapes) <= uniformMacs;
        return [...cand].reduce((a, [id, k]) => a + sizeOf.get(id)! - k.length, 0) >= removedUniform;
      };
      const alloc = allocateBySensitivity(ga, sens, scores, round, meets);
      if (alloc) {
        keep = alloc.keep;
        allocation = 'sensitivity';
        threshold = alloc.threshold;
      }
      sensitivityMs += performance.now() - tS;
    }
    const comps = o.recover !== 'none' && stats ? biasCompensation(model.graph, ga, keep, stats) : new Map();
    const applied = runPass(structuredPrunePass, model, { analysis: ga, keep }).details;
    const biasCompensated = runPass(biasCompensationPass, model, { comps, keptOut: applied.keptOut }).details.layers;
    surgeryMs += performance.now() - t0 - sensitivityMs;
    sensitivityMs = 0;
    for (const [v, kept] of applied.keptOut) {
      const prev = origOf.get(v);
      origOf.set(v, prev ? kept.map((i) => prev[i]!) : kept);
    }
    let lsq: LsqReport | null = null;
    if (o.recover === 'lsq' || o.recover === 'distill') {
      const opts = { threads: o.threads, ridges: o.lsqRidges };
      lsq = (
        await runAsyncPass(lsqRecoveryPass, model, { teacher, layers: [...applied.inChanged], samples: o.samples, opts, keptOut: origOf })
      ).details;
    }
    let distilled: HistoryStep['distill'];
    if (o.recover === 'distill') {
      // from the lsq-recovered student, against the original's outputs
      const r = await distill(model, teacher, {
        minutes: o.trainMinutes! / o.steps,
        samples: o.samples,
        trainSamples: o.trainSamples,
        threads: o.threads,
        ramMb: o.trainRamMb,
        ...(o.freezeStride !== undefined ? { freezeStride: o.freezeStride } : {}),
        onProgress: o.onTrainProgress && ((p) => o.onTrainProgress!(k, p)),
        gate: o.trainGate,
        // the weights kept are the ones the task's metric judges best on held-out samples
        task: o.task ?? 'auto',
      });
      distills.push(r);
      const t = r.training;
      distilled = {
        steps: t.steps,
        seconds: t.seconds,
        heldOutBefore: t.heldOutBefore,
        heldOutAfter: t.heldOutAfter,
        improved: t.improved,
      };
    }
    const records: GroupRecord[] = [];
    for (const grp of ga.groups) {
      const kk = keep.get(grp.id);
      if (!kk) continue;
      const kept = new Set(kk);
      const removed = Array.from({ length: grp.size }, (_, i) => i).filter((i) => !kept.has(i));
      records.push({
        group: grp.label,
        size: grp.size,
        kept: kk.length,
        removed,
        scores: removed.map((i) => +scores.get(grp.id)![i]!.toPrecision(4)),
      });
    }
    steps.push({
      step: k,
      ratio: +ratio.toFixed(4),
      importance: o.importance,
      recover: o.recover,
      groups: records,
      allocation,
      ...(threshold !== undefined ? { threshold } : {}),
      ...(by ? { by } : {}),
      ...(stepTarget !== undefined ? { targetMs: +stepTarget.toFixed(3), predictedMs: +predictedMs!.toFixed(3) } : {}),
      round,
      biasCompensated,
      lsq,
      ...(distilled ? { distill: distilled } : {}),
    });
  }

  let unstructured: PruneReport['unstructured'] = null;
  if ((o.unstructured ?? 0) > 0 || o.nm) {
    const before = modelSizes(model).gzipBytes;
    const stats = o.unstructuredMethod === 'wanda' ? await channelStats(model, o.samples, wandaValues(model), o.threads) : undefined;
    const uo = {
      ratio: o.unstructured ?? 0,
      method: o.unstructuredMethod ?? 'magnitude',
      scope: o.unstructuredScope ?? 'layer',
      nm: o.nm,
      stats,
    } as const;
    const r = runPass(unstructuredPrunePass, model, uo).details;
    unstructured = { ...r, gzipBytesBefore: before, gzipBytesAfter: modelSizes(model).gzipBytes };
  }

  const macsAfter = countMacs(cloneModel(model), o.shapes);
  const last = analyzeGroups(model);
  // a group's size now, or what its last cut kept when the cut changed its structure (a grouped
  // Conv down to one group is a plain Conv: its groups are no longer a group of the analysis)
  const sizeNow = new Map<string, number>();
  for (const s of steps) for (const r of s.groups) sizeNow.set(r.group, r.kept);
  for (const g of last.groups) sizeNow.set(g.label, g.size);
  const history = {
    version: 1,
    steps,
    unstructured: unstructured && {
      zeroFraction: unstructured.zeroFraction,
      method: o.unstructuredMethod ?? 'magnitude',
      nm: o.nm ?? null,
    },
  };
  const prior = model.metadata.get(HISTORY_KEY);
  model.metadata.set(HISTORY_KEY, JSON.stringify(prior ? { ...history, previous: JSON.parse(prior) as unknown } : history));

  let fidelity: PruneReport['fidelity'] = null;
  if (!o.skipFidelity && o.samples.length) {
    const ref = await runFirstOutput(teacher, o.samples, o.threads);
    const got = await runFirstOutput(model, o.samples, o.threads);
    fidelity = { ...singleOutputFidelity(ref, got), synthetic: o.synthetic };
    if (o.task !== undefined) {
      const one = (x: (typeof ref)[number]) => ({ [x.name]: x });
      fidelity.task = compareTask(o.task, teacher.graph, ref.map(one), got.map(one));
    }
  }
  return {
    params: { before: paramsBefore, after: paramsOf(model) },
    macs: { before: baseMacs, after: macsAfter, ratio: baseMacs && macsAfter !== null ? macsAfter / baseMacs : null },
    groups: {
      total: first.groups.length,
      pruned: first.groups
        .filter((g) => g.prunable && (sizeNow.get(g.label) ?? g.size) < g.size)
        .map((g) => ({ group: g.label, size: g.size, kept: sizeNow.get(g.label)! })),
      skipped: first.groups.filter((g) => !g.prunable).map((g) => ({ group: g.label, size: g.size, reasons: g.reasons })),
    },
    steps,
    unstructured,
    fidelity,
    surgeryMs,
    calibration: { samples: o.samples.length, synthetic: o.synthetic },
    sensitivity: probe,
    shapeFold,
    exactFolds,
    foldSpeedup: o.prepared?.speedup ?? null,
    latency: tables
      ? { originalMs: tables.modelMs, targetMs, predictedMs: calibratedMs(tables, predictMs(tables, layerWidths(model, last, new Map()))) }
      : null,
    round,
    distill: distills,
  };
}

/** What of a latency target can be checked before any table is measured: a fraction in (0, 1), a positive time. */
export function checkTargetLatency(t: { fraction: number } | { ms: number }): void {
  const remedy = { remedy: { option: 'targetLatency' as const } };
  if ('fraction' in t && !(t.fraction > 0 && t.fraction < 1))
    throw new EdgefitError('USAGE', `a latency target as a fraction of the original must be in (0, 1), got ${t.fraction}x`, remedy);
  if ('ms' in t && !(t.ms > 0)) throw new EdgefitError('USAGE', `a latency target must be a positive time, got ${t.ms} ms`, remedy);
}

/** The latency target in ms (null without one), checked: it needs tables and must be below the original's measured time. */
function latencyTarget(o: PruneOptions): number | null {
  const t = o.targetLatency;
  if (t === undefined) return null;
  checkTargetLatency(t);
  const remedy = { remedy: { option: 'targetLatency' as const } };
  if (!o.tables) throw new EdgefitError('USAGE', 'a latency target needs latency tables measured for this model', remedy);
  const orig = o.tables.modelMs;
  // at most the prepared model's own time: when the folds alone meet the target nothing is cut
  if ('fraction' in t) return Math.min(orig, (t.fraction * orig) / (o.prepared?.speedup ?? 1));
  if (t.ms >= orig)
    throw new EdgefitError('USAGE', `the latency target ${t.ms} ms is not below the original's measured ${orig.toFixed(2)} ms`, remedy);
  return t.ms;
}

/**
 * Replay the structural part of a history on the original model: the same groups lose the same
 * channels (weights are sliced from the original; recovery's refits need the calibration data).
 */
export function replayHistory(model: Model, historyJson: string): number {
  const h = JSON.parse(historyJson) as { steps?: HistoryStep[] };
  if (!h || !Array.isArray(h.steps)) throw new EdgefitError('DATA', 'not an edgefit prune history');
  let cut = 0;
  for (const step of h.steps) {
    const ga = analyzeGroups(model);
    const byLabel = new Map(ga.groups.map((g) => [g.label, g]));
    const keep = new Map<number, number[]>();
    for (const r of step.groups) {
      const grp = byLabel.get(r.group);
      if (!grp || grp.size !== r.size)
        throw new EdgefitError('DATA', `history group '${r.group}' (${r.size} channels) is not in this model`);
      const removed = new Set(r.removed);
      keep.set(
        grp.id,
        Array.from({ length: grp.size }, (_, i) => i).filter((i) => !removed.has(i)),
      );
      cut += r.removed.length;
    }
    runPass(structuredPrunePass, model, { analysis: ga, keep });
  }
  return cut;
}
