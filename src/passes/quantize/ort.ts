// onnxruntime plumbing for the quantizer: sessions built from in-memory bytes, and the optimised
// graph onnxruntime actually runs (read back with our codec) so reports name real kernels.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import type { Model } from '../../ir/model.js';
import { loadModel, serializeModel } from '../../onnx/index.js';

export const OPT_LEVELS = ['disabled', 'basic', 'extended', 'all'] as const;
export type OptLevel = (typeof OPT_LEVELS)[number];

export interface SessionOpts {
  threads?: number;
  level?: OptLevel;
  /** Where onnxruntime should write the graph after its own optimisations. */
  optimizedPath?: string;
}

export type Feeds = Record<string, ort.Tensor>;

export async function openSession(model: Model | Uint8Array, opts: SessionOpts = {}): Promise<ort.InferenceSession> {
  const bytes = model instanceof Uint8Array ? model : serializeModel(model);
  const so: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: opts.threads ?? 2,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: opts.level ?? 'all',
    // the NCHWc 'hardware specific' warning on saving is expected: we only read that file
    logSeverityLevel: 3,
  };
  if (opts.optimizedPath) so.optimizedModelFilePath = opts.optimizedPath;
  try {
    return await ort.InferenceSession.create(bytes, so);
  } catch (e) {
    throw new EdgefitError('EVAL', `onnxruntime refused the model: ${firstLine(e)}`, { cause: e });
  }
}

export function firstLine(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  return s.split('\n')[0] ?? s;
}

export function floatTensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

/**
 * Let onnxruntime optimise the model at `level` and read the result back. At 'basic' the result
 * holds only standard ONNX ops (constants folded, BatchNormalization folded into Conv, identities
 * gone): exactly the float graph the quantizer should see, the same pre-processing onnxruntime's
 * own quantization tool recommends. At 'all' it shows which kernels really run.
 */
export async function optimizedModel(model: Model | Uint8Array, level: OptLevel): Promise<Model> {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-ort-'));
  const path = join(dir, 'optimized.onnx');
  try {
    const s = await openSession(model, { level, optimizedPath: path, threads: 1 });
    await s.release();
    return loadModel(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Op type histogram of the graph onnxruntime runs on CPU (e.g. {QLinearConv: 60, ...}). */
export async function runtimeOps(model: Model | Uint8Array): Promise<Record<string, number>> {
  const opt = await optimizedModel(model, 'all');
  const counts: Record<string, number> = {};
  for (const n of opt.graph.nodes) counts[n.opType] = (counts[n.opType] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1]));
}
