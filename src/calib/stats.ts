// Per-channel activation statistics over calibration samples, reduced while running so that
// only one sample's activations are held at a time. Pruning uses them for activation-aware
// importance and bias correction; quantization can use min/max.
import type { Model } from '../ir/model.js';
import type { Sample } from '../data/inputs.js';
import { ModelRunner, type F32Array } from '../runtime/runner.js';

export interface ChannelStats {
  /** Channel axis used (non-negative, in the value's actual rank). */
  axis: number;
  count: number;
  mean: Float64Array;
  meanAbs: Float64Array;
  meanSq: Float64Array;
  min: Float64Array;
  max: Float64Array;
}

/** Accumulate one tensor into `st` along `axis`. */
export function accumulate(st: ChannelStats | undefined, f: F32Array, axis: number): ChannelStats {
  const c = f.shape[axis] ?? 1;
  const outer = f.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = f.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const s = st ?? {
    axis,
    count: 0,
    mean: new Float64Array(c),
    meanAbs: new Float64Array(c),
    meanSq: new Float64Array(c),
    min: new Float64Array(c).fill(Infinity),
    max: new Float64Array(c).fill(-Infinity),
  };
  const n0 = s.count,
    n1 = outer * inner;
  const sum = new Float64Array(c),
    abs = new Float64Array(c),
    sq = new Float64Array(c);
  const d = f.data;
  for (let o = 0; o < outer; o++) {
    for (let ch = 0; ch < c; ch++) {
      const base = (o * c + ch) * inner;
      let a = 0,
        b = 0,
        q = 0,
        lo = s.min[ch]!,
        hi = s.max[ch]!;
      for (let j = 0; j < inner; j++) {
        const v = d[base + j]!;
        a += v;
        b += Math.abs(v);
        q += v * v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      sum[ch] += a;
      abs[ch] += b;
      sq[ch] += q;
      s.min[ch] = lo;
      s.max[ch] = hi;
    }
  }
  const tot = n0 + n1;
  for (let ch = 0; ch < c; ch++) {
    s.mean[ch] = (s.mean[ch]! * n0 + sum[ch]!) / tot;
    s.meanAbs[ch] = (s.meanAbs[ch]! * n0 + abs[ch]!) / tot;
    s.meanSq[ch] = (s.meanSq[ch]! * n0 + sq[ch]!) / tot;
  }
  s.count = tot;
  return s;
}

/**
 * Statistics of `values` (name -> channel axis counted from the end, -1 = last) over `samples`.
 * Values of a different rank than expected are skipped rather than misread.
 */
export async function channelStats(
  model: Model,
  samples: readonly Sample[],
  values: ReadonlyMap<string, number>,
  threads = 1,
): Promise<Map<string, ChannelStats>> {
  const out = new Map<string, ChannelStats>();
  if (!values.size) return out;
  const runner = await ModelRunner.create(model, { extraOutputs: [...values.keys()], threads });
  try {
    for (const s of samples) {
      const res = await runner.run(s);
      for (const [name, axNeg] of values) {
        const f = res.get(name) ?? (s[name] as F32Array | undefined);
        if (!f) continue;
        const axis = f.shape.length + axNeg;
        if (axis < 0) continue;
        out.set(name, accumulate(out.get(name), f, axis));
      }
    }
  } finally {
    await runner.release();
  }
  return out;
}
