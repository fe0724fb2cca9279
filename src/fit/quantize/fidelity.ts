// Fidelity of a quantized model against the float one, on the same inputs, worst output per
// sample, averaged over samples; the minimum is kept too. Two metrics:
//  - cosine: the cosine of each output (flattened). Right for maps and embeddings.
//  - argmax: the share of positions whose argmax over the last axis (the class axis) is the same
//    as the float model's. Right for sequence recognisers (PP-OCR rec: [1, T, classes], decoded by
//    a per-step argmax), where a cosine of 0.99 can still hide flipped characters.
// Besides the metric, `loss` is a smooth divergence used to rank layers: argmax agreement moves in
// whole steps and ties between candidates that each flip nothing, the KL divergence does not.
// A measurement the decision layer judges plans by; the quantize pass never runs it (issue 15).
import type * as ort from 'onnxruntime-node';
import type { Model } from '../../ir/model.js';
import { FidelityAccumulator, type MetricName, type Outputs } from '../../fidelity/index.js';
import { openSession, type Feeds, type OptLevel } from '../../runtime/runner.js';
import type { Fidelity, FidelityMetric } from '../../passes/quantize/index.js';

export { FIDELITY_METRICS, type Fidelity, type FidelityMetric } from '../../passes/quantize/index.js';

/** Each metric as src/fidelity names it: the figure (per sample, worst output) and the ranking loss. */
const QUANT_METRICS = {
  cosine: { figure: 'cosine', loss: null },
  argmax: { figure: 'top1', loss: 'kl' },
} as const satisfies Record<FidelityMetric, { figure: MetricName; loss: MetricName | null }>;

export async function measureFidelity(
  candidate: Model | Uint8Array,
  batches: readonly Feeds[],
  reference: readonly Record<string, ort.Tensor>[],
  level: OptLevel = 'all',
  threads = 2,
  metric: FidelityMetric = 'cosine',
): Promise<Fidelity> {
  const s = await openSession(candidate, { level, threads });
  const m = QUANT_METRICS[metric];
  const acc = new FidelityAccumulator([{ metric: m.figure, over: 'mean' }, ...(m.loss ? [{ metric: m.loss, over: 'mean' } as const] : [])]);
  const tensors = (r: Record<string, ort.Tensor>): Outputs =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { dims: v.dims, data: v.data as Float32Array }]));
  try {
    for (let i = 0; i < batches.length; i++) {
      const ref = reference[i]!;
      const res = await s.run(batches[i]!);
      // (an output the candidate lacks is the accumulator's EVAL error, not a TypeError here)
      acc.add(
        tensors(ref),
        tensors(
          Object.fromEntries(
            Object.keys(ref)
              .filter((k) => res[k])
              .map((k) => [k, res[k] as ort.Tensor]),
          ),
        ),
      );
    }
  } finally {
    await s.release();
  }
  const [fig, kl] = acc.result().results;
  const perSample = fig!.perSample;
  // the loss of cosine is 1 - cosine of each sample's worst output
  const loss = kl ? kl.value : perSample.reduce((x, c) => x + (1 - c), 0) / perSample.length;
  return { metric, mean: fig!.value, min: perSample.reduce((x, v) => Math.min(x, v), 1), samples: batches.length, loss };
}

/** The float model's outputs on each batch: the reference a candidate is judged against. */
export async function floatOutputs(floatBytes: Uint8Array, batches: readonly Feeds[], threads = 2): Promise<Record<string, ort.Tensor>[]> {
  const out: Record<string, ort.Tensor>[] = [];
  const s = await openSession(floatBytes, { threads });
  try {
    for (const f of batches) out.push((await s.run(f)) as Record<string, ort.Tensor>);
  } finally {
    await s.release();
  }
  return out;
}
