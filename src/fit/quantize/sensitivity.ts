// Sensitivity: which parts of the int8 model cost the most fidelity, so the --min-fidelity
// fallback can hand back the fewest of them to float.
//
// Two kinds of unit can go back to float:
//  - a node ('node:' keys): its weights and its own arithmetic stay float (a weighted Conv/MatMul
//    whose weight rounding hurts);
//  - an activation tensor ('tensor:' keys): its Q/DQ pair goes, so its rounding goes with it. A
//    node kept float still reads and writes rounded tensors; on PP-OCR rec the activation rounding
//    is most of the loss and it is spread over many tensors, none of which a node fallback removes.
// Two rankings, both measured with the real int8 kernels on a few samples by a smooth loss
// (1 - cosine, or the per-position KL for argmax agreement), not the metric itself: argmax
// agreement moves in whole flipped steps and ties across most units.
//  - 'alone' (default): the loss of the model where only this unit is int8 (every other unit
//    float). Errors of neighbouring units compound: on PP-OCRv4 det the first block's dozen
//    activations hold ~90% of the single-unit losses, yet keeping any one of them float gains
//    little while its neighbours stay int8. Ranked alone, keeping 16 activations float reached
//    held-out cosine 0.980 with every weight int8 (scripts/diag-acts.ts);
//  - 'leave-out': what keeping the unit alone in float gains over the all-int8 model. On det
//    with a 0.98 floor it handed back 32 neck and head convs instead (file 0.675x, cosine 0.980).
// (The units and FloatSet are the pass's plan vocabulary: src/passes/quantize/plan.ts.)
import type * as ort from 'onnxruntime-node';
import { measureFidelity, type QuantJudge } from './fidelity.js';
import type { Feeds, OptLevel } from '../../runtime/runner.js';
import { floatSet, type FloatSet } from '../../passes/quantize/plan.js';

export { floatSet, nodeUnit, tensorUnit, type FloatSet } from '../../passes/quantize/plan.js';

export interface RankOptions {
  threads: number;
  metric?: QuantJudge;
  /** Optimisation level of the probe sessions; 'all' runs the real int8 kernels (and is faster here than simulated QDQ). */
  level?: OptLevel;
  /**
   * Most probe sessions to build (default 64). With more units than that, contiguous chunks of
   * units (graph order) are probed first, and the units of the most sensitive chunks one by one
   * with what is left: PP-OCR rec has ~260 units at ~1-2 s a probe.
   */
  maxProbes?: number;
  /** Called after each probe (progress for long searches). */
  onProbe?: (done: number, total: number) => void;
  /** How a unit's sensitivity is measured (see the top of this file). */
  rank?: SensitivityRank;
}

export const SENSITIVITY_RANKS = ['alone', 'leave-out'] as const;
export type SensitivityRank = (typeof SENSITIVITY_RANKS)[number];

export interface Ranked {
  unit: string;
  /**
   * What keeping the unit float is worth (larger = more sensitive): 'alone', the loss of the model
   * with only this unit int8 over the all-float one; 'leave-out', the loss of the all-int8 model
   * over the one with only this unit float.
   */
  gain: number;
}

export async function rankSensitivity(
  units: readonly string[],
  buildKeeping: (float: FloatSet) => Uint8Array,
  batches: readonly Feeds[],
  reference: readonly Record<string, ort.Tensor>[],
  o: RankOptions,
): Promise<Ranked[]> {
  const level = o.level ?? 'all';
  const metric = o.metric ?? 'cosine';
  const budget = Math.max(2, o.maxProbes ?? 64);
  const alone = (o.rank ?? 'alone') === 'alone';
  const base = await measureFidelity(buildKeeping(floatSet(alone ? units : [])), batches, reference, level, o.threads, metric);
  let done = 0;
  const chunks = units.length > budget ? Math.max(2, Math.min(Math.ceil(budget / 4), Math.ceil(units.length / 2))) : 0;
  const total = units.length > budget ? budget : units.length;
  const gainOf = async (us: readonly string[]): Promise<number> => {
    const these = new Set(us);
    const f = await measureFidelity(
      buildKeeping(floatSet(alone ? units.filter((u) => !these.has(u)) : us)),
      batches,
      reference,
      level,
      o.threads,
      metric,
    );
    o.onProbe?.(++done, total);
    return alone ? f.loss - base.loss : base.loss - f.loss;
  };
  const probed = new Map<string, number>();
  /** Estimated gain of units not probed alone: their chunk's gain shared out. */
  const estimate = new Map<string, number>();
  let queue: string[] = [...units];
  if (chunks) {
    const size = Math.ceil(units.length / chunks);
    const parts: { us: string[]; gain: number }[] = [];
    for (let i = 0; i < units.length; i += size) {
      const us = units.slice(i, i + size);
      parts.push({ us, gain: await gainOf(us) });
    }
    parts.sort((a, b) => b.gain - a.gain);
    for (const p of parts) for (const u of p.us) estimate.set(u, p.gain / p.us.length);
    queue = parts.flatMap((p) => p.us).slice(0, budget - parts.length);
  }
  for (const u of queue) probed.set(u, await gainOf([u]));
  const rows = units.map((unit, i) => ({ unit, i, alone: probed.has(unit), gain: probed.get(unit) ?? estimate.get(unit) ?? 0 }));
  // units probed alone first (their gain is measured), then the rest by their chunk's estimate;
  // equal gains keep graph order
  rows.sort((a, b) => Number(b.alone) - Number(a.alone) || b.gain - a.gain || a.i - b.i);
  return rows.map((r) => ({ unit: r.unit, gain: r.gain }));
}
