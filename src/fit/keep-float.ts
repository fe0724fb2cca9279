// The keep-float decision of `edgefit quantize`: int8 that is not faster than float on this box
// is not worth its fidelity loss, so the float model is the better deployment. A decision, so it
// lives here and not in the quantize pass, which transforms and reports (issue 15).
import { compareLatency } from '../evaluate/interleaved.js';
import type { Feeds } from '../runtime/runner.js';
import type { QuantizeReport } from '../passes/quantize/index.js';
import { ms } from '../util/format.js';

export interface KeepFloatOptions {
  /** Interleaved timing runs per model (default 7; 0 = do not measure, keep the pass's report). */
  runs?: number;
  threads?: number;
}

/**
 * Time the float and the quantized model on `feeds` and fill the report's latency, decision and
 * note. Size-only modes (fp16, weights) and runs without data keep the pass's report as it is.
 */
export async function decideKeepFloat(
  report: QuantizeReport,
  models: { floatBytes: Uint8Array; bytes: Uint8Array },
  feeds: Feeds | undefined,
  o: KeepFloatOptions = {},
): Promise<QuantizeReport> {
  const runs = o.runs ?? 7;
  if (report.decision === 'size-only' || !feeds || runs === 0) return report;
  const latency = await compareLatency(models.floatBytes, models.bytes, feeds, runs, o.threads ?? 2);
  if (latency.ratio >= 1) {
    const times = `${ms(latency.quantizedMs)} ms vs ${ms(latency.floatMs)} ms, ${report.platform.feature}`;
    const note = `int8 is not faster than float on this box (${times}): keep the float model`;
    return { ...report, latency, decision: 'kept-float', note };
  }
  return { ...report, latency, decision: 'quantized', note: `int8 runs at ${latency.ratio.toFixed(2)}x the float latency here` };
}
