// onnxruntime sessions and tensors, without the codec: what the measurement children (the
// evaluator's and the agent's probe) need, since they load models by path. Importing the ONNX
// codec (protobufjs and the schema) there would cost every child ~6 MB for nothing; runner.ts
// adds the Model-level half (serialising an IR model, exposing intermediates) on top of this.
import * as ort from 'onnxruntime-node';
import { EdgefitError } from '../errors.js';
import { ND_DTYPES, isNdDType, type NdArray, type NdData } from '../data/ndarray.js';
import type { Sample } from '../data/inputs.js';

export const OPT_LEVELS = ['disabled', 'basic', 'extended', 'all'] as const;
export type OptLevel = (typeof OPT_LEVELS)[number];

export interface SessionOpts {
  /** intra-op threads (default 2). */
  threads?: number;
  /** graph optimisation level (default 'all'). */
  level?: OptLevel;
  /** Where onnxruntime should write the graph after its own optimisations. */
  optimizedPath?: string;
  /** CPU memory arena and memory pattern (onnxruntime's defaults, true, when absent). */
  memArena?: boolean;
  memPattern?: boolean;
  /** false: idle intra-op threads sleep instead of spinning (sessions timed round-robin must not tax each other). */
  spinning?: boolean;
}

/** onnxruntime's own feed form: input name -> tensor. */
export type Feeds = Record<string, ort.Tensor>;

/** A float32 NdArray: what intermediate values and float outputs come back as. */
export interface F32Array extends NdArray {
  dtype: 'float32';
  data: Float32Array<ArrayBuffer>;
}

export function firstLine(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  return s.split('\n')[0] ?? s;
}

/** A session for a model's bytes or an .onnx path (the probe and evaluator load by path: no copy in JS). */
export async function openSession(model: Uint8Array | string, opts: SessionOpts = {}): Promise<ort.InferenceSession> {
  const so: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: opts.threads ?? 2,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: opts.level ?? 'all',
    // unused initializers left by exact folds, and the NCHWc 'hardware specific' note when saving
    // an optimised graph, are each a warning line: noise
    logSeverityLevel: 3,
  };
  if (opts.memArena !== undefined) so.enableCpuMemArena = opts.memArena;
  if (opts.memPattern !== undefined) so.enableMemPattern = opts.memPattern;
  if (opts.optimizedPath) so.optimizedModelFilePath = opts.optimizedPath;
  if (opts.spinning === false) so.extra = { session: { intra_op: { allow_spinning: '0' } } };
  try {
    if (typeof model === 'string') return await ort.InferenceSession.create(model, so);
    return await ort.InferenceSession.create(model, so);
  } catch (e) {
    throw new EdgefitError('EVAL', `onnxruntime refused the model: ${firstLine(e)}`, { cause: e });
  }
}

export function floatTensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

/** One array as an onnxruntime tensor (no copy). */
export function toTensor(a: NdArray): ort.Tensor {
  return new ort.Tensor(ND_DTYPES[a.dtype].ort as 'float32', a.data as Float32Array, a.shape);
}

/** A sample as onnxruntime feeds (no copy). */
export function toFeeds(s: Sample): Feeds {
  const feeds: Feeds = {};
  for (const [name, a] of Object.entries(s)) feeds[name] = toTensor(a);
  return feeds;
}

/** An output tensor as an NdArray, copied: the tensor's buffer belongs to the runtime and may be reused. */
export function fromTensor(t: ort.Tensor, name: string): NdArray {
  const dtype = t.type;
  if (!isNdDType(dtype)) throw new EdgefitError('UNSUPPORTED', `output '${name}' has type ${t.type}, which edgefit cannot compare`);
  const Ctor = ND_DTYPES[dtype].ctor;
  const src = t.data as NdData;
  const data = new Ctor(src.length) as NdData;
  (data as Float32Array).set(src as Float32Array);
  return { dtype, shape: t.dims.map(Number), data };
}
