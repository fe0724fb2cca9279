// Float vs quantized latency on this box, for the quantize command's keep-float decision:
// both sessions in this process, runs interleaved (a, b, a, b, ...) so that a frequency step or a
// noisy neighbour hits both alike, median of each. Moved here from the quantize pass, which now
// only transforms (issue 15).
import { openSession, type Feeds } from '../runtime/runner.js';

export interface LatencyComparison {
  floatMs: number;
  quantizedMs: number;
  /** quantizedMs / floatMs: >= 1 means int8 is not faster here. */
  ratio: number;
  runs: number;
  threads: number;
  /** Per interleaved pair, b's time over a's: their spread is the run-to-run noise of the ratio. */
  pairRatios: number[];
}

export async function compareLatency(
  a: Uint8Array,
  b: Uint8Array,
  feeds: Feeds,
  runs: number,
  threads: number,
): Promise<LatencyComparison> {
  // idle threads sleep: a session's pool spinning after its run would tax the other's next run,
  // and always the same one of the pair (the order is fixed), which biases the ratio
  const sa = await openSession(a, { threads, spinning: false });
  const sb = await openSession(b, { threads, spinning: false });
  const ta: number[] = [];
  const tb: number[] = [];
  try {
    await sa.run(feeds);
    await sb.run(feeds);
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      await sa.run(feeds);
      ta.push(performance.now() - t);
      t = performance.now();
      await sb.run(feeds);
      tb.push(performance.now() - t);
    }
  } finally {
    await sa.release();
    await sb.release();
  }
  const med = (x: number[]): number => [...x].sort((p, q) => p - q)[x.length >> 1]!;
  const pairRatios = ta.map((x, i) => tb[i]! / x);
  return { floatMs: med(ta), quantizedMs: med(tb), ratio: med(tb) / med(ta), runs, threads, pairRatios };
}
