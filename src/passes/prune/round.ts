// Kept widths as multiples of the channel block the CPU's kernels prefer (issue 17): widths off
// the block fall off onnxruntime's NCHWc fast path, so a pruned MobileNetV2 at --round 1 ran 2.2x
// SLOWER than its original and 0.72x at --round 8. 'auto' is the block the latency tables measured,
// or, without tables, the block of this CPU's features (analyze/latency/cpu-block.ts, the one rule).
import { readFileSync } from 'node:fs';
import { EdgefitError } from '../../errors.js';
import { blockForCpu } from '../../analyze/latency/cpu-block.js';
import type { LatencyTables } from '../../analyze/latency/types.js';
import { parseCpuInfo } from '../../profile/cpuinfo.js';

export type Round = number | 'auto';

/** The block of this box's CPU (1 when /proc/cpuinfo cannot be read: no rounding rather than a guess). */
export function thisCpuBlock(): number {
  let text: string;
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return 1;
  }
  return blockForCpu(parseCpuInfo(text).features);
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
