// Fidelity of a quantized model against the float one, on the same inputs, worst output per
// sample, averaged over samples; the minimum is kept too. Two metrics:
//  - cosine: the cosine of each output (flattened). Right for maps and embeddings.
//  - argmax: the share of positions whose argmax over the last axis (the class axis) is the same
//    as the float model's. Right for sequence recognisers (PP-OCR rec: [1, T, classes], decoded by
//    a per-step argmax), where a cosine of 0.99 can still hide flipped characters.
// Besides the metric, `loss` is a smooth divergence used to rank layers: argmax agreement moves in
// whole steps and ties between candidates that each flip nothing, the KL divergence does not.
import type * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import type { Model } from '../../ir/model.js';
import { openSession, type Feeds, type OptLevel } from '../../runtime/runner.js';

export const FIDELITY_METRICS = ['cosine', 'argmax'] as const;
export type FidelityMetric = (typeof FIDELITY_METRICS)[number];

export interface Fidelity {
  metric: FidelityMetric;
  mean: number;
  min: number;
  samples: number;
  /** Mean over samples of the ranking loss (1 - cosine, or KL per position for argmax). */
  loss: number;
}

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

function argmaxAt(a: ArrayLike<number>, off: number, n: number): number {
  let b = 0;
  for (let c = 1; c < n; c++) if (a[off + c]! > a[off + b]!) b = c;
  return b;
}

/**
 * Share of positions (all axes but the last) whose argmax over the last axis agrees. The first
 * maximum wins ties, on both sides alike.
 */
export function argmaxAgreement(ref: ArrayLike<number>, got: ArrayLike<number>, classes: number): { agree: number; positions: number } {
  if (!(classes > 0) || ref.length % classes !== 0 || got.length !== ref.length) {
    throw new EdgefitError('INTERNAL', `argmax agreement: ${ref.length} and ${got.length} values do not split into rows of ${classes}`);
  }
  let agree = 0;
  const positions = ref.length / classes;
  for (let p = 0; p < positions; p++) if (argmaxAt(ref, p * classes, classes) === argmaxAt(got, p * classes, classes)) agree++;
  return { agree, positions };
}

/** Row as a distribution: used as is when it already is one (a Softmax output), else softmaxed. */
function distribution(a: ArrayLike<number>, off: number, n: number, out: Float64Array): void {
  let sum = 0;
  let neg = false;
  for (let c = 0; c < n; c++) {
    const v = a[off + c]!;
    if (v < 0) neg = true;
    sum += v;
  }
  if (!neg && Math.abs(sum - 1) < 1e-3) {
    for (let c = 0; c < n; c++) out[c] = a[off + c]! / sum;
    return;
  }
  let m = -Infinity;
  for (let c = 0; c < n; c++) m = Math.max(m, a[off + c]!);
  let z = 0;
  for (let c = 0; c < n; c++) z += out[c] = Math.exp(a[off + c]! - m);
  for (let c = 0; c < n; c++) out[c]! /= z;
}

/** Mean over positions of KL(ref || got), each row over the last axis taken as a distribution. */
export function meanKl(ref: ArrayLike<number>, got: ArrayLike<number>, classes: number): number {
  const positions = ref.length / classes;
  const p = new Float64Array(classes);
  const q = new Float64Array(classes);
  let kl = 0;
  for (let r = 0; r < positions; r++) {
    distribution(ref, r * classes, classes, p);
    distribution(got, r * classes, classes, q);
    for (let c = 0; c < classes; c++) if (p[c]! > 0) kl += p[c]! * Math.log(p[c]! / Math.max(q[c]!, 1e-12));
  }
  return positions ? kl / positions : 0;
}

/** Fidelity and ranking loss of one output, for the metric. */
export function compareOutput(ref: ort.Tensor, got: ort.Tensor, metric: FidelityMetric): { value: number; loss: number } {
  const a = ref.data as Float32Array;
  const b = got.data as Float32Array;
  if (metric === 'cosine') {
    const c = cosine(a, b);
    return { value: c, loss: 1 - c };
  }
  const classes = ref.dims[ref.dims.length - 1] ?? 1;
  const { agree, positions } = argmaxAgreement(a, b, classes);
  return { value: positions ? agree / positions : 1, loss: meanKl(a, b, classes) };
}

export async function measureFidelity(
  candidate: Model | Uint8Array,
  batches: readonly Feeds[],
  reference: readonly Record<string, ort.Tensor>[],
  level: OptLevel = 'all',
  threads = 2,
  metric: FidelityMetric = 'cosine',
): Promise<Fidelity> {
  const s = await openSession(candidate, { level, threads });
  let sum = 0;
  let min = 1;
  let loss = 0;
  try {
    for (let i = 0; i < batches.length; i++) {
      const res = await s.run(batches[i]!);
      let worst = 1;
      let l = 0;
      for (const [name, ref] of Object.entries(reference[i]!)) {
        const r = compareOutput(ref, res[name] as ort.Tensor, metric);
        worst = Math.min(worst, r.value);
        l = Math.max(l, r.loss);
      }
      sum += worst;
      loss += l;
      min = Math.min(min, worst);
    }
  } finally {
    await s.release();
  }
  return { metric, mean: sum / batches.length, min, samples: batches.length, loss: loss / batches.length };
}
