// Fidelity of a quantized model against the float one, on the same inputs: the cosine of each
// output (flattened), worst output per sample, averaged over samples; the minimum is kept too.
import type * as ort from 'onnxruntime-node';
import type { Model } from '../../ir/model.js';
import { openSession, type Feeds, type OptLevel } from './ort.js';

export interface Fidelity { metric: 'cosine'; mean: number; min: number; samples: number }

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let x = 0;
  let y = 0;
  for (let i = 0; i < a.length; i++) {
    const p = a[i]!;
    const q = b[i]!;
    d += p * q;
    x += p * p;
    y += q * q;
  }
  if (x === 0 && y === 0) return 1;
  if (x === 0 || y === 0) return 0;
  return d / Math.sqrt(x * y);
}

export async function measureFidelity(candidate: Model | Uint8Array, batches: readonly Feeds[], reference: readonly Record<string, ort.Tensor>[], level: OptLevel = 'all', threads = 2): Promise<Fidelity> {
  const s = await openSession(candidate, { level, threads });
  let sum = 0;
  let min = 1;
  try {
    for (let i = 0; i < batches.length; i++) {
      const res = await s.run(batches[i]!);
      let worst = 1;
      for (const [name, ref] of Object.entries(reference[i]!)) {
        const got = res[name] as ort.Tensor;
        worst = Math.min(worst, cosine(ref.data as Float32Array, got.data as Float32Array));
      }
      sum += worst;
      min = Math.min(min, worst);
    }
  } finally {
    await s.release();
  }
  return { metric: 'cosine', mean: sum / batches.length, min, samples: batches.length };
}
