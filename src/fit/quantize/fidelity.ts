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
import {
  FidelityAccumulator,
  outputsBroken,
  taskFigures,
  type MetricName,
  type Outputs,
  type Task,
  type TaskDef,
} from '../../fidelity/index.js';
import { openSession, type Feeds, type OptLevel } from '../../runtime/runner.js';
import type { Fidelity, FidelityMetric } from '../../passes/quantize/index.js';

export { FIDELITY_METRICS, type Fidelity, type FidelityMetric } from '../../passes/quantize/index.js';

/** Each metric as src/fidelity names it: the figure (per sample, worst output) and the ranking loss. */
const QUANT_METRICS = {
  cosine: { figure: 'cosine', loss: null },
  argmax: { figure: 'top1', loss: 'kl' },
} as const satisfies Record<FidelityMetric, { figure: MetricName; loss: MetricName | null }>;

/**
 * How a plan is judged: a raw metric, or the model's task (issue 16): a det by its boxes, a rec by
 * its text. A task's `mean` is its figure over all samples' pooled statistics (box F1 over all
 * boxes), `min` the worst single sample's; the ranking loss stays smooth (KL for class scores
 * and CTC steps, else 1 - cosine), since a task figure moves in whole boxes and characters.
 */
export type QuantJudge = FidelityMetric | { task: Task; def: TaskDef };

/** The judge's name, as printed and stored ('cosine', 'argmax', 'boxF1' ...). */
export const judgeName = (j: QuantJudge): string => (typeof j === 'string' ? j : j.def.metric);

const tensorsOf = (r: Record<string, ort.Tensor>): Outputs =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { dims: v.dims, data: v.data as Float32Array }]));

export async function measureFidelity(
  candidate: Model | Uint8Array,
  batches: readonly Feeds[],
  reference: readonly Record<string, ort.Tensor>[],
  level: OptLevel = 'all',
  threads = 2,
  metric: QuantJudge = 'cosine',
): Promise<Fidelity> {
  if (typeof metric !== 'string') return measureTask(candidate, batches, reference, level, threads, metric);
  const s = await openSession(candidate, { level, threads });
  const m = QUANT_METRICS[metric];
  const acc = new FidelityAccumulator([{ metric: m.figure, over: 'mean' }, ...(m.loss ? [{ metric: m.loss, over: 'mean' } as const] : [])]);
  const tensors = tensorsOf;
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

async function measureTask(
  candidate: Model | Uint8Array,
  batches: readonly Feeds[],
  reference: readonly Record<string, ort.Tensor>[],
  level: OptLevel,
  threads: number,
  judge: { task: Task; def: TaskDef },
): Promise<Fidelity> {
  const s = await openSession(candidate, { level, threads });
  const smooth: MetricName = judge.task === 'ctc' || judge.task === 'classify' ? 'kl' : 'cosine';
  const acc = new FidelityAccumulator([{ metric: smooth, over: 'mean' }]);
  let sum: number[] | undefined;
  let min = 1;
  let broken = 0;
  try {
    for (let i = 0; i < batches.length; i++) {
      const ref = tensorsOf(reference[i]!);
      const res = (await s.run(batches[i]!)) as Record<string, ort.Tensor>;
      const got = tensorsOf(
        Object.fromEntries(
          Object.keys(ref)
            .filter((k) => res[k])
            .map((k) => [k, res[k]!]),
        ),
      );
      acc.add(ref, got);
      const bad = outputsBroken(ref, got) ? 1 : 0;
      broken += bad;
      const st = judge.def.stats(ref, got);
      min = Math.min(min, taskFigures(judge.def, st, bad).value);
      if (!sum) sum = st;
      else for (let k = 0; k < st.length; k++) sum[k]! += st[k]!;
    }
  } finally {
    await s.release();
  }
  const r = acc.result().results[0]!;
  const loss = smooth === 'kl' ? r.value : r.perSample.reduce((x, c) => x + (1 - c), 0) / Math.max(1, r.perSample.length);
  const mean = taskFigures(judge.def, sum, broken).value; // NaN outputs or a NaN figure: 0, a failing plan
  return { metric: judge.def.metric, mean, min: Math.min(min, mean), samples: batches.length, loss };
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
