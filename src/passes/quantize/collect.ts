// Calibration data collection: run the float model in onnxruntime with the chosen intermediate
// values exposed as extra graph outputs (the shared runner's withExtraOutputs), and fold each
// batch into running statistics at once, so memory holds one batch's activations, never the
// whole calibration set's.
import type * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import type { Model } from '../../ir/model.js';
import { openSession, withExtraOutputs, type Feeds } from '../../runtime/runner.js';
import { TensorStats } from './stats.js';

export interface CollectOptions {
  /** Keep histograms (needed by percentile and entropy; MinMax only needs the extremes). */
  histograms: boolean;
  threads?: number;
  /** Sees each batch's results (all requested values) before they are dropped: per-layer statistics (rounding.ts). */
  visit?: (res: Record<string, ort.Tensor>) => void | Promise<void>;
}

/**
 * Statistics of every value in `values` over all `batches` (float32 values only: integer shape
 * arithmetic shows up here too and is simply skipped). Also returns the float model's own outputs
 * per batch, which the fidelity checks compare against.
 */
export async function collectStats(
  model: Model,
  values: readonly string[],
  batches: readonly Feeds[],
  opts: CollectOptions,
): Promise<{ stats: Map<string, TensorStats>; reference: Record<string, ort.Tensor>[] }> {
  if (batches.length === 0) throw new EdgefitError('DATA', 'no calibration data: give at least one input batch');
  const session = await openSession(withExtraOutputs(model, values), { threads: opts.threads, level: 'basic' });
  const stats = new Map<string, TensorStats>();
  const reference: Record<string, ort.Tensor>[] = [];
  const outs = model.graph.outputs.map((o) => o.name);
  try {
    for (const feeds of batches) {
      let res: ort.InferenceSession.OnnxValueMapType;
      try {
        res = await session.run(feeds);
      } catch (e) {
        throw new EdgefitError(
          'DATA',
          `calibration data does not fit the model: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`,
          { cause: e },
        );
      }
      for (const v of values) {
        const t = res[v] as ort.Tensor | undefined;
        if (!t || t.type !== 'float32') continue;
        let s = stats.get(v);
        if (!s) stats.set(v, (s = new TensorStats(opts.histograms)));
        s.add(t.data as Float32Array);
      }
      await opts.visit?.(res as Record<string, ort.Tensor>);
      const ref: Record<string, ort.Tensor> = {};
      for (const o of outs) ref[o] = res[o] as ort.Tensor;
      reference.push(ref);
    }
  } finally {
    await session.release();
  }
  return { stats, reference };
}
