// Building one candidate: the original model, pruned (structured, with activation-aware
// importance and least-squares recovery against the original; by MACs, spread over the groups
// by their measured sensitivity; then unstructured sparsity when a size budget asks for it),
// then quantized. Every candidate starts again from the original bytes: candidates never
// inherit each other's damage.
import { parseModel, serializeModel } from '../onnx/index.js';
import { normalize } from '../passes/normalize.js';
import { EdgefitError } from '../errors.js';
import { prune } from '../passes/prune/index.js';
import { foldPass } from '../passes/cleanup/fold.js';
import { runPass } from '../passes/pass.js';
import { quantizeModel } from './quantize/plan.js';
import { quantizeQat } from '../passes/quantize/qat-train.js';
import type { Sample } from '../data/inputs.js';
import { toFeeds } from '../runtime/runner.js';
import type { GroupSensitivity } from '../passes/prune/sensitivity.js';
import type { CandidateConfig, TrainingSummary } from './types.js';
import type { TrainProgress, TrainReport } from '../passes/train/types.js';
import type { LatencyTables } from '../analyze/latency/types.js';
import type { Task } from '../fidelity/tasks.js';
import { describeJudged } from '../fidelity/task-compare.js';
import { sha256 } from './cache.js';
import { frozenNote } from '../passes/train/freeze.js';

/** sha256 of a model's bytes with its metadata (the passes' reports: a target, timings) left out:
 * equal for two builds with the same graph and weights. */
export function contentSha(bytes: Uint8Array): string {
  const m = parseModel(bytes);
  return sha256(serializeModel({ ...m, metadata: new Map() }));
}

export interface BuildContext {
  original: Uint8Array;
  shapes: Map<string, number[]>;
  samples: Sample[];
  synthetic: boolean;
  threads: number;
  /** The per-group sensitivity probe of this model, when an earlier candidate measured it. */
  sensitivity?: GroupSensitivity[];
  /** The original's latency tables on this box (structuredBy 'latency'): built once per fit by the caller. */
  tables?: () => Promise<LatencyTables>;
  /** Training progress (config.train): the fit reports it as its 'training' stage. */
  onTrain?: (p: TrainProgress) => void;
  /** Peak RAM of that training, MB (absent: the trainer's default). */
  trainRamMb?: number;
  /** Images distillation trains on (a training folder beside the calibration data); unset: the calibration samples. */
  trainSamples?: () => Sample[];
  /** Awaited before every training step (TrainSpec.gate: the agent holds training while the box serves). */
  trainGate?: () => Promise<void>;
  /** The task the fit judges by: training keeps the weights its metric scores best on held-out samples. */
  task?: Task;
}

export interface Built {
  bytes: Uint8Array;
  /** What the passes reported, kept in the frontier file for the record. */
  notes: string[];
  /** The sensitivity probe this build measured (structuredBy 'macs' without ctx.sensitivity). */
  sensitivity?: GroupSensitivity[];
  /** What training on the box did (config.train). */
  training?: TrainingSummary;
}

/** A trainer's report as the frontier keeps it: the curve thinned to at most 60 points (the last kept). */
export function trainingSummary(kind: TrainingSummary['kind'], minutes: number, r: TrainReport): TrainingSummary {
  const every = Math.max(1, Math.ceil(r.curve.length / 60));
  // (the point before the first step has a held-out loss and no batch loss: heldOutBefore says it)
  const curve = r.curve
    .filter((p, i) => Number.isFinite(p.loss) && (i % every === 0 || i === r.curve.length - 1 || p.heldOut !== undefined))
    .slice(-120);
  return {
    kind,
    minutes,
    seconds: r.seconds,
    steps: r.steps,
    heldOutBefore: r.heldOutBefore,
    heldOutAfter: r.heldOutAfter,
    improved: r.improved,
    ...(r.judged ? { judged: r.judged } : {}),
    ...(r.frozen ? { frozen: { layers: r.frozen.layers.length, stride: r.frozen.stride } } : {}),
    curve: curve.map((p) => ({
      step: p.step,
      loss: p.loss,
      ...(p.heldOut !== undefined ? { heldOut: p.heldOut } : {}),
      ...(p.score !== undefined ? { score: p.score } : {}),
    })),
  };
}

/** ", box F1 0.9709 -> 0.9745 on held-out samples" when the task judged the training. */
const judgedNote = (r: TrainReport): string => (r.judged ? `, ${describeJudged(r.judged)} on held-out samples` : '');

export async function buildCandidate(config: CandidateConfig, ctx: BuildContext): Promise<Built> {
  const notes: string[] = [];
  const model = normalize(parseModel(ctx.original));
  let sensitivity: GroupSensitivity[] | undefined;
  let training: TrainingSummary | undefined;
  // training (issue 18): a pruned float candidate is distilled from the original after lsq
  const distil = !!config.train && config.quant === 'none';
  if (config.folded && (config.structured > 0 || config.unstructured > 0 || config.quant !== 'none' || config.train))
    throw new EdgefitError('INTERNAL', 'only the unpruned float candidate is the folded original');
  if (config.train && ctx.synthetic) throw new EdgefitError('DATA', 'training on the box needs real calibration data');
  if (distil && !(config.structured > 0 || config.unstructured > 0))
    throw new EdgefitError('INTERNAL', 'only a pruned float candidate is distilled');
  if (config.structured > 0 || config.unstructured > 0) {
    const real = ctx.samples.length > 0;
    const byLatency = config.structuredBy === 'latency' && config.structured > 0;
    // both targets spread their cuts by the measured per-group sensitivity
    const byMacs = (config.structuredBy === 'macs' || byLatency) && config.structured > 0;
    if (byMacs && !real) throw new EdgefitError('DATA', 'sensitivity allocation needs calibration samples');
    if (byLatency && !ctx.tables) throw new EdgefitError('INTERNAL', 'a latency candidate needs the latency tables');
    const tables = byLatency ? await ctx.tables!() : undefined;
    const target =
      config.structured <= 0
        ? {}
        : byLatency
          ? { targetLatency: { fraction: 1 - config.structured }, tables }
          : byMacs
            ? { targetMacs: config.structured }
            : { structured: config.structured };
    const r = await prune(model, {
      ...target,
      ...(byMacs ? { allocation: 'sensitivity' as const, sensitivity: ctx.sensitivity } : {}),
      ...(config.unstructured > 0
        ? { unstructured: config.unstructured, unstructuredMethod: real ? ('wanda' as const) : ('magnitude' as const) }
        : {}),
      importance: real ? 'activation' : 'l2',
      recover: real ? (distil ? 'distill' : 'lsq') : 'none',
      ...(distil
        ? {
            trainMinutes: config.train,
            trainRamMb: ctx.trainRamMb,
            ...(ctx.trainSamples ? { trainSamples: ctx.trainSamples() } : {}),
            ...(ctx.onTrain ? { onTrainProgress: (_: number, p: TrainProgress) => ctx.onTrain!(p) } : {}),
            ...(ctx.trainGate ? { trainGate: ctx.trainGate } : {}),
            ...(ctx.task ? { task: ctx.task } : {}),
          }
        : {}),
      steps: 1,
      round: 'auto', // the kernels' block: the tables' measured one, else the CPU's
      shapes: ctx.shapes,
      samples: ctx.samples,
      synthetic: ctx.synthetic,
      threads: ctx.threads,
      skipFidelity: true,
    });
    if (byMacs && r.sensitivity) sensitivity = r.sensitivity;
    notes.push(
      `pruned: MACs ${r.macs.before} -> ${r.macs.after}, ${r.groups.pruned.length} groups pruned, ${r.groups.skipped.length} skipped` +
        (r.latency ? `, predicted ${r.latency.predictedMs.toFixed(2)} of ${r.latency.originalMs.toFixed(2)} ms` : ''),
    );
    if (r.unstructured) notes.push(`unstructured: ${(r.unstructured.zeroFraction * 100).toFixed(1)}% zeros`);
    const d = r.distill[0];
    if (distil && d) {
      training = trainingSummary('distill', config.train!, d.training);
      notes.push(
        `distilled ${d.training.steps} steps in ${d.training.seconds.toFixed(0)} s${d.crop ? ` on ${d.crop.join('x')} crops` : ''}: ` +
          `held-out loss ${d.training.heldOutBefore.toPrecision(3)} -> ${d.training.heldOutAfter.toPrecision(3)}${judgedNote(d.training)}${frozenNote(d.training.frozen)}`,
      );
    }
  }
  if (config.quant === 'none') {
    // pruned models were folded by prune(); the unpruned float candidate gets the same exact folds
    // (quantizeModel does its own): the same outputs, fewer ops
    if (!(config.structured > 0 || config.unstructured > 0)) runPass(foldPass, model, 'float');
    return { bytes: serializeModel(model), notes, sensitivity, ...(training ? { training } : {}) };
  }
  if (config.train && config.quant === 'int8-static') {
    // quantization-aware training (issue 18): static int8, then its fake-quant twin trained
    // against the original and exported back to the same QDQ form (same kernels, same latency)
    const q = await quantizeQat(model, {
      samples: ctx.samples,
      minutes: config.train,
      threads: ctx.threads,
      ramMb: ctx.trainRamMb,
      // the training folder beside the calibration data trains too (det: 80 rendered images)
      ...(ctx.trainSamples ? { extraTrain: ctx.trainSamples() } : {}),
      ...(ctx.onTrain ? { onProgress: ctx.onTrain } : {}),
      ...(ctx.trainGate ? { gate: ctx.trainGate } : {}),
      ...(ctx.task ? { task: ctx.task } : {}),
    });
    const t = q.report.training;
    training = trainingSummary('qat', config.train, t);
    notes.push(
      `quantization-aware training ${t.steps} steps in ${t.seconds.toFixed(0)} s${q.report.crop ? ` on ${q.report.crop.join('x')} crops` : ''}: ` +
        `held-out loss ${t.heldOutBefore.toPrecision(3)} -> ${t.heldOutAfter.toPrecision(3)}${judgedNote(t)}${frozenNote(t.frozen)}` +
        `${q.report.features.length ? `; the ${q.report.features.length} maps the head reads matched too` : ''}`,
    );
    return { bytes: q.bytes, notes, sensitivity, training };
  }
  if (config.train)
    throw new EdgefitError('INTERNAL', `a ${config.quant} candidate is not trained (only pruned float and static int8 ones)`);
  const mode = config.quant === 'int8-static' ? 'static' : config.quant === 'int8-dynamic' ? 'dynamic' : 'fp16';
  const q = await quantizeModel(model, {
    mode,
    method: 'minmax',
    perChannel: true,
    data: ctx.samples.slice(0, 8).map(toFeeds),
    threads: ctx.threads,
  });
  notes.push(`quantized ${mode}: ${q.report.layers.quantized} layers int8, ${q.report.layers.float} float`);
  return { bytes: q.bytes, notes, sensitivity };
}
