// In-process inference with onnxruntime-node, with any intermediate value exposed as an extra
// graph output. Pruning (importance, recovery) and quantization (range calibration) both need
// the activations inside a model, and ORT only returns graph outputs: so the model is
// re-serialized with the wanted values appended to its outputs. Only float tensors are kept.
import * as ort from 'onnxruntime-node';
import { EdgefitError } from '../errors.js';
import type { Model } from '../ir/model.js';
import { serializeModel } from '../onnx/index.js';

/** One input tensor (float32; other dtypes are converted by the caller's loader). */
export interface Feed {
  dims: number[];
  data: Float32Array;
}
/** One sample: a value per runtime input name. */
export type Sample = Record<string, Feed>;

export interface RunnerOptions {
  /** Intermediate values to expose as extra outputs. */
  extraOutputs?: readonly string[];
  /** intra-op threads (default 1: calibration runs beside other work on small boxes). */
  threads?: number;
  /** ORT graph optimization level; 'all' would fuse away nothing we read, since exposed values are outputs. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
}

export class ModelRunner {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  /** Build a session for `model` (which is not modified) plus the wanted intermediate outputs. */
  static async create(model: Model, opts: RunnerOptions = {}): Promise<ModelRunner> {
    const bytes = modelBytesWithOutputs(model, opts.extraOutputs ?? []);
    return ModelRunner.fromBytes(bytes, opts);
  }

  static async fromBytes(bytes: Uint8Array, opts: RunnerOptions = {}): Promise<ModelRunner> {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: opts.threads ?? 1,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: opts.optimization ?? 'basic',
        // unused initializers left by exact folds are dropped with a warning per tensor: noise
        logSeverityLevel: 3,
      });
    } catch (e) {
      throw new EdgefitError('EVAL', `onnxruntime refused the model: ${String((e as Error).message ?? e).split('\n')[0]}`, { cause: e });
    }
    return new ModelRunner(session, session.inputNames, session.outputNames);
  }

  /** Run one sample; returns float outputs by name (non-float outputs are skipped). */
  async run(sample: Sample, fetch?: readonly string[]): Promise<Map<string, Feed>> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      const f = sample[name];
      if (!f) throw new EdgefitError('DATA', `no data for model input '${name}'`);
      feeds[name] = new ort.Tensor('float32', f.data, f.dims);
    }
    let res: ort.InferenceSession.OnnxValueMapType;
    try {
      res = fetch ? await this.session.run(feeds, [...fetch]) : await this.session.run(feeds);
    } catch (e) {
      throw new EdgefitError('EVAL', `inference failed: ${String((e as Error).message ?? e).split('\n')[0]}`, { cause: e });
    }
    const out = new Map<string, Feed>();
    for (const [name, v] of Object.entries(res)) {
      const t = v as ort.Tensor;
      if (t.type !== 'float32') continue;
      out.set(name, { dims: [...t.dims], data: t.data as Float32Array });
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Serialize `model` with extra graph outputs appended; the model itself is left as it was. */
export function modelBytesWithOutputs(model: Model, extra: readonly string[]): Uint8Array {
  const g = model.graph;
  const saved = g.outputs;
  const have = new Set(saved.map((o) => o.name));
  const add = [...new Set(extra)].filter((v) => !have.has(v));
  for (const v of add) {
    if (!g.producer(v) && !g.isGraphInput(v)) throw new EdgefitError('USAGE', `cannot expose '${v}': no node produces it`);
  }
  g.outputs = [...saved, ...add.map((name) => ({ name, type: g.valueTypes.get(name) ? { dtype: g.valueTypes.get(name)!.dtype, shape: null } : null }))];
  g.touch();
  try {
    return serializeModel(model);
  } finally {
    g.outputs = saved;
    g.touch();
  }
}

/** Run every sample, handing each result to `visit` (so callers can reduce without holding all activations). */
export async function forEachSample(
  runner: ModelRunner,
  samples: readonly Sample[],
  visit: (out: Map<string, Feed>, index: number) => void,
  fetch?: readonly string[],
): Promise<void> {
  for (let i = 0; i < samples.length; i++) visit(await runner.run(samples[i]!, fetch), i);
}
