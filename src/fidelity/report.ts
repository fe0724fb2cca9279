// The fidelity report eval and fit show (per output, and a headline naming its metric), and
// accuracy against labels. Each output is pooled over all samples in float64; an output equal bit
// for bit has cosine exactly 1 and infinite SNR (no rounding can make a model differ from itself).
import { EdgefitError } from '../errors.js';
import { ndToFloat64, type NdArray } from '../data/ndarray.js';
import { compareSamples, type MetricRequest, type Outputs } from './compare.js';
import { argmax, type OutputTensor } from './metrics.js';
import type { Task } from './tasks.js';
import type { TaskFigures } from './task-def.js';

/** Headline metrics of eval: auto = top-1 agreement when an output looks like class scores, cosine otherwise. */
export const HEADLINE_METRICS = ['auto', 'cosine', 'top1', 'top5'] as const;
export type HeadlineMetric = (typeof HEADLINE_METRICS)[number];

/** Agreement of one output with the reference's, over all samples. */
export interface OutputFidelity {
  name: string;
  /** Cosine similarity of the flattened outputs, exactly 1 when bitwise equal. */
  cosine: number;
  /** 10*log10(sum ref^2 / sum (ref-out)^2); Infinity when equal (null in JSON). */
  snrDb: number;
  maxAbsErr: number;
  /** Present for classifier-like outputs ([..., C] scores, 2 <= C): fraction of rows with the same argmax. */
  top1Agreement?: number;
  /** Fraction of rows where the reference's top-1 class is in this model's top 5 (C > 5). */
  top5Agreement?: number;
}

export interface FidelityReport {
  /** Headline in [0, 1]: the chosen metric, worst over the outputs it applies to. */
  value: number;
  /** A HeadlineMetric other than 'auto', or (judged by task) the task's metric: 'boxF1', 'textAgreement' ... */
  metric: string;
  /** What the model was judged as (issue 16), whether that was detected, and why. */
  task?: Task;
  taskAuto?: boolean;
  taskReason?: string;
  /** The task's figures: its headline as `value` and the rest (precision, recall, cer ...). */
  taskFigures?: TaskFigures;
  /** Worst over outputs. */
  cosine: number;
  snrDb: number;
  maxAbsErr: number;
  top1Agreement?: number;
  top5Agreement?: number;
  perOutput: OutputFidelity[];
  samples: number;
  /** True when computed on synthetic inputs: says nothing about real-data behaviour. */
  synthetic: boolean;
}

export interface AccuracyReport {
  value: number;
  correct: number;
  total: number;
  /** The output whose argmax is compared with the labels. */
  output: string;
}

type NdOutputs = Record<string, NdArray>;

/** The shape of scores over classes: last dim C >= 2, at most one non-unit leading dim. */
export function isScoreShape(dims: readonly number[]): boolean {
  const c = dims[dims.length - 1] ?? 0;
  if (c < 2 || c > 100000) return false;
  const lead = dims.slice(0, -1).filter((d) => d !== 1);
  return dims.length <= 2 || (lead.length <= 1 && dims.length <= 3);
}

/** Scores over classes: float, and isScoreShape. */
export function isClassifierLike(a: NdArray): boolean {
  return ['float32', 'float64', 'float16'].includes(a.dtype) && isScoreShape(a.shape);
}

/** A single-channel map [N, 1, H, W] (text detection's probability map): compared by mask IoU too. */
export function isMaskMap(dims: readonly number[]): boolean {
  return dims.length === 4 && dims[1] === 1;
}

/** An NdArray as the metrics read it: float32/float64 as they are, other dtypes as float64. */
export function ndTensor(a: NdArray): OutputTensor {
  const data = a.dtype === 'float32' || a.dtype === 'float64' ? (a.data as Float32Array | Float64Array) : ndToFloat64(a);
  return { dims: a.shape, data };
}

/** Each output of `names` (in that order) over all samples: cosine, SNR, max |err|, and top-1/top-5 agreement for class scores. */
export function perOutputFidelity(ref: readonly NdOutputs[], got: readonly NdOutputs[], names: readonly string[]): OutputFidelity[] {
  // top-1 for outputs that are class scores in every sample (and not empty); top-5 when C > 5
  const classified = names.filter(
    (n) => got.length > 0 && got.every((o) => o[n] !== undefined && isClassifierLike(o[n]!)) && got.some((o) => o[n]!.data.length > 0),
  );
  const top5 = classified.filter((n) => got[0]![n]!.shape[got[0]![n]!.shape.length - 1]! > 5);
  const asTensors = (xs: readonly NdOutputs[]): Outputs[] =>
    xs.map((o) => Object.fromEntries(names.filter((n) => o[n]).map((n) => [n, ndTensor(o[n]!)])));
  const requests: MetricRequest[] = [
    { metric: 'cosine', over: 'pooled' },
    { metric: 'snrDb', over: 'pooled' },
    { metric: 'maxAbsErr', over: 'pooled' },
    { metric: 'top1', over: 'pooled', outputs: classified },
    { metric: 'top5', over: 'pooled', outputs: top5 },
  ];
  const [cos, snr, maxErr, t1, t5] = compareSamples(asTensors(ref), asTensors(got), requests, names).results;
  const of = (r: typeof cos, n: string) => r!.perOutput.find((p) => p.name === n)?.value;
  return names.map((name) => {
    const f: OutputFidelity = { name, cosine: of(cos, name)!, snrDb: of(snr, name)!, maxAbsErr: of(maxErr, name)! };
    const a = of(t1, name),
      b = of(t5, name);
    if (a !== undefined) f.top1Agreement = a;
    if (b !== undefined) f.top5Agreement = b;
    return f;
  });
}

/** Roll per-output figures into the headline report. */
export function summarizeFidelity(per: OutputFidelity[], metric: HeadlineMetric, samples: number, synthetic: boolean): FidelityReport {
  const min = (xs: number[]) => xs.reduce((m, x) => Math.min(m, x), Infinity);
  const cls = per.filter((p) => p.top1Agreement !== undefined);
  const top5s = per.filter((p) => p.top5Agreement !== undefined);
  let chosen: Exclude<HeadlineMetric, 'auto'>;
  if (metric === 'auto') chosen = cls.length ? 'top1' : 'cosine';
  else chosen = metric;
  if (chosen === 'top1' && !cls.length) {
    throw new EdgefitError('USAGE', 'fidelity metric top1 needs a classifier-like output ([N, classes] scores); none found');
  }
  if (chosen === 'top5' && !top5s.length) {
    throw new EdgefitError('USAGE', 'fidelity metric top5 needs a classifier-like output with more than 5 classes; none found');
  }
  const cosine = min(per.map((p) => p.cosine));
  const value =
    chosen === 'top1'
      ? min(cls.map((p) => p.top1Agreement!))
      : chosen === 'top5'
        ? min(top5s.map((p) => p.top5Agreement!))
        : Math.max(0, cosine);
  const r: FidelityReport = {
    value,
    metric: chosen,
    cosine,
    snrDb: min(per.map((p) => p.snrDb)),
    maxAbsErr: per.reduce((m, p) => Math.max(m, p.maxAbsErr), 0),
    perOutput: per,
    samples,
    synthetic,
  };
  if (cls.length) r.top1Agreement = min(cls.map((p) => p.top1Agreement!));
  if (top5s.length) r.top5Agreement = min(top5s.map((p) => p.top5Agreement!));
  return r;
}

/** Accuracy of argmax over the first classifier-like output against integer labels. */
export function accuracy(outputs: readonly NdOutputs[], labels: readonly number[], names: readonly string[]): AccuracyReport {
  if (outputs.length !== labels.length)
    throw new EdgefitError('INTERNAL', `accuracy: ${outputs.length} outputs for ${labels.length} labels`);
  const name = names.find((n) => outputs[0]?.[n] && isClassifierLike(outputs[0][n]!));
  if (!name)
    throw new EdgefitError('DATA', 'labels given, but the model has no classifier-like output ([N, classes] scores) to compare them with');
  let correct = 0,
    total = 0;
  outputs.forEach((o, s) => {
    const a = o[name]!;
    const c = a.shape[a.shape.length - 1]!;
    const x = ndTensor(a).data;
    const rows = x.length / c;
    if (rows !== 1)
      throw new EdgefitError('DATA', `accuracy: output '${name}' has ${rows} rows per sample; labelled samples must be batch 1`);
    if (argmax(x, 0, c) === labels[s]) correct++;
    total++;
  });
  return { value: correct / total, correct, total, output: name };
}

/** Figures of one output (the first, in prune's report and benchmarks). */
export interface SingleOutputFidelity {
  samples: number;
  /** Mean over samples of the cosine (1 = identical direction). */
  cosine: number;
  /** Mean over samples of ||out - ref|| / ||ref||. */
  relL2: number;
  /** Top-1 agreement over all rows when the output is class scores; null otherwise. */
  top1Agreement: number | null;
  /** Cosine of all samples pooled (robust when some samples have near-zero outputs). */
  pooledCosine: number;
  /** For single-channel probability maps: IoU of the maps binarised at MASK_THRESHOLD; null otherwise. */
  maskIoU: number | null;
}

/** Compare one output over samples (`ref[i]` and `got[i]` from the same inputs); its kind is read from the first reference. */
export function singleOutputFidelity(ref: readonly OutputTensor[], got: readonly OutputTensor[]): SingleOutputFidelity {
  const dims = ref[0]?.dims ?? [];
  const scores = ref.length > 0 && isScoreShape(dims);
  const map = ref.length > 0 && isMaskMap(dims);
  const requests: MetricRequest[] = [
    { metric: 'cosine', over: 'mean' },
    { metric: 'relL2', over: 'mean' },
    { metric: 'cosine', over: 'pooled' },
    ...(scores ? [{ metric: 'top1', over: 'pooled' } as const] : []),
    ...(map ? [{ metric: 'maskIoU', over: 'pooled' } as const] : []),
  ];
  const one = (xs: readonly OutputTensor[]): Outputs[] => xs.map((o) => ({ y: o }));
  const [cos, rel, pooled, ...rest] = compareSamples(one(ref), one(got), requests, ['y']).results;
  return {
    samples: ref.length,
    cosine: cos!.value,
    relL2: rel!.value,
    top1Agreement: scores ? rest.shift()!.value : null,
    pooledCosine: pooled!.value,
    maskIoU: map ? rest.shift()!.value : null,
  };
}
