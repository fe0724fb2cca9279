// The trainer's contract (issue 18): what a caller (distillation after pruning, quantization-aware
// training) hands train() and what it gets back. The student is any float model; the teacher gives
// the targets per student output; the loss per output is ordinary ONNX nodes appended to the
// student (loss.ts), differentiated by buildGradients (grad/backward.ts) into one training graph
// onnxruntime runs; Adam (adam.ts) updates the weights in TypeScript between steps.
import type { NdArray } from '../../data/ndarray.js';
import type { Sample } from '../../data/inputs.js';
import type { Model } from '../../ir/model.js';
import type { Judged } from '../../fidelity/task-compare.js';
import type { GradRules } from './grad/types.js';
import type { KernelChoice } from './nchwc.js';

/**
 * How one output is matched to the teacher's:
 * - 'mse': mean squared error (feature maps, regression, embeddings);
 * - 'kl': Kullback-Leibler divergence of the teacher's distribution over the last axis from the
 *   student's; on logits with a temperature (Hinton: T² · KL(softmax(t/T) ‖ softmax(s/T))), on
 *   probabilities (an output that already is a softmax) at T = 1;
 * - 'bce': per-element binary cross-entropy against the teacher's probability (DB-style maps in [0,1]);
 * - 'auto': chosen from the teacher's outputs on the training samples (loss.ts resolveLoss).
 */
export type LossKind = 'mse' | 'kl' | 'bce' | 'auto';

export interface LossSpec {
  kind: LossKind;
  /** KL on logits: the softmax temperature (default 4, Hinton's). */
  temperature?: number;
  /** KL: whether the output is logits or already probabilities ('auto' default: from the values). */
  from?: 'logits' | 'probs';
  /** Weight of this output's term in the summed loss (default 1). */
  weight?: number;
  /**
   * Whether this term counts in the held-out loss that picks the weights kept (default true); false
   * for auxiliary terms such as intermediate features, which guide training but are not the goal.
   */
  heldOut?: boolean;
  /**
   * 'mse' / 'bce' on a probability map: also a hinge at this threshold (the map's binarisation,
   * 0.3 for DB text maps): a pixel on the other side of it than the teacher's costs its distance
   * to it, so the masks (and the boxes cut from them) agree, not only the values.
   */
  threshold?: number;
  /** The hinge's weight against the output's own term (default 1). */
  hingeWeight?: number;
}

/** A loss with every choice made (what loss.ts builds nodes for). */
export interface ResolvedLoss {
  kind: 'mse' | 'kl' | 'bce';
  temperature: number;
  from: 'logits' | 'probs';
  weight: number;
  /** Counts in the held-out loss (LossSpec.heldOut); absent: true. */
  heldOut?: boolean;
  /** LossSpec.threshold: the hinge's threshold, when there is one. */
  threshold?: number;
  /** LossSpec.hingeWeight, with a threshold. */
  hingeWeight?: number;
}

/** The teacher: a model run by onnxruntime on the same (augmented) inputs, or any function giving targets by output name. */
export type Teacher = Model | ((s: Sample) => Promise<Record<string, NdArray>>);

export interface TrainProgress {
  step: number;
  /** Steps the run will take at most when a step cap was given. */
  maxSteps?: number;
  seconds: number;
  /** The budget, seconds. */
  budgetSeconds: number;
  /** Training loss of this step's batch. */
  loss: number;
  /** Held-out loss when it was measured at this step. */
  heldOut?: number;
  /** The judge's held-out score when it was measured at this step (TrainSpec.judge). */
  score?: number;
  /** Its finer figure then (HeldOutJudge.finer). */
  finer?: number;
  lr: number;
}

/**
 * A held-out verdict: the score, and a finer figure (higher better) that decides among scores the
 * tolerance ties before the loss does. On PP-OCRv4 det the held-out images scored box F1
 * 0.989-1.000 at every evaluation, so the lowest held-out loss picked, and it kept an early step in
 * runs whose box F1 on the judge images rose to 0.971-0.974 by the end (distillation) or whose int8
 * export reached map cosine 0.983 and box F1 0.983 at the last evaluation (QAT).
 */
export interface JudgeScore {
  value: number;
  finer?: number;
}

/**
 * What the model is for, scored on the held-out rows (fidelity's task metrics: box F1 for a text
 * detector, top-1 agreement for a classifier, text agreement for a recogniser), higher better.
 * Given, it picks the weights kept, its finer figure (else the held-out loss) deciding among scores within its tolerance: on PP-OCRv4 det the
 * held-out loss fell in one 12-minute run while its box F1 fell 0.971 -> 0.957.
 */
export interface HeldOutJudge {
  /** What it scores, for reports ('boxF1'). */
  name: string;
  /** The student outputs it reads. */
  outputs: readonly string[];
  /**
   * The score of the student's outputs on the held-out rows (rows of batch 1, in rowsOf(heldOut)
   * order), with the finer figure when the judge has one.
   */
  score(got: readonly Record<string, NdArray>[]): number | JudgeScore;
  /** The name of the finer figure its scores carry (JudgeScore.finer: 'maskIoU'), for reports. */
  finer?: string;
  /**
   * Scores within this of the best seen are ties, the finer figure or else the loss deciding (default 0): a metric counted
   * in boxes or samples moves in steps, and one box on a few held-out images is noise, not a verdict.
   */
  tolerance?: number;
}

export interface TrainSpec {
  /** Any float model; QAT passes one with fake-quant nodes and scale initializers. */
  student: Model;
  /** Initializer names trained (weights, biases, BN scale/bias, quant scales). */
  trainable: readonly string[];
  /**
   * Those of the layers before the first map at 1/freezeStride of the input's side stay frozen
   * (freeze.ts: the stem, whose backward costs most); unset or 0 trains every one. Distillation
   * sets FREEZE_STRIDE, QAT nothing.
   */
  freezeStride?: number;
  /** Targets per student output (by output name). */
  teacher: Teacher;
  /** One spec for every output, or per output name (outputs not named get 'auto'). */
  loss?: LossSpec | LossKind | Record<string, LossSpec | LossKind>;
  /** Training samples (batch-1 rows or stacks of rows) and held-out ones: disjoint. */
  train: readonly Sample[];
  heldOut: readonly Sample[];
  /**
   * Relative draw weight of each training row (as many as the rows of `train`): rows are then drawn
   * at random in proportion to it, with replacement. Unset: every row once per shuffled pass.
   */
  drawWeights?: readonly number[];
  /** Applied to every training row each time it is drawn (never to held-out rows): data/augment.ts. */
  augment?: (s: Sample, next: () => number) => Sample;
  /** Wall-time budget; checked after every step (held-out evaluations count against it). */
  minutes: number;
  maxSteps?: number;
  /** Rows per Adam step (default 8, at most the training rows); a model with batch fixed at 1 accumulates gradients over them. */
  batch?: number;
  /** Adam's peak learning rate (default 5e-4). */
  lr?: number;
  /**
   * Per-parameter factors on the learning rate (by trainable name; others 1): a parameter whose
   * one step moves the model far more than another's (QAT's LSQ step factors against weights in
   * units of their step) learns at its own rate under one schedule. TypeScript Adam only.
   */
  lrFactors?: ReadonlyMap<string, number>;
  /** 'cosine' (default): warm-up then cosine decay over the budget; 'constant' after the warm-up. */
  schedule?: 'cosine' | 'constant';
  weightDecay?: number;
  /**
   * Peak RSS budget of the training process, MB (default: its RSS now plus 60 % of the free
   * memory). The trainer measures a step at one and two rows and runs the largest micro-batch the
   * budget holds, accumulating gradients to keep `batch` rows per Adam step (ram.ts); it refuses
   * when one row does not fit.
   */
  ramMb?: number;
  /**
   * Where Adam runs: 'typescript' (default) between onnxruntime runs, or 'graph': appended to the
   * training graph (adam-graph.ts) so one run does forward, backward and update; measured not
   * clearly faster (scripts/bench-train-step.ts --optimizer). 'graph' needs one run per step: with
   * gradients accumulated over micro-batches the TypeScript Adam runs.
   */
  optimizer?: 'typescript' | 'graph';
  /** onnxruntime intra-op threads (default: this box's cores). */
  threads?: number;
  /** Full static dims of runtime inputs at batch 1 where the model leaves them open (the batch dim is set by the trainer). */
  shapes?: Map<string, number[]>;
  onProgress?(p: TrainProgress): void;
  /**
   * Called after every held-out evaluation (the start's too, at step 0) with the weights it judged
   * (the moving average's with `ema`): the figures of each evaluated weight set, for a caller that
   * keeps them to judge later (bench-distill --snapshots). The arrays are the trainer's own and
   * change after the call: copy what you keep.
   */
  onEvaluation?(e: EvaluatedWeights): void;
  seed?: number;
  /** Extra gradient rules (a caller's own ops); the table's rules win over these. */
  rules?: GradRules;
  /** Held-out evaluations over the run besides before and after (default 8). */
  evaluations?: number;
  /**
   * Decay of an exponential moving average of the weights (e.g. 0.995), updated after every step
   * (warmed up as (1 + t) / (10 + t) while that is smaller); evaluations then judge the average,
   * and the weights kept are the average's. Unset or 0: the weights themselves.
   */
  ema?: number;
  /** Scores each held-out evaluation by the task; the best score (not the lowest loss) is kept. */
  judge?: HeldOutJudge;
  /**
   * Awaited before every step: resolves at once to go on, or later when the box's applications
   * no longer need the CPU (the agent holds training while it serves requests). Time spent
   * waiting does not count against `minutes`.
   */
  gate?: () => Promise<void>;
}

export interface EvaluatedWeights {
  step: number;
  heldOut: number;
  /** The judge's held-out score (TrainSpec.judge). */
  score?: number;
  /** Its finer figure (HeldOutJudge.finer). */
  finer?: number;
  weights: ReadonlyMap<string, Float32Array>;
}

export interface CurvePoint {
  step: number;
  loss: number;
  heldOut?: number;
  /** The judge's held-out score (TrainSpec.judge) where heldOut was measured. */
  score?: number;
  /** Its finer figure there (HeldOutJudge.finer). */
  finer?: number;
}

export interface TrainReport {
  steps: number;
  seconds: number;
  /** Median wall time of one Adam step (forward + backward of every micro-batch + update), ms. */
  stepMs: number;
  /** Of which onnxruntime's forward + backward run (median per micro-batch, times the micro-batches); the rest is feeding, teacher and Adam. */
  graphMs: number;
  /** Median inference of the same batch by the student alone, ms (the issue asks step ≤ 4x this). */
  forwardMs: number;
  /** Rows per step and rows per onnxruntime run (1 when the model's batch is fixed and gradients accumulate). */
  batch: number;
  microBatch: number;
  curve: CurvePoint[];
  /** Seconds spent held at the gate (TrainSpec.gate): not part of `seconds`. */
  heldS?: number;
  heldOutBefore: number;
  /** Held-out loss of the returned model (the best seen; heldOutBefore when training did not help). */
  heldOutAfter: number;
  /** Step whose weights were kept (0: the input's). */
  bestStep: number;
  /**
   * false when no step beat the input on held-out rows (by the judge's score when there is one,
   * else by the loss): the input is returned unchanged.
   */
  improved: boolean;
  /** The judge's held-out score of the input and of the returned model (TrainSpec.judge). */
  judged?: Judged;
  peakRssMb: number;
  /** The RAM plan: budget, a step's fitted memory (fixed + per row, MB) and the peak it predicted. */
  ram?: { budgetMb: number; fixedMb: number; perRowMb: number; predictedPeakMb: number };
  /** Whether the step's convs ran onnxruntime's NCHWc kernels, and the timings that decided it (nchwc.ts). */
  kernels?: KernelChoice;
  /** The stem's weights left frozen (TrainSpec.freezeStride): how many, the layers they feed, the stride. */
  frozen?: { weights: number; layers: string[]; stride: number };
  trainedParams: number;
  losses: Record<string, ResolvedLoss>;
  lr: number;
  threads: number;
  /** Why training ended. */
  stopped: 'time' | 'steps';
}

export interface TrainResult {
  model: Model;
  report: TrainReport;
}
