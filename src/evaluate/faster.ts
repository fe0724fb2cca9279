// "Is it faster?" (issue 17): a pruned model is timed against its input side by side in one
// process (interleaved runs, medians: compareLatency) before the command hands it back, and a
// plain verdict says whether it is faster by more than the noise of that very comparison.
import { compareLatency } from './interleaved.js';
import { percentile } from './stats.js';
import { toFeeds } from '../runtime/runner.js';
import type { Sample } from '../data/inputs.js';

export interface SpeedCheck {
  inputMs: number;
  outputMs: number;
  /** outputMs / inputMs (medians of interleaved runs). */
  ratio: number;
  /** What the latency tables predicted for the output over the input (when they were used): a ratio,
   * because the tables' milliseconds are the box as it was when they were measured (cached). */
  predictedRatio?: number;
  /** The ratio must be below 1 - margin to count as faster. */
  margin: number;
  faster: boolean;
  runs: number;
  threads: number;
}

/** Below this the margin never goes: a 1-2 % gain is within what a frequency step or a cache can do between runs. */
export const MIN_MARGIN = 0.02;

/**
 * The margin from the run-to-run spread of the interleaved pairs: the per-pair ratios' standard
 * error of the median (~1.2533 sigma / sqrt(n), sigma estimated robustly as IQR / 1.349), doubled
 * (about a 95 % one-sided bound), and never under MIN_MARGIN. Pairs, not the two medians' spreads,
 * because a noisy neighbour slows both runs of a pair alike and cancels in their ratio.
 */
export function marginFromPairs(pairRatios: readonly number[]): number {
  const n = pairRatios.length;
  if (n < 3) return 0.1; // too few pairs to know the noise: ask for a clear 10 %
  const s = [...pairRatios].sort((a, b) => a - b);
  const sigma = (percentile(s, 0.75) - percentile(s, 0.25)) / 1.349;
  return Math.max(MIN_MARGIN, (2 * 1.2533 * sigma) / Math.sqrt(n));
}

/** The decision rule, on timings alone: faster only when the ratio is below 1 by more than the margin. */
export function fasterVerdict(t: { inputMs: number; outputMs: number; pairRatios: readonly number[] }): {
  ratio: number;
  margin: number;
  faster: boolean;
} {
  const ratio = t.outputMs / t.inputMs;
  const margin = marginFromPairs(t.pairRatios);
  return { ratio, margin, faster: ratio < 1 - margin };
}

/** Time `output` against `input` (model bytes) on the first sample, interleaved, and judge. */
export async function checkFaster(
  input: Uint8Array,
  output: Uint8Array,
  sample: Sample,
  o: { threads: number; runs?: number; predictedRatio?: number },
): Promise<SpeedCheck> {
  const runs = o.runs ?? 15;
  const c = await compareLatency(input, output, toFeeds(sample), runs, o.threads);
  const v = fasterVerdict({ inputMs: c.floatMs, outputMs: c.quantizedMs, pairRatios: c.pairRatios });
  return {
    inputMs: c.floatMs,
    outputMs: c.quantizedMs,
    ...v,
    ...(o.predictedRatio !== undefined ? { predictedRatio: o.predictedRatio } : {}),
    runs,
    threads: o.threads,
  };
}

/** One plain line for the command's output. */
export function describeSpeed(s: SpeedCheck): string {
  const noise = `noise margin ${(s.margin * 100).toFixed(1)}%, ${s.threads} threads, median of ${s.runs} interleaved runs`;
  const fig = `${s.outputMs.toFixed(2)} ms vs the original's ${s.inputMs.toFixed(2)} ms (${s.ratio.toFixed(2)}x, ${noise})`;
  const pred = s.predictedRatio !== undefined ? `; the tables predicted ${s.predictedRatio.toFixed(2)}x` : '';
  return s.faster ? `faster: ${fig}${pred}` : `not faster: ${fig}${pred}: keep the original`;
}
