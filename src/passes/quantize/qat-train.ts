// quantize --mode qat (issue 18): static int8 first (calibration, weight rounding, what stays
// float: the static path's plan), then that model as fake-quant float (qat.ts) trained against the
// float original on the calibration samples (train(), src/passes/train/; images of 256+ px a side
// on random crops, crops.ts, as distillation trains), then exported back to
// the static QDQ form (qat-export.ts): same kernels, same latency as static int8, trained values.
// Besides the outputs the student matches the maps its head reads (det: the neck's four scales),
// as a guide outside the held-out loss (features.ts).
import { EdgefitError } from '../../errors.js';
import type { Sample } from '../../data/inputs.js';
import type { Model } from '../../ir/model.js';
import { parseModel, serializeModel } from '../../onnx/index.js';
import { runFirstOutput, runtimeOps, toFeeds, type Outputs } from '../../runtime/runner.js';
import { singleOutputFidelity, type SingleOutputFidelity } from '../../fidelity/index.js';
import { Tensor } from '../../ir/tensor.js';
import { trainAndHeldOut } from '../train/distill.js';
import { train } from '../train/train.js';
import { judgeOrLoss } from '../train/judge.js';
import { featureLosses, type FeatureChoice } from '../train/features.js';
import { CROP_BATCH, shrinkingCrops, type CropPlan } from '../train/crops.js';
import type { Task } from '../../fidelity/tasks.js';
import type { TrainReport, TrainSpec } from '../train/types.js';
import { openQuantizer, type QuantizeOptions, type QuantizeReport } from './index.js';
import { fakeQuantize, qatStepFactors, qatTrainables, type BiasUnits } from './qat.js';
import { exportQdq } from './qat-export.js';
import { floatSet, tensorUnit } from './plan.js';

/**
 * Adam's peak learning rate for QAT: weights and biases are in units of their step (qat.ts), so
 * this is a fraction of a quantization step per update.
 */
export const QAT_DEFAULT_LR = 1e-2;

/**
 * The LSQ step factors' learning rate, as a share of the weights': a weight moves by lr of its
 * step per update, but a factor of lr moves the top of an activation's range by lr x 127-255
 * steps, and at the weights' rate (factor 1) no det run's held-out loss ever fell below static int8's.
 */
export const QAT_SCALE_LR_FACTOR = 1e-2;

/**
 * QAT's default crops: 0.3 of each side (192x192 on det's 640x640), crops only. Every QAT det
 * figure was measured so (bench-qat --crop 192, batch 4): 2,576 steps in 12 minutes against 126 on
 * whole images. No flips or brightness: the activation scales stay the calibration's, and inputs
 * brighter than any calibrated would train against clipping the deployed model never sees.
 */
export const QAT_CROP_SCALE = 0.3;

export interface QatOptions {
  /**
   * Calibration samples: all calibrate the static start; all are held out when `extraTrain` is
   * given, else training holds one in four out (distill's split, trainAndHeldOut).
   */
  samples: readonly Sample[];
  /**
   * A training set of its own (never calibrated on): all of it trains and every calibration sample
   * is held out, as distillation holds them out. On det, 12 calibration images alone are few for
   * the int8 model to learn from, and the 4 of a one-in-four split few to pick the kept weights by.
   */
  extraTrain?: readonly Sample[];
  minutes: number;
  /** What a bias's trained value counts (qat.ts BiasUnits); default 'int32'. */
  biasUnits?: BiasUnits;
  /** Train the step sizes too (LSQ), besides weights and biases. */
  scales?: boolean;
  /** The step factors' learning rate as a share of `lr` (default QAT_SCALE_LR_FACTOR). */
  scaleLr?: number;
  method?: QuantizeOptions['method'];
  weightRounding?: QuantizeOptions['weightRounding'];
  equalize?: boolean;
  platform?: QuantizeOptions['platform'];
  threads?: number;
  lr?: number;
  /** Decay of the weights' moving average that evaluations judge and the result keeps (TrainSpec.ema; unset: none). */
  ema?: number;
  /**
   * TrainSpec.freezeStride: the stem left frozen (freeze.ts). Unset: none, as every layer's weights
   * must absorb their own rounding (det with its stem frozen at stride 8 kept box F1 0.9733 where
   * every layer trained kept 0.9853, both 12 minutes; freeze.ts).
   */
  freezeStride?: number;
  /** Activations the static start leaves float (QuantPlan.float's tensors; the fake-quant model follows it). */
  floatTensors?: readonly string[];
  /** Rows per step; unset: CROP_BATCH on the default crops, else the trainer's default. */
  batch?: number;
  /** Peak RAM of the training process, MB (TrainSpec.ramMb). */
  ramMb?: number;
  maxSteps?: number;
  seed?: number;
  loss?: TrainSpec['loss'];
  /** Unset: random crops of QAT_CROP_SCALE of each side for images of CROP_FROM+ pixels a side (crops.ts), else none. */
  augment?: TrainSpec['augment'];
  gate?: TrainSpec['gate'];
  shapes?: Map<string, number[]>;
  onProgress?: TrainSpec['onProgress'];
  /** Each held-out evaluation's trained values (TrainSpec.onEvaluation); QatResult.exportWith makes int8 models of them. */
  onEvaluation?: TrainSpec['onEvaluation'];
  /** What the model is for: the held-out evaluations are scored by its metric and the best kept (distill's DistillOptions.task). */
  task?: Task | 'auto';
  /**
   * Intermediate maps the fake-quant student matches to the float original's besides the outputs:
   * 'head' (default: the maps the head reads, features.ts headFeatures; none on models without
   * such a join), none, or these tensors.
   */
  features?: 'head' | false | readonly string[];
  /** The features' share of the loss at the start, against the outputs' (default 1). */
  featureWeight?: number;
}

export interface QatReport {
  /** The static int8 model QAT started from, and the exported one's sizes and runtime ops. */
  quantize: QuantizeReport;
  trainSamples: number;
  heldOutSamples: number;
  /** The default random crop trained on ([h, w]; QatOptions.augment unset): smaller when the RAM budget said so. */
  crop?: [number, number];
  fakeQuant: { activations: number; weights: number; biases: number; trainedScales: number };
  training: TrainReport;
  /** Intermediate maps matched (QatOptions.features: tensor, loss weight, start cosine); none, the outputs alone. */
  features: FeatureChoice[];
  /** The first output against the float original on the held-out samples: static int8, then QAT int8 (the exported model). */
  fidelityStatic: SingleOutputFidelity;
  fidelityQat: SingleOutputFidelity;
}

export interface QatResult {
  model: Model;
  bytes: Uint8Array;
  /** The static int8 model QAT started from (the comparison). */
  staticBytes: Uint8Array;
  floatModel: Model;
  floatBytes: Uint8Array;
  report: QatReport;
  /** The int8 QDQ model of other trained values (QatOptions.onEvaluation's), exported as the result was. */
  exportWith(values: ReadonlyMap<string, Float32Array>): Model;
}

/** The first output on `samples`, with onnxruntime's full optimisation: the int8 kernels a deployment runs. */
const firstOutput = (model: Model, samples: readonly Sample[], threads: number): Promise<Outputs[]> =>
  runFirstOutput(model, samples, threads, 'all');

export async function quantizeQat(input: Model, o: QatOptions): Promise<QatResult> {
  if (!(o.minutes > 0)) throw new EdgefitError('USAGE', `--train-minutes must be a positive number of minutes, got ${o.minutes}`);
  if (o.samples.length < 2)
    throw new EdgefitError('DATA', `QAT needs calibration samples to train on and to hold out (at least 2, got ${o.samples.length})`, {
      remedy: { option: 'calib' },
    });
  const threads = o.threads ?? 2;
  const q = await openQuantizer(input, {
    mode: 'static',
    method: o.method,
    weightRounding: o.weightRounding,
    equalize: o.equalize,
    platform: o.platform,
    data: o.samples.map(toFeeds),
    threads,
  });
  const plan = o.floatTensors?.length ? { ...q.defaultPlan, float: floatSet(o.floatTensors.map(tensorUnit)) } : q.defaultPlan;
  const built = q.build(plan);
  const staticReport = await q.report(built);
  const floatModel = parseModel(q.floatBytes);
  const fq = fakeQuantize(built.model, {
    reduceRange: plan.reduceRange,
    floatWeights: (n) => floatModel.graph.initializer(n),
    biasUnits: o.biasUnits ?? 'int32',
  });
  const trainable = qatTrainables(fq, { scales: o.scales ?? false });
  const lrFactors = new Map(o.scales ? qatStepFactors(fq).map((n) => [n, o.scaleLr ?? QAT_SCALE_LR_FACTOR] as const) : []);
  const { train: rows, heldOut } = trainAndHeldOut(o.samples, o.extraTrain);
  const judge = await judgeOrLoss(floatModel, heldOut, o.task, threads);
  const crops = o.augment ? undefined : shrinkingCrops(rows, QAT_CROP_SCALE);
  const feats = await featureLosses(fq.model, floatModel, rows, {
    features: o.features ?? 'head',
    weight: o.featureWeight ?? 1,
    loss: o.loss,
    threads,
  });
  const once = (plan: CropPlan | undefined) =>
    train({
      student: feats.student,
      trainable,
      teacher: feats.teacher,
      loss: feats.loss,
      train: rows,
      heldOut,
      augment: o.augment ?? plan?.augment,
      minutes: o.minutes,
      maxSteps: o.maxSteps,
      batch: o.batch ?? (plan ? CROP_BATCH : undefined),
      ramMb: o.ramMb,
      lr: o.lr ?? QAT_DEFAULT_LR,
      lrFactors,
      ...(o.ema ? { ema: o.ema } : {}),
      ...(o.freezeStride !== undefined ? { freezeStride: o.freezeStride } : {}),
      threads,
      seed: o.seed,
      shapes: o.shapes,
      onProgress: o.onProgress,
      onEvaluation: o.onEvaluation,
      gate: o.gate,
      judge,
    });
  const { model: trained, report: training } = crops ? await crops.run(once) : await once(undefined);
  const values = new Map<string, Tensor>();
  for (const name of trainable) {
    const t = trained.graph.initializer(name);
    if (t) values.set(name, t);
  }
  const model = exportQdq(fq, values);
  const exportWith = (given: ReadonlyMap<string, Float32Array>): Model =>
    exportQdq(
      fq,
      new Map(
        [...given].flatMap(([name, v]) => {
          const t = fq.model.graph.initializer(name);
          return t && trainable.includes(name) ? [[name, Tensor.fromFloat32(name, [...t.dims], v)] as const] : [];
        }),
      ),
    );
  const bytes = serializeModel(model);
  const ref = await firstOutput(floatModel, heldOut, threads);
  // judged as deployed: on the int8 kernels (the float path of the same QDQ graph rounds biases' scales differently)
  const fidelityStatic = singleOutputFidelity(ref, await firstOutput(built.model, heldOut, threads));
  const fidelityQat = singleOutputFidelity(ref, await firstOutput(model, heldOut, threads));
  const quantize: QuantizeReport = {
    ...staticReport,
    sizes: { before: staticReport.sizes.before, after: bytes.byteLength, ratio: bytes.byteLength / staticReport.sizes.before },
    runtimeOps: await runtimeOps(bytes),
    note: training.improved
      ? `quantization-aware training from static int8: held-out loss ${training.heldOutBefore.toPrecision(3)} -> ${training.heldOutAfter.toPrecision(3)}`
      : 'quantization-aware training: no step beat static int8 on held-out samples, static int8 kept',
  };
  return {
    model,
    bytes,
    staticBytes: built.bytes,
    floatModel,
    floatBytes: q.floatBytes,
    exportWith,
    report: {
      quantize,
      trainSamples: rows.length,
      heldOutSamples: heldOut.length,
      ...(crops?.plan ? { crop: crops.plan.crop } : {}),
      fakeQuant: {
        activations: fq.activations.length,
        weights: fq.weights.length,
        biases: fq.biases.length,
        trainedScales: trainable.length - fq.weights.length - fq.biases.length,
      },
      training,
      features: feats.chosen,
      fidelityStatic,
      fidelityQat,
    },
  };
}
