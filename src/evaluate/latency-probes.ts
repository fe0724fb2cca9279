// Whole-model probes for the latency tables (issue 17): a few uniformly pruned copies of the
// (prepared) model, each timed side by side with it, give measured points that the tables'
// predictions are mapped through (analyze/latency/predict.ts calibratedMs). Layers timed alone
// predicted det and rec within 15 % but missed ResNet-18 and MobileNetV2 at half their channels
// by 60-100 %: a whole pruned model also gains from smaller activations staying in cache, which
// no isolated layer shows. Two probes cost a few seconds (det: about 2 x 35 pairs of 60 ms).
import { cloneModel, type Model } from '../ir/model.js';
import { serializeModel } from '../onnx/index.js';
import { predictModelMs } from '../analyze/latency/index.js';
import type { LatencyTables } from '../analyze/latency/types.js';
import { prune } from '../passes/prune/index.js';
import { robustTables } from '../passes/prune/robust-tables.js';
import { syntheticSamples } from '../data/model-inputs.js';
import { toFeeds } from '../runtime/runner.js';
import { compareLatency } from './interleaved.js';

/** Pairs per probe: about 2 s of the model's time (a 2 ms model needs many pairs to see past the noise), 12..200. */
export function runsFor(modelMs: number): number {
  return Math.max(12, Math.min(200, Math.round(2000 / Math.max(modelMs, 1e-3))));
}

/** Channel ratios the probes prune uniformly: one near the middle and one deep cut span what targets ask. */
export const PROBE_RATIOS = [0.3, 0.6] as const;

export interface ProbeOptions {
  shapes: Map<string, number[]>;
  threads: number;
  /** Interleaved pairs per probe (default: runsFor the model's time). */
  runs?: number;
  ratios?: readonly number[];
}

/** A copy of `model` with `ratio` of every group's channels cut by L1 norm, no data, no repair: a shape to time. */
export async function uniformCut(model: Model, ratio: number, round: number, shapes: Map<string, number[]>): Promise<Model> {
  const m = cloneModel(model);
  await prune(m, {
    structured: ratio,
    importance: 'l1',
    recover: 'none',
    steps: 1,
    round,
    shapes,
    samples: [],
    synthetic: true,
    skipFidelity: true,
  });
  return m;
}

/**
 * `tables` with `probes` measured on `model` (which must be the model the tables were built on,
 * prepared as prune() prepares it). The predicted side is read as the allocation reads the tables
 * (robustTables), so the map corrects what the allocation sees. `model` is not changed.
 */
export async function probeTables(model: Model, tables: LatencyTables, o: ProbeOptions): Promise<LatencyTables> {
  const robust = robustTables(tables);
  const base = serializeModel(model);
  const [sample] = syntheticSamples(model, o.shapes, 1);
  const feeds = toFeeds(sample!);
  const probes: { predicted: number; measured: number }[] = [];
  for (const ratio of o.ratios ?? PROBE_RATIOS) {
    const m = await uniformCut(model, ratio, tables.block, o.shapes);
    const predicted = predictModelMs(robust, m) / robust.modelMs;
    if (!(predicted > 0 && predicted < 1)) continue; // nothing the tables see was cut
    const c = await compareLatency(base, serializeModel(m), feeds, o.runs ?? runsFor(tables.modelMs), o.threads);
    probes.push({ predicted, measured: c.ratio });
  }
  return { ...tables, probes };
}
