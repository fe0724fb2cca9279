// Latency tables (issue 17): what a model's weight layers cost on this box as a function of the
// channel widths pruning leaves them, measured with onnxruntime at the thread count the model
// will run with (NetAdapt / HALP: prune by measured milliseconds, not by MACs). This file is the
// contract between the table builder (analyze/latency/) and its users (the prune allocation,
// the fit, the benchmark scripts); the builder owns how the figures are measured.

/** One weight layer (Conv, ConvTranspose, Gemm, MatMul with a constant weight) of the model the tables were built for. */
export interface LayerTable {
  /** The weight node's name in that model (node names survive pruning: tables apply to pruned copies). */
  node: string;
  op: string;
  /** Full widths: input channels (features) and output channels of the layer. */
  inChannels: number;
  outChannels: number;
  /** groups === inChannels === outChannels: a depthwise layer has one width (`outWidths`/`outMs` only). */
  depthwise: boolean;
  /**
   * A grouped Conv measured by kept whole groups (each `groupWidth` output channels, the input
   * following): one width, like a depthwise layer (`outWidths`/`outMs`, output channels). A cut
   * within its groups (G kept) is read as no saving: measured no faster (scripts/bench-grouped.ts).
   */
  groupWidth?: number;
  /**
   * Measured points, ascending widths, each ending at the full width: the layer's time with its
   * input narrowed to inWidths[i] (output full), and with its output narrowed to outWidths[j]
   * (input full). Empty when that side cannot change (a graph input feeding it, an unprunable group).
   */
  inWidths: number[];
  inMs: number[];
  outWidths: number[];
  outMs: number[];
  /** Time at full widths, ms (lower quartile of the runs: see measure.ts). */
  fullMs: number;
  /**
   * How the two sides combine, from one unit timed with both narrowed: 1 multiplies them (all of
   * the time is cin x cout work), 0 adds their savings (time in per-side work: the output's
   * elementwise tail, reading the input). Absent: 1.
   */
  interaction?: number;
}

/** Evidence for the channel block the CPU's kernels prefer: time per width around block multiples. */
export interface BlockEvidence {
  /** What was timed, e.g. "Conv 3x3 64->w at 1x64x80x80". */
  layer: string;
  widths: number[];
  ms: number[];
}

export interface TableKey {
  /** sha256 of the model bytes the tables were built from. */
  model: string;
  /** This box's identity (CPU model and features, onnxruntime version). */
  hardware: string;
  threads: number;
  /** The input shapes the layers were measured at. */
  shapes: Record<string, number[]>;
}

export interface LatencyTables {
  version: 1;
  key: TableKey;
  /** Channel block the kernels prefer on this box (e.g. 16 with AVX-512, 8 with AVX2): discovered, used by `--round auto`. */
  block: number;
  /** How `block` was found: 'measured' from `blockEvidence`, or 'cpu' from the CPU features when the probe was inconclusive. */
  blockSource: 'measured' | 'cpu';
  blockEvidence: BlockEvidence[];
  layers: LayerTable[];
  /** Whole-model latency at build time, ms (lower quartile, as the layers): predictions are anchored to it. */
  modelMs: number;
  /** Wall time it took to build the tables, ms. */
  buildMs: number;
  /**
   * Whole-model probes (evaluate/latency-probes.ts): uniformly pruned copies timed side by side
   * with the model, each as (the tables' predicted ratio, the measured ratio). Isolated layers
   * miss what a whole pruned model gains or loses (smaller activations staying in cache,
   * reorders between layers), so predictions are mapped through these measured points.
   */
  probes?: { predicted: number; measured: number }[];
}
