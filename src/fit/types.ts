// The contract between the agent (caller) and the fitter (src/fit/index.ts, `fitModel`).
// The agent only ever sees these types: it stores FitResults, deploys FrontierEntries and
// steps along the frontier at run time without a new search.

import type { Budgets, Shortfall } from '../budgets/index.js';
import type { Task } from '../fidelity/tasks.js';
import type { Judged } from '../fidelity/task-compare.js';

// Budgets are defined once, in src/budgets; the fitter's contract takes them as they are.
export type { Budgets } from '../budgets/index.js';

export interface FitRequest {
  /** Absolute path of the ONNX model to fit. */
  modelPath: string;
  /** Static shapes for the runtime inputs (name -> dims). */
  shapes: Record<string, number[]>;
  budgets: Budgets;
  /** Hardware profile name picked by src/profile (e.g. 'rpi5'), or 'generic'. */
  profile: string;
  /** Folder or file with calibration inputs; absent = seeded synthetic inputs (figures flagged). */
  calibDataPath?: string;
  /** Folder where candidate models are written. */
  outputDir: string;
  /** Threads the measurement may use. */
  threads?: number;
  /** What the model is for, which decides the fidelity metric (absent: detected from the model). */
  task?: Task;
  /** Inputs fidelity is judged on, disjoint from the calibration data (absent: a split of it). */
  judgeDataPath?: string;
  /** 'fidelity' (default): never choose below the fidelity floor. 'latency': the user trades it knowingly. */
  prefer?: 'fidelity' | 'latency';
  /** Minutes the fit may train one candidate (distillation / quantization-aware training); 0 or absent: none. */
  trainMinutes?: number;
  /** Peak RAM of that training, MB (TrainSpec.ramMb; absent: the trainer's default). */
  trainRamMb?: number;
  /** The candidate to train (the agent's: the one its first fit deployed); absent or untrainable: the search's own pick. */
  trainFrom?: CandidateConfig;
}

export const COMPRESSION_LEVELS = ['none', 'structured', 'unstructured', 'quant'] as const;

export interface CandidateConfig {
  /** Structured pruning (0 = none): the fraction of channels removed from every group, or with
   * structuredBy 'macs' the fraction of MACs removed, spread over the groups by their measured
   * sensitivity (the least sensitive lose the most), or with 'latency' the fraction of the
   * original's latency removed as the latency tables predict it (widths from the latency knapsack,
   * cuts weighed by the measured sensitivity). */
  structured: number;
  /** Absent = 'channels' (uniform). */
  structuredBy?: 'channels' | 'macs' | 'latency';
  /** Fraction of weights zeroed by unstructured pruning (0 = none). */
  unstructured: number;
  /** Quantization scheme, 'none' for float. */
  quant: 'none' | 'int8-dynamic' | 'int8-static' | 'fp16';
  threads: number;
  /** The original with only its exact folds (passes/cleanup/fold.ts: a conv's constant affine
   * into its weights, a written-out HardSwish or LayerNorm made one op ...): float, unpruned, the
   * same outputs within float rounding. Only with structured 0, unstructured 0 and quant 'none';
   * absent there, the config is the reference, the file as shipped, which relative budgets are
   * fractions of. (Every pruned or quantized candidate is folded too: the flag names the one that
   * is folded and nothing else.) */
  folded?: true;
  /** Minutes of training on this box after pruning / for int8 (absent or 0: none): float
   * candidates are distilled from the original, int8 ones trained quantization-aware. */
  train?: number;
}

/** What training on the box did to a candidate (issue 18), kept with it for the dashboard and report. */
export interface TrainingSummary {
  /** 'distill': a pruned float model trained against the original; 'qat': int8, quantization-aware. */
  kind: 'distill' | 'qat';
  /** The budget given, and what was used. */
  minutes: number;
  seconds: number;
  steps: number;
  /** Held-out distillation loss before and after (the input's when training did not help). */
  heldOutBefore: number;
  heldOutAfter: number;
  improved: boolean;
  /**
   * The task's held-out score (the fit's metric) before training and of the weights kept: it picked
   * them, its finer figure (text-det: mask IoU) deciding among ties.
   */
  judged?: Judged;
  /** The stem left frozen while the rest trained (freeze.ts): how many layers, and the stride
   * before which they lie; absent when every layer trained. */
  frozen?: { layers: number; stride: number };
  /** The loss curve, thinned to at most 60 points (score: the task's held-out score where held-out was measured). */
  curve: { step: number; loss: number; heldOut?: number; score?: number }[];
}

export interface FrontierEntry {
  id: string;
  config: CandidateConfig;
  /** Where the fitter wrote the candidate (inside FitRequest.outputDir). */
  modelPath: string;
  sha256: string;
  sizeBytes: number;
  /** gzip size of the model file (what unstructured sparsity shrinks). */
  compressedBytes?: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  modelRssMb: number;
  /** In [0, 1]; 1 for the reference itself. */
  fidelity: number;
  /** Relative budgets: the original's p50 timed beside this candidate (load drift correction). */
  referenceP50Ms?: number;
  /** Interleaved original-then-candidate timing rounds (each the p50 of a few runs): latencyP50Ms
   * is the median of the candidate's, referenceP50Ms the median of the original's. */
  rounds?: LatencyRound[];
  /** Candidate / original p50 timed in the same rounds: the median, and the spread (min, max). A
   * relative budget is judged on the median. */
  latencyRatio?: number;
  latencyRatioMin?: number;
  latencyRatioMax?: number;
  meets: { latency: boolean; ram: boolean; fidelity: boolean; size?: boolean };
  /** Present when the candidate was trained on this box (config.train). */
  training?: TrainingSummary;
  /** sha256 of the model without its metadata (the passes' reports): two configs that build the
   * same graph and weights share it, as two latency targets whose widths round alike do. */
  contentSha?: string;
  /** The candidate that built the same model at the same threads (contentSha): its figures are
   * that one's, measured once; it is kept off the frontier and never chosen. */
  sameAs?: string;
}

/** One round of side-by-side timing: the original, then the candidate, a few runs each. */
export interface LatencyRound {
  referenceP50Ms: number;
  candidateP50Ms: number;
  candidateP95Ms?: number;
}

export interface FitResult {
  /** Id of the chosen entry: the best one meeting every budget, else the best one meeting the
   * fidelity floor (smallest latency/RAM/size miss; the original at worst), or with prefer
   * 'latency' the closest by latency/RAM/size whatever its fidelity. */
  chosenId: string;
  /** Pareto frontier sorted from the largest/slowest (index 0) to the smallest/fastest; only
   * entries meeting the fidelity floor (unless the request preferred latency), so run-time
   * step-down along it cannot go below the floor. */
  frontier: FrontierEntry[];
  referenceLatencyP50Ms: number;
  /** Present when no candidate meets every budget: by how much the chosen one misses. */
  shortfall?: Shortfall;
  /** Which implementation produced this (e.g. 'fitModel', 'reference-only'). */
  fitter: string;
  /** The task fidelity was judged for, and its metric's name (e.g. 'text-det', 'boxF1'). */
  task?: Task;
  fidelityMetric?: string;
  /** Candidates answered from the fit folder's cache instead of built and measured again (a re-fit, a resumed fit). */
  cacheHits?: number;
  /** Every candidate this fit trained on the box, chosen or not (a training that did not win is
   * still something the user should see: what ran, for how long, what it scored). */
  trained?: TrainedCandidate[];
}

/** A candidate the fit trained: its id, what it measured, and the training's record (curve left out). */
export interface TrainedCandidate {
  id: string;
  fidelity: number;
  latencyP50Ms: number;
  training: Omit<TrainingSummary, 'curve'>;
}

/** The trained candidates among a fit's measured ones, curves dropped (they stay in the fit folder). */
export function trainedCandidates(measured: readonly FrontierEntry[]): TrainedCandidate[] {
  return measured
    .filter((e) => e.config.train && e.training)
    .map((e) => {
      const { curve: _c, ...training } = e.training!;
      return { id: e.id, fidelity: e.fidelity, latencyP50Ms: e.latencyP50Ms, training };
    });
}

export interface FitProgress {
  /** 0..1 */
  fraction: number;
  stage: string;
  message?: string;
  /** Estimated seconds left: the mean cost of the measurements so far times the steps still planned. */
  etaS?: number;
  /** Stage 'training': this step's batch loss and the latest held-out loss with its step (a live loss curve). */
  train?: TrainPoint;
}

/** One point of a running training's loss curve, as progress reports it. */
export interface TrainPoint {
  step: number;
  loss: number;
  /** The latest held-out loss measured so far, at its own step (measured every few hundred steps). */
  heldOut?: { step: number; loss: number };
}

export type Fitter = (req: FitRequest, onProgress: (p: FitProgress) => void) => Promise<FitResult>;
