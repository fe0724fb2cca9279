// The one place edgefit talks to onnxruntime-node (with session.ts, its codec-free half): sessions from a model, bytes or a path (thread settings,
// optimisation level, warnings off), feeds from a data Sample, outputs back as NdArrays, and any
// intermediate value exposed as an extra graph output (ORT only returns graph outputs, and
// pruning importance, recovery and quantizer calibration all need activations inside a model).
// Calibration, quantization, the evaluation child and the agent's latency probe all use it, so a
// sample means the same tensor everywhere.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { EdgefitError } from '../errors.js';
import type { Model } from '../ir/model.js';
import { loadModel, serializeModel } from '../onnx/index.js';
import type { Sample } from '../data/inputs.js';
import {
  openSession as openBytesOrPath,
  firstLine,
  toTensor,
  type F32Array,
  type Feeds,
  type OptLevel,
  type SessionOpts,
} from './session.js';

// everything of the session half, with openSession widened to IR models below (a local export
// shadows the star export of the same name)
export * from './session.js';

/** A session for an IR model, its bytes, or an .onnx path. */
export async function openSession(model: Model | Uint8Array | string, opts: SessionOpts = {}): Promise<ort.InferenceSession> {
  return openBytesOrPath(typeof model === 'string' || model instanceof Uint8Array ? model : serializeModel(model), opts);
}

/** The runtime inputs of a model: the data layer's definition, re-exported for the runner's callers. */
export { modelInputs } from '../data/model-inputs.js';

/**
 * Serialize `model` with `extra` values appended to its graph outputs; the model itself is left as
 * it was (the outputs are put back before returning).
 */
export function withExtraOutputs(model: Model, extra: readonly string[]): Uint8Array {
  const g = model.graph;
  const saved = g.outputs;
  const have = new Set(saved.map((o) => o.name));
  const add = [...new Set(extra)].filter((v) => !have.has(v));
  for (const v of add) {
    if (!g.producer(v) && !g.isGraphInput(v)) throw new EdgefitError('USAGE', `cannot expose '${v}': no node produces it`);
  }
  const typeOf = (name: string) => {
    const t = g.valueTypes.get(name);
    return t ? { dtype: t.dtype, shape: null } : null;
  };
  g.outputs = [...saved, ...add.map((name) => ({ name, type: typeOf(name) }))];
  g.touch();
  try {
    return serializeModel(model);
  } finally {
    g.outputs = saved;
    g.touch();
  }
}

export interface RunnerOptions {
  /** Intermediate values to expose as extra outputs. */
  extraOutputs?: readonly string[];
  /** intra-op threads (default 1: calibration runs beside other work on small boxes). */
  threads?: number;
  /** ORT graph optimization level (default 'basic'); exposed values are outputs, so no level fuses them away. */
  optimization?: OptLevel;
  /** false: idle intra-op threads sleep (a session taking turns with others on a small box). */
  spinning?: boolean;
}

/** A session that takes Samples and hands back float outputs as NdArrays. */
export class ModelRunner {
  private constructor(
    readonly session: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  /** Build a session for `model` (which is not modified) plus the wanted intermediate outputs. */
  static async create(model: Model, opts: RunnerOptions = {}): Promise<ModelRunner> {
    return ModelRunner.fromBytes(withExtraOutputs(model, opts.extraOutputs ?? []), opts);
  }

  static async fromBytes(bytes: Uint8Array, opts: RunnerOptions = {}): Promise<ModelRunner> {
    const session = await openSession(bytes, {
      threads: opts.threads ?? 1,
      level: opts.optimization ?? 'basic',
      ...(opts.spinning === false ? { spinning: false } : {}),
    });
    return new ModelRunner(session, session.inputNames, session.outputNames);
  }

  /** Run one sample; returns float32 outputs by name (other dtypes are skipped). */
  async run(sample: Sample, fetch?: readonly string[]): Promise<Map<string, F32Array>> {
    const feeds: Feeds = {};
    for (const name of this.inputNames) {
      const a = sample[name];
      if (!a) throw new EdgefitError('DATA', `no data for model input '${name}'`);
      feeds[name] = toTensor(a);
    }
    let res: ort.InferenceSession.OnnxValueMapType;
    try {
      res = fetch ? await this.session.run(feeds, [...fetch]) : await this.session.run(feeds);
    } catch (e) {
      throw new EdgefitError('EVAL', `inference failed: ${firstLine(e)}`, { cause: e });
    }
    const out = new Map<string, F32Array>();
    for (const [name, v] of Object.entries(res)) {
      const t = v as ort.Tensor;
      if (t.type !== 'float32') continue;
      out.set(name, { dtype: 'float32', shape: [...t.dims], data: t.data as Float32Array<ArrayBuffer> });
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Run every sample, handing each result to `visit` (so callers can reduce without holding all activations). */
export async function forEachSample(
  runner: ModelRunner,
  samples: readonly Sample[],
  visit: (out: Map<string, F32Array>, index: number) => void,
  fetch?: readonly string[],
): Promise<void> {
  for (let i = 0; i < samples.length; i++) visit(await runner.run(samples[i]!, fetch), i);
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

/** The first output of a model on each sample, as float32: what a changed model is compared on with its original (the figures are src/fidelity's). */
export interface Outputs {
  name: string;
  dims: number[];
  data: Float32Array;
}

/** The first output on each sample; `optimization` 'all' runs the kernels a deployment runs (int8 fusions). */
export async function runFirstOutput(model: Model, samples: readonly Sample[], threads = 1, optimization?: OptLevel): Promise<Outputs[]> {
  const r = await ModelRunner.create(model, { threads, ...(optimization ? { optimization } : {}) });
  const name = model.graph.outputs[0]!.name;
  const out: Outputs[] = [];
  try {
    for (const s of samples) {
      const o = (await r.run(s, [name])).get(name)!;
      out.push({ name, dims: o.shape, data: Float32Array.from(o.data) });
    }
  } finally {
    await r.release();
  }
  return out;
}
