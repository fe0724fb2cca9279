// The evaluation contract. The CLI, the fitter, the pruner, the quantizer and the agent code
// against these types; src/evaluate/index.ts implements them.
import type { InputSet } from '../data/inputs.js';
import type { Task } from '../fidelity/tasks.js';
import type { AccuracyReport, FidelityReport, HeadlineMetric as FidelityMetric } from '../fidelity/report.js';

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

// (the fidelity figures are defined once, in src/fidelity; eval's contract names them here)
export { HEADLINE_METRICS as FIDELITY_METRICS, type HeadlineMetric as FidelityMetric } from '../fidelity/report.js';
export type { AccuracyReport, FidelityReport, OutputFidelity } from '../fidelity/report.js';

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
  /**
   * What the model is for, which decides the fidelity headline (issue 16): box F1 for text-det,
   * text agreement for ctc ... Default 'auto': detected from the reference's graph and outputs.
   */
  task?: Task | 'auto';
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
