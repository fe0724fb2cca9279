// Per-layer sensitivity: quantize one layer alone, measure how much fidelity it costs on a few
// calibration samples, and rank layers from most to least costly. Sessions are built without
// onnxruntime's fusions (QDQ simulated in float): the ranking is what matters, and it is faster.
import type * as ort from 'onnxruntime-node';
import { measureFidelity } from './fidelity.js';
import type { Feeds } from './ort.js';

export async function rankSensitivity(
  keys: readonly string[],
  buildKeeping: (keepFloat: ReadonlySet<string>) => Uint8Array,
  batches: readonly Feeds[],
  reference: readonly Record<string, ort.Tensor>[],
  threads: number,
): Promise<string[]> {
  const cost = new Map<string, number>();
  for (const k of keys) {
    const others = new Set(keys.filter((x) => x !== k));
    const f = await measureFidelity(buildKeeping(others), batches, reference, 'disabled', threads);
    cost.set(k, 1 - f.mean);
  }
  return [...keys].sort((a, b) => cost.get(b)! - cost.get(a)!);
}
