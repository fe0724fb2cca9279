// Kept widths as multiples of the channel block the CPU's kernels prefer (issue 17): widths off
// the block fall off onnxruntime's NCHWc fast path, so a pruned MobileNetV2 at --round 1 ran 2.2x
// SLOWER than its original and 0.72x at --round 8. 'auto' is the block the latency tables measured,
// or, without tables, the block of this CPU's features (analyze/latency/hardware.ts blockFromCpu:
// the one rule, which the table builder falls back to as well).
import { EdgefitError } from '../../errors.js';
import { blockFromCpu, cpuFacts } from '../../analyze/latency/hardware.js';
import type { LatencyTables } from '../../analyze/latency/types.js';

export type Round = number | 'auto';

/** The block of this box's CPU. */
export function thisCpuBlock(): number {
  return blockFromCpu(cpuFacts());
}

/** A --round value: a positive integer or 'auto'; a clear error otherwise. */
export function parseRound(v: unknown): Round {
  if (v === 'auto') return 'auto';
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1)
    throw new EdgefitError('USAGE', `channel rounding must be a positive integer or 'auto', got ${String(v)}`, {
      remedy: { option: 'round' },
    });
  return n;
}

/** The multiple kept widths are rounded to: an integer as given, 'auto' from the tables or the CPU. */
export function resolveRound(round: Round, tables?: Pick<LatencyTables, 'block'>, cpuBlock: () => number = thisCpuBlock): number {
  const r = parseRound(round);
  if (r !== 'auto') return r;
  return tables ? tables.block : cpuBlock();
}
