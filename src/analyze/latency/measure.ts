// Timing units and models with onnxruntime for the latency tables (issue 17). One protocol
// (a short warm-up, then runs until a count or a time cap, lower quartile), one feed buffer reused
// for every input (values do not matter to time, shapes do), and identical configurations
// measured once per build: PP-OCRv4 det repeats the same layer shapes many times.
import type * as ort from 'onnxruntime-node';
import type { DType } from '../../ir/dtype.js';
import { Graph } from '../../ir/graph.js';
import { modelOf, type Model } from '../../ir/model.js';
import { serializeModel } from '../../onnx/index.js';
import { floatTensor, openSession, type Feeds } from '../../runtime/runner.js';
import { zeroTensor } from '../ort-shapes.js';
import type { Unit } from './extract.js';

export interface Protocol {
  warmup: number;
  /** Stop after this many timed runs... */
  runs: number;
  /** ...or once the timed runs took this long (at least `minRuns` either way). */
  capMs: number;
  minRuns: number;
}

/** Units: many, each small; the whole model: the anchor of every prediction, timed longer. */
export const UNIT_PROTOCOL: Protocol = { warmup: 2, runs: 21, capMs: 250, minRuns: 7 };
export const MODEL_PROTOCOL: Protocol = { warmup: 3, runs: 25, capMs: 6000, minRuns: 7 };

export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** The q-quantile of `xs`, interpolated between neighbours. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const i = q * (s.length - 1);
  const lo = Math.floor(i);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (i - lo);
}

/**
 * Time of `session` on `feeds`, ms: the lower quartile of the runs. On a shared box (the edge
 * agent's own work, other helpers' builds here) the other work lands in bursts that slow some
 * runs by 2x; the median moves with them from minute to minute, the fast quartile is the
 * kernels' own cost and stays put, and the tables need figures that compare across minutes.
 */
export async function timeSession(session: ort.InferenceSession, feeds: Feeds, p: Protocol): Promise<number> {
  for (let i = 0; i < p.warmup; i++) await session.run(feeds);
  const times: number[] = [];
  let total = 0;
  while (times.length < p.runs && (times.length < p.minRuns || total < p.capMs)) {
    const t = performance.now();
    await session.run(feeds);
    const dt = performance.now() - t;
    times.push(dt);
    total += dt;
  }
  return quantile(times, 0.25);
}

/** One float buffer of small values, grown on demand; every float feed is a view of its start. */
export class FeedBuffer {
  private buf = new Float32Array(0);

  tensor(shape: readonly number[]): ort.Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n > this.buf.length) {
      this.buf = new Float32Array(n);
      for (let i = 0; i < n; i++) this.buf[i] = ((i * 7919) % 1000) / 1000 - 0.5;
    }
    return floatTensor(this.buf.subarray(0, n), shape);
  }
}

/** Time of a whole model at the given input shapes (float inputs from `feeds`, others zero). */
export async function timeModel(
  model: Model | Uint8Array,
  inputs: ReadonlyArray<{ name: string; dtype: DType; shape: number[] }>,
  threads: number,
  feeds: FeedBuffer,
  p: Protocol = MODEL_PROTOCOL,
): Promise<number> {
  const bytes = model instanceof Uint8Array ? model : serializeModel(model);
  const s = await openSession(bytes, { threads });
  try {
    const f: Feeds = {};
    for (const i of inputs) f[i.name] = i.dtype === 'float32' ? feeds.tensor(i.shape) : zeroTensor(i.dtype, i.shape);
    return await timeSession(s, f, p);
  } finally {
    await s.release();
  }
}

/** The fixed cost of one session run, ms: a model that does next to nothing (one Relu on 16 floats). */
export async function callOverhead(threads: number, feeds: FeedBuffer): Promise<number> {
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [1, 16] } });
  g.addNode({ name: 'r', opType: 'Relu', inputs: ['x'], outputs: ['y'] });
  g.outputs.push({ name: 'y', type: { dtype: 'float32', shape: [1, 16] } });
  const m = modelOf(g, { producer: 'edgefit-overhead' });
  return timeModel(m, [{ name: 'x', dtype: 'float32', shape: [1, 16] }], threads, feeds, { warmup: 3, runs: 41, capMs: 100, minRuns: 21 });
}

/** Times units, each distinct configuration once; `count` is how many were really measured. */
export class UnitTimer {
  private readonly seen = new Map<string, number>();
  readonly feeds = new FeedBuffer();
  count = 0;
  /** onnxruntime's fixed cost of one run (callOverhead), taken off every unit's figure. */
  overheadMs = 0;

  constructor(
    readonly threads: number,
    private readonly onMeasured: () => void = () => {},
    readonly protocol: Protocol = UNIT_PROTOCOL,
    /** The box's load now against the build's start (gauge.ts); figures are divided by it. */
    private readonly load: () => Promise<number> = () => Promise.resolve(1),
  ) {}

  /** Whether `unit` would be measured (not seen yet): for progress totals. */
  has(key: string): boolean {
    return this.seen.has(key);
  }

  async time(unit: Unit): Promise<number> {
    const known = this.seen.get(unit.key);
    if (known !== undefined) return known;
    const inputs = unit.inputs.map((i) => ({ ...i, dtype: 'float32' as const }));
    const load = await this.load();
    const raw = (await timeModel(unit.model, inputs, this.threads, this.feeds, this.protocol)) / load;
    // a call's fixed cost is not the layer's (the model pays it once, not per layer): without it
    // a narrow layer's extrapolation toward zero width stays honest; never below a tenth, for noise
    const ms = Math.max(raw - this.overheadMs, raw * 0.1);
    this.seen.set(unit.key, ms);
    this.count++;
    this.onMeasured();
    return ms;
  }
}
