// Knowledge distillation for pruning (issue 18): after a prune step, every float weight of the
// pruned model is trained against the ORIGINAL model's outputs (the teacher), without labels. It
// trains on a training set of its own when the caller has one (det: assets/calib/det/train) and
// holds out the calibration samples; else on the calibration samples with lsq's held-out split
// (prune/recovery.ts heldOutIndices: one in four), so the figures are on samples training never saw.
// Besides the outputs it matches intermediate features where pruning left the width whole
// (features.ts: the first full-width tensors after pruned groups), and with no learning rate given
// with no learning rate given it takes the rate measured best for the kind of output (a probability
// map: MAP_LR), and given several it tries each for a few steps and goes on with the best.
import { EdgefitError, isEdgefitError } from '../../errors.js';
import type { Sample } from '../../data/inputs.js';
import type { Model } from '../../ir/model.js';
import { runFirstOutput } from '../../runtime/runner.js';
import { singleOutputFidelity, type SingleOutputFidelity } from '../../fidelity/index.js';
import { heldOutIndices } from '../prune/recovery.js';
import { featureLosses, type FeatureChoice } from './features.js';
import { beats, train } from './train.js';
import { hardestSamples, judgeOrLoss, sampleScores } from './judge.js';
import type { LossSpec, TrainReport, TrainSpec } from './types.js';
import type { Task } from '../../fidelity/tasks.js';
import { CROP_BATCH, shrinkingCrops, type CropPlan } from './crops.js';
import { FREEZE_STRIDE } from './freeze.js';
import { MASK_THRESHOLD } from '../../fidelity/metrics.js';

/** Weight inputs trained, by op: the layers' weights and biases, normalisations' scale and shift. */
const TRAINED_INPUTS = {
  Conv: [1, 2],
  ConvTranspose: [1, 2],
  Gemm: [1, 2],
  MatMul: [0, 1],
  BatchNormalization: [1, 2],
  LayerNormalization: [1, 2],
  InstanceNormalization: [1, 2],
  PRelu: [1],
} as const satisfies Record<string, readonly number[]>;

/**
 * The float32 weights distillation trains: inputs of the layers above, plus a bias added right
 * after a MatMul (the exporters' Linear). Constants of activations (HardSwish's 1/6, ...) stay.
 */
export function distillTrainable(m: Model): string[] {
  const g = m.graph;
  const out = new Set<string>();
  const isW = (v: string | undefined): v is string => !!v && g.initializer(v)?.dtype === 'float32';
  for (const n of g.nodes) {
    const idx = (TRAINED_INPUTS as Record<string, readonly number[]>)[n.opType];
    if (idx) for (const i of idx) if (isW(n.inputs[i])) out.add(n.inputs[i]!);
    if (n.opType === 'Add' && n.inputs.some((v) => g.producer(v)?.opType === 'MatMul'))
      for (const v of n.inputs) if (isW(v) && g.initializer(v)!.dims.length <= 1) out.add(v);
  }
  return [...out];
}

/** Training and held-out samples: lsq's held-out rule, so both recoveries judge on the same samples. */
export function splitHeldOut(samples: readonly Sample[]): { train: Sample[]; heldOut: Sample[] } {
  const held = heldOutIndices(samples.length);
  return { train: samples.filter((_, i) => !held.has(i)), heldOut: samples.filter((_, i) => held.has(i)) };
}

/**
 * What trains and what is held out: with a training set of the caller's own, all of it trains and
 * every calibration sample is held out (they calibrated, they train no weight, and the more the
 * held-out set has, the less its pick of the kept weights is chance); else the calibration samples
 * are split by splitHeldOut.
 */
export function trainAndHeldOut(calib: readonly Sample[], own: readonly Sample[] | undefined): { train: Sample[]; heldOut: Sample[] } {
  return own && own.length > 0 ? { train: [...own], heldOut: [...calib] } : splitHeldOut(calib);
}

export interface DistillOptions {
  minutes: number;
  /** Calibration samples: the held-out set when `trainSamples` is given, else split into training and held-out. */
  samples: readonly Sample[];
  /** A training set of its own (disjoint from `samples`): all of it trains, `samples` are held out. */
  trainSamples?: readonly Sample[];
  threads?: number;
  /**
   * Adam's peak rate; several: a short trial of each (TRIAL_STEPS steps apiece, from the same start,
   * within half the budget in all) and the rest of the budget at the one with the lowest held-out
   * loss, from its best weights. Unset: MAP_LR for a probability-map student, else the trainer's default.
   */
  lr?: number | readonly number[];
  /** Rows per step; unset: CROP_BATCH on the default crops, else the trainer's default. */
  batch?: number;
  /** Peak RAM of the training process, MB (TrainSpec.ramMb). */
  ramMb?: number;
  maxSteps?: number;
  seed?: number;
  /** Unset: MAP_LOSS for a probability-map student, else 'auto' per output (loss.ts). */
  loss?: TrainSpec['loss'];
  /** Unset: random half-side crops, flips and brightness for images of CROP_FROM+ pixels a side (DISTILL_CROPS, crops.ts), else none. */
  augment?: TrainSpec['augment'];
  onProgress?: TrainSpec['onProgress'];
  onEvaluation?: TrainSpec['onEvaluation'];
  gate?: TrainSpec['gate'];
  /** Gradient rules for ops of the caller's own (TrainSpec.rules). */
  rules?: TrainSpec['rules'];
  /** Decay of the weights' moving average that evaluations judge and the result keeps (TrainSpec.ema; unset: none). */
  ema?: number;
  /**
   * TrainSpec.freezeStride: the stem left frozen (freeze.ts); 0 trains every layer. Unset:
   * FREEZE_STRIDE: det recovered as well without its stem's weights, in 23 % more steps.
   */
  freezeStride?: number;
  /** Intermediate features matched besides the outputs: 'auto' (default, features.ts), none, or these tensors. */
  features?: 'auto' | false | readonly string[];
  /** The features' share of the loss at the start, against the outputs' (default 1: as much). */
  featureWeight?: number;
  /**
   * What the model is for ('auto': detected from the teacher): the held-out evaluations are then
   * scored by its metric (box F1, top-1, text agreement) and the best score's weights are kept
   * (judge.ts). Unset: the held-out loss picks them.
   */
  task?: Task | 'auto';
  /**
   * With `trainSamples`, this share of them (at least one), the ones the student's start agrees
   * with the teacher least on by `task`, joins the held-out set, so the task judge sees the kinds
   * of input the student is weak on (judge.ts hardestSamples). Unset or 0: none; needs `task`.
   */
  hardHeldOut?: number;
  /**
   * With `trainSamples` and `task`: the training samples the student's start disagrees with the
   * teacher on (each scored alone by `task`, short of 1) are drawn this many times as often as the
   * others (TrainSpec.drawWeights). Unset or 1: every sample alike.
   */
  oversampleHard?: number;
}

/**
 * The rate when none is given and the student's output is a probability map (a Sigmoid map [N,1,H,W]:
 * DB text detection). Measured on PP-OCRv4 det at 0.5x latency, 14 min of 320x320 crops of the 72
 * training images: 3e-5 lowered the held-out loss 42 %; a trial of 3e-4 / 6e-5 / 1.2e-5 sized by
 * time left no step to any rate on a loaded box (its graph builds took the trial's time) and the
 * fallback 1.2e-5 lowered it 10 %; with the 12 calibrate images 5e-4 never helped and 5e-5 overfit.
 */
export const MAP_LR = 3e-5;
/** Steps each trial rate gets (the trial compares rates at equal steps, not equal time). */
export const TRIAL_STEPS = 20;

/**
 * The loss when none is given and the student's output is a probability map: per-pixel BCE (its
 * gradient does not vanish where the student saturates, as MSE's does through the Sigmoid) plus the
 * hinge at the map's binarisation threshold (loss.ts). Measured on det, 14 min at MAP_LR: box F1
 * 0.9489 -> 0.9568 with the hinge, 0.9540 without (mask IoU 0.83 -> 0.88 either way).
 */
export const MAP_LOSS = { kind: 'bce', threshold: MASK_THRESHOLD } as const satisfies LossSpec;
/** Distillation's default crops: half of each side, with flips and brightness 0.1 (a quarter of the compute per row; det's bench setting). */
const DISTILL_CROPS = { scale: 0.5, extra: { flip: true, brightness: 0.1 } } as const;

/** A Sigmoid probability map [N, 1, H, W] as the student's first output. */
function isMapStudent(m: Model): boolean {
  const out = m.graph.outputs[0];
  const shape = out?.type?.shape;
  return !!out && m.graph.producer(out.name)?.opType === 'Sigmoid' && !!shape && shape.length === 4 && shape[1] === 1;
}

export interface DistillReport {
  trainSamples: number;
  heldOutSamples: number;
  /** Of heldOutSamples, the training samples held out as the hardest (DistillOptions.hardHeldOut). */
  hardHeldOut: number;
  /** Training samples drawn DistillOptions.oversampleHard times as often (the start got them wrong). */
  oversampled: number;
  /** The trainer's report (its held-out loss before/after, steps, step vs inference time, RSS); over all runs when rates were tried. */
  training: TrainReport;
  /** The first output against the teacher's on the held-out samples, before and after. */
  fidelityBefore: SingleOutputFidelity;
  fidelityAfter: SingleOutputFidelity;
  /** Intermediate features matched (tensor, loss weight, start cosine student vs teacher). */
  features: FeatureChoice[];
  /** Rates tried and the held-out loss each reached (empty when one rate was used). */
  lrTrial: { lr: number; heldOut: number; steps: number }[];
  /** The default random crop trained on ([h, w]): half of each side, smaller when the RAM budget said so. */
  crop?: [number, number];
}

/** A report's held-out figures before training and of the model it returned (the judge's score when judged). */
const beforeOf = (r: TrainReport) => ({ loss: r.heldOutBefore, score: r.judged?.before, finer: r.judged?.finer?.before });
const afterOf = (r: TrainReport) => ({ loss: r.heldOutAfter, score: r.judged?.after, finer: r.judged?.finer?.after });

/** The first run's judged figures before, and the kept run's after (the first's before when nothing improved). */
function joinJudged(first: NonNullable<TrainReport['judged']>, kept?: TrainReport['judged']): NonNullable<TrainReport['judged']> {
  const finer = first.finer && { finer: { ...first.finer, after: kept ? kept.finer!.after : first.finer.before } };
  return { ...first, after: kept ? kept.after : first.before, ...finer };
}

/**
 * Several train() reports as one: steps, time and curve summed in order, before from the first,
 * after from `kept` (the run whose model is returned).
 */
function joinReports(parts: readonly TrainReport[], kept: TrainReport, lr: number, tolerance: number): TrainReport {
  const last = parts[parts.length - 1]!;
  const first = parts[0]!;
  let offset = 0;
  const curve: TrainReport['curve'] = [];
  for (const p of parts) {
    for (const c of p.curve) if (c.step > 0 || offset === 0) curve.push({ ...c, step: c.step + offset });
    offset += p.steps;
  }
  const improved = beats(afterOf(kept), beforeOf(first), tolerance);
  return {
    ...last,
    steps: offset,
    seconds: +parts.reduce((a, p) => a + p.seconds, 0).toFixed(2),
    ...(parts.some((p) => p.heldS) ? { heldS: +parts.reduce((a, p) => a + (p.heldS ?? 0), 0).toFixed(2) } : {}),
    curve,
    heldOutBefore: first.heldOutBefore,
    heldOutAfter: improved ? kept.heldOutAfter : first.heldOutBefore,
    ...(first.judged ? { judged: joinJudged(first.judged, improved ? kept.judged! : undefined) } : {}),
    improved,
    bestStep: improved ? offset - last.steps + last.bestStep : 0,
    peakRssMb: Math.max(...parts.map((p) => p.peakRssMb)),
    lr,
  };
}

/** DistillOptions.hardHeldOut's samples: none when the task does not fit the outputs (the loss judges then). */
async function hardOnes(
  teacher: Model,
  student: Model,
  train: readonly Sample[],
  task: Task | 'auto',
  share: number,
  threads?: number,
): Promise<number[]> {
  if (!(share > 0 && share < 1)) throw new EdgefitError('USAGE', `hardHeldOut is a share of the training samples in (0, 1), got ${share}`);
  const k = Math.max(1, Math.round(share * train.length));
  try {
    return await hardestSamples(teacher, student, train, task, Math.min(k, train.length - 1), threads);
  } catch (e) {
    if (isEdgefitError(e) && e.code === 'USAGE') return [];
    throw e;
  }
}

/** DistillOptions.oversampleHard's draw weights: `factor` for a sample the start gets wrong, else 1; none when all agree or the task does not fit. */
async function hardWeights(
  teacher: Model,
  student: Model,
  train: readonly Sample[],
  task: Task | 'auto',
  factor: number,
  threads?: number,
): Promise<number[] | undefined> {
  if (!(factor >= 1 && Number.isFinite(factor))) throw new EdgefitError('USAGE', `oversampleHard is a factor of at least 1, got ${factor}`);
  let scores: number[];
  try {
    scores = await sampleScores(teacher, student, train, task, threads);
  } catch (e) {
    if (isEdgefitError(e) && e.code === 'USAGE') return undefined;
    throw e;
  }
  return factor > 1 && scores.some((x) => x < 1) ? scores.map((x) => (x < 1 ? factor : 1)) : undefined;
}

/** Distil `student` (changed in place: its trained weights are written back) from `teacher`. */
export async function distill(student: Model, teacher: Model, o: DistillOptions): Promise<DistillReport> {
  const own = o.trainSamples && o.trainSamples.length > 0;
  if (o.samples.length < (own ? 1 : 2))
    throw new EdgefitError(
      'DATA',
      `distillation needs calibration samples to train on and to hold out (at least 2, got ${o.samples.length})`,
      {
        remedy: { option: 'calib' },
      },
    );
  const threads = o.threads;
  const split = trainAndHeldOut(o.samples, o.trainSamples);
  const hard =
    own && o.hardHeldOut && o.task !== undefined ? await hardOnes(teacher, student, split.train, o.task, o.hardHeldOut, threads) : [];
  const trainSet = split.train.filter((_, i) => !hard.includes(i));
  const drawWeights =
    own && o.oversampleHard !== undefined && o.task !== undefined
      ? await hardWeights(teacher, student, trainSet, o.task, o.oversampleHard, threads)
      : undefined;
  const heldOut = [...split.heldOut, ...hard.map((i) => split.train[i]!)];
  const ref = await runFirstOutput(teacher, heldOut, threads);
  const fidelityBefore = singleOutputFidelity(ref, await runFirstOutput(student, heldOut, threads));
  const trainable = distillTrainable(student);
  const isMap = isMapStudent(student);
  const loss = o.loss ?? (isMap ? MAP_LOSS : undefined);
  // no augmentation given: the default crops (crops.ts), shrinking if the RAM budget says so
  const crops = o.augment ? undefined : shrinkingCrops(trainSet, DISTILL_CROPS.scale, DISTILL_CROPS.extra);
  // matched features: the student and teacher both expose them as extra outputs, with their losses
  const feats = await featureLosses(student, teacher, trainSet, {
    features: o.features ?? 'auto',
    weight: o.featureWeight ?? 1,
    loss,
    threads,
  });
  const rates: number[] = o.lr === undefined ? (isMap ? [MAP_LR] : []) : typeof o.lr === 'number' ? [o.lr] : [...o.lr];
  const judge = await judgeOrLoss(teacher, heldOut, o.task, threads);
  const once = (from: Model, minutes: number, lr: number | undefined, maxSteps: number | undefined, plan: CropPlan | undefined) =>
    train({
      student: from,
      trainable,
      teacher: feats.teacher,
      loss: feats.loss,
      train: trainSet,
      heldOut,
      augment: o.augment ?? plan?.augment,
      ...(drawWeights ? { drawWeights } : {}),
      minutes,
      maxSteps,
      batch: o.batch ?? (plan ? CROP_BATCH : undefined),
      ramMb: o.ramMb,
      lr,
      threads,
      seed: o.seed,
      gate: o.gate,
      onProgress: o.onProgress,
      onEvaluation: o.onEvaluation,
      rules: o.rules,
      judge,
      ...(o.ema ? { ema: o.ema } : {}),
      freezeStride: o.freezeStride ?? FREEZE_STRIDE,
    });
  const run = (from: Model, minutes: number, lr: number | undefined, maxSteps?: number): ReturnType<typeof train> =>
    crops ? crops.run((plan) => once(from, minutes, lr, maxSteps, plan)) : once(from, minutes, lr, maxSteps, undefined);
  const lrTrial: DistillReport['lrTrial'] = [];
  let result;
  if (rates.length <= 1) result = await run(feats.student, o.minutes, rates[0], o.maxSteps);
  else {
    const t0 = performance.now();
    const trials: Awaited<ReturnType<typeof run>>[] = [];
    for (const lr of rates) {
      const r = await run(feats.student, (o.minutes * 0.5) / rates.length, lr, TRIAL_STEPS);
      trials.push(r);
      lrTrial.push({ lr, heldOut: r.report.heldOutAfter, steps: r.report.steps });
    }
    const tol = judge?.tolerance ?? 0;
    const bestI = trials.reduce((b, r, i) => (beats(afterOf(r.report), afterOf(trials[b]!.report), tol) ? i : b), 0);
    // nothing improved in any trial: the gentlest rate goes on from the start
    const pick = trials[bestI]!.report.improved ? bestI : rates.indexOf(Math.min(...rates));
    const rest = o.minutes - (performance.now() - t0) / 60_000;
    const parts = [...trials.map((r) => r.report)];
    result = trials[pick]!;
    if (rest > o.minutes * 0.05) {
      const more = await run(trials[pick]!.model, rest, rates[pick]);
      parts.push(more.report);
      if (more.report.improved) result = more;
    }
    result = { model: result.model, report: joinReports(parts, result.report, rates[pick]!, tol) };
  }
  const { model, report } = result;
  if (report.improved) {
    for (const w of trainable) student.graph.setInitializer(model.graph.initializer(w)!);
    student.graph.touch();
  }
  const fidelityAfter = report.improved ? singleOutputFidelity(ref, await runFirstOutput(student, heldOut, threads)) : fidelityBefore;
  return {
    trainSamples: trainSet.length,
    heldOutSamples: heldOut.length,
    hardHeldOut: hard.length,
    oversampled: drawWeights?.filter((w) => w > 1).length ?? 0,
    training: report,
    fidelityBefore,
    fidelityAfter,
    features: feats.chosen,
    lrTrial,
    ...(crops?.plan ? { crop: crops.plan.crop } : {}),
  };
}
