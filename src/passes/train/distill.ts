// Knowledge distillation for pruning (issue 18): after a prune step, every float weight of the
// pruned model is trained against the ORIGINAL model's outputs (the teacher) on the calibration
// samples, without labels. The held-out split is lsq's (prune/recovery.ts heldOutIndices: one in
// four, alternating parity), so the figures reported are on samples training never saw.
import { EdgefitError } from '../../errors.js';
import type { Sample } from '../../data/inputs.js';
import type { Model } from '../../ir/model.js';
import { runFirstOutput } from '../../runtime/runner.js';
import { singleOutputFidelity, type SingleOutputFidelity } from '../../fidelity/index.js';
import { heldOutIndices } from '../prune/recovery.js';
import { train } from './train.js';
import type { TrainReport, TrainSpec } from './types.js';

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

export interface DistillOptions {
  minutes: number;
  samples: readonly Sample[];
  threads?: number;
  lr?: number;
  batch?: number;
  /** Peak RAM of the training process, MB (TrainSpec.ramMb). */
  ramMb?: number;
  maxSteps?: number;
  seed?: number;
  loss?: TrainSpec['loss'];
  augment?: TrainSpec['augment'];
  onProgress?: TrainSpec['onProgress'];
  /** Gradient rules for ops of the caller's own (TrainSpec.rules). */
  rules?: TrainSpec['rules'];
}

export interface DistillReport {
  trainSamples: number;
  heldOutSamples: number;
  /** The trainer's report (its held-out loss before/after, steps, step vs inference time, RSS). */
  training: TrainReport;
  /** The first output against the teacher's on the held-out samples, before and after. */
  fidelityBefore: SingleOutputFidelity;
  fidelityAfter: SingleOutputFidelity;
}

/** Distil `student` (changed in place: its trained weights are written back) from `teacher`. */
export async function distill(student: Model, teacher: Model, o: DistillOptions): Promise<DistillReport> {
  if (o.samples.length < 2)
    throw new EdgefitError(
      'DATA',
      `distillation needs calibration samples to train on and to hold out (at least 2, got ${o.samples.length})`,
      {
        remedy: { option: 'calib' },
      },
    );
  const { train: trainSet, heldOut } = splitHeldOut(o.samples);
  const threads = o.threads;
  const ref = await runFirstOutput(teacher, heldOut, threads);
  const fidelityBefore = singleOutputFidelity(ref, await runFirstOutput(student, heldOut, threads));
  const { model, report } = await train({
    student,
    trainable: distillTrainable(student),
    teacher,
    loss: o.loss,
    train: trainSet,
    heldOut,
    augment: o.augment,
    minutes: o.minutes,
    maxSteps: o.maxSteps,
    batch: o.batch,
    ramMb: o.ramMb,
    lr: o.lr,
    threads,
    seed: o.seed,
    onProgress: o.onProgress,
    rules: o.rules,
  });
  if (report.improved) {
    for (const w of distillTrainable(student)) student.graph.setInitializer(model.graph.initializer(w)!);
    student.graph.touch();
  }
  const fidelityAfter = report.improved ? singleOutputFidelity(ref, await runFirstOutput(student, heldOut, threads)) : fidelityBefore;
  return { trainSamples: trainSet.length, heldOutSamples: heldOut.length, training: report, fidelityBefore, fidelityAfter };
}
