// The evaluation contract. The CLI, the fitter, the pruner, the quantizer and the agent code
// against these types; src/evaluate/index.ts implements them.
import type { InputSet } from '../data/inputs.js';

/** Session options passed to onnxruntime-node's InferenceSession.create in the child. */
export interface SessionOptions {
  /** Intra-op threads (default 1: predictable on a shared box; the fitter sets what it will deploy). */
  intraOpThreads: number;
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  enableCpuMemArena: boolean;
  enableMemPattern: boolean;
}

export const DEFAULT_SESSION: SessionOptions = {
  intraOpThreads: 1,
  graphOptimizationLevel: 'all',
  enableCpuMemArena: true,
  enableMemPattern: true,
};

/** Guards around the child process. */
export interface EvalLimits {
  /** Whole-job wall-clock limit; the child is SIGKILLed past it (default 300000). */
  timeoutMs: number;
  /** Child RSS cap in MiB, polled from /proc/<pid>/status; killed when over (default: none). */
  rssCapMb?: number;
}

export const FIDELITY_METRICS = ['auto', 'cosine', 'top1', 'top5'] as const;
/** auto = top-1 agreement when an output looks like class scores, cosine otherwise. */
export type FidelityMetric = (typeof FIDELITY_METRICS)[number];

export interface EvalRequest {
  /** The model to measure: a file path, or the ONNX bytes (e.g. a candidate not yet written). */
  model: string | Uint8Array;
  /** Reference model for fidelity (normally the original): same runtime outputs required. */
  reference?: string | Uint8Array;
  /** Data path (see loadInputSet) or an already loaded InputSet; absent = seeded synthetic. */
  data?: string | InputSet;
  /** Values for dynamic input dims, per input name. */
  shapes?: Map<string, number[]>;
  /** Shorthand for session.intraOpThreads. */
  threads?: number;
  session?: Partial<SessionOptions>;
  /** Warm-up runs before timing (default 3). */
  warmup?: number;
  /** Timed runs (default 20); stops early once maxMs of timed runs have elapsed (after >= 1 run). */
  runs?: number;
  maxMs?: number;
  limits?: Partial<EvalLimits>;
  fidelityMetric?: FidelityMetric;
  /** Use at most this many samples of the data (fidelity/accuracy pass). */
  limit?: number;
  /** Samples the timing loop cycles through (default 8, fewer if the data has fewer). */
  timingSamples?: number;
  /** Synthetic data: sample count (default 4) and seed (default 1). */
  syntheticCount?: number;
  seed?: number;
  /** Measure the bare-runtime baseline to report modelRssMb (default true; cached per process). */
  baseline?: boolean;
}

export interface LatencyStats {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  /** Coefficient of variation: stdev / mean of the timed runs. */
  cv: number;
  min: number;
  max: number;
  runs: number;
}

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
  metric: Exclude<FidelityMetric, 'auto'>;
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

export interface EvalReport {
  /** Model path, or '<bytes>'. */
  model: string;
  reference?: string;
  /** 'synthetic' or the data path. */
  inputs: string;
  synthetic: boolean;
  samples: number;
  session: SessionOptions;
  latencyMs: LatencyStats;
  /** InferenceSession.create wall time in the child. */
  loadMs: number;
  /** Child VmHWM after load, warm-up and timed runs. */
  peakRssMb: number;
  /** Same figure for the bare runtime on a trivial model, same threads (undefined if skipped). */
  baselineRssMb?: number;
  /**
   * peakRssMb - baselineRssMb: what RAM budgets compare against. Includes the session's
   * weights, arena and the timing samples' input/output tensors (a deployment holds those too).
   */
  modelRssMb?: number;
  fidelity?: FidelityReport;
  accuracy?: AccuracyReport;
}
