// Activation ranges from calibration statistics: MinMax, percentile, entropy (KL divergence,
// the TensorRT method) and MSE (least expected squared quantization error: clipping plus
// rounding), and the (scale, zero point) pairs those ranges give.
import { EdgefitError } from '../../errors.js';
import { INT8_RANGES } from '../../ir/dtype.js';
import type { ActType } from './platform.js';
import { HIST_BINS, type TensorStats } from './stats.js';

/**
 * The calibration methods, one entry each: how a tensor's range is chosen from its statistics
 * (null: the observed min/max) and whether that needs a histogram. A new method is one entry here.
 */
const CALIBRATORS = {
  minmax: { histogram: false, range: null },
  percentile: { histogram: true, range: (s: TensorStats, o: RangeOptions): Range => percentileRange(s, o.percentile ?? 99.999) },
  entropy: { histogram: true, range: (s: TensorStats): Range => entropyRange(s) },
  mse: { histogram: true, range: (s: TensorStats): Range => mseRange(s) },
} as const satisfies Record<string, { histogram: boolean; range: ((s: TensorStats, o: RangeOptions) => Range) | null }>;

export type CalibMethod = keyof typeof CALIBRATORS;
export const CALIB_METHODS = Object.keys(CALIBRATORS) as readonly CalibMethod[];

/** Whether collecting statistics for `method` must keep histograms (minmax needs only the extremes). */
export const needsHistogram = (method: CalibMethod): boolean => CALIBRATORS[method].histogram;

export interface Range {
  min: number;
  max: number;
}
export interface QParams {
  scale: number;
  zeroPoint: number;
}

export interface RangeOptions {
  /** Share of values kept inside the range by the percentile method. */
  percentile?: number;
}

export function computeRange(s: TensorStats, method: CalibMethod, opts: RangeOptions = {}): Range {
  if (s.count === 0) throw new EdgefitError('INTERNAL', 'range of a tensor that was never observed');
  const full = { min: Math.min(s.min, 0), max: Math.max(s.max, 0) };
  const pick = CALIBRATORS[method].range;
  if (pick === null || !s.hist || s.range === 0) return full;
  const r = pick(s, opts);
  // 0 must stay exactly representable (padding, ReLU outputs), and a method never widens the range
  return { min: Math.min(0, Math.max(r.min, full.min)), max: Math.max(0, Math.min(r.max, full.max)) };
}

/** Drop (100 - p)% of the values, half from each tail (all from one tail if the other is empty). */
function percentileRange(s: TensorStats, p: number): Range {
  const h = s.hist!;
  const drop = (s.count * (100 - p)) / 100;
  const lowerTail = s.min < 0 ? (s.max > 0 ? drop / 2 : drop) : 0;
  const upperTail = s.max > 0 ? (s.min < 0 ? drop / 2 : drop) : 0;
  let acc = 0;
  let lo = 0;
  while (lo < HIST_BINS - 1 && acc + h[lo]! <= lowerTail) acc += h[lo++]!;
  acc = 0;
  let hi = HIST_BINS - 1;
  while (hi > 0 && acc + h[hi]! <= upperTail) acc += h[hi--]!;
  return { min: s.edge(lo), max: s.edge(hi + 1) };
}

/**
 * TensorRT's entropy calibration on the histogram of |x|: for each candidate threshold T, compare
 * the distribution clipped at T with its quantized version (levels buckets) and keep the T of
 * least KL divergence. Non-negative tensors get all 256 levels of an asymmetric u8 range.
 */
function entropyRange(s: TensorStats): Range {
  const half = HIST_BINS / 2;
  const absHist = new Float64Array(half);
  const h = s.hist!;
  for (let i = 0; i < half; i++) absHist[i] = h[half + i]! + h[half - 1 - i]!;
  const levels = s.min < 0 ? 128 : 256;
  let bestI = half;
  let bestKl = Infinity;
  const step = Math.max(1, Math.floor((half - levels) / 128));
  for (let i = levels; i <= half; i += step) {
    const kl = klAt(absHist, i, levels);
    if (kl < bestKl) {
      bestKl = kl;
      bestI = i;
    }
  }
  const t = (bestI / half) * s.range;
  return { min: s.min < 0 ? -t : 0, max: s.max > 0 ? t : 0 };
}

function klAt(hist: Float64Array, i: number, levels: number): number {
  const p = new Float64Array(i);
  for (let j = 0; j < i; j++) p[j] = hist[j]!;
  let outliers = 0;
  for (let j = i; j < hist.length; j++) outliers += hist[j]!;
  p[i - 1]! += outliers;
  // quantize: merge i bins into `levels` groups, spread each group's mass over its non-empty bins.
  // The candidate is built from the clipped histogram without the outliers (TensorRT does the
  // same); folding them in would make q equal p whenever i == levels and pick that threshold.
  const q = new Float64Array(i);
  const per = i / levels;
  for (let l = 0; l < levels; l++) {
    const a = Math.floor(l * per);
    const b = l === levels - 1 ? i : Math.floor((l + 1) * per);
    let sum = 0;
    let nz = 0;
    for (let j = a; j < b; j++) {
      sum += hist[j]!;
      if (hist[j]! > 0) nz++;
    }
    if (nz === 0) continue;
    for (let j = a; j < b; j++) if (hist[j]! > 0) q[j] = sum / nz;
  }
  let ps = 0;
  let qs = 0;
  for (let j = 0; j < i; j++) {
    ps += p[j]!;
    qs += q[j]!;
  }
  if (ps === 0 || qs === 0) return Infinity;
  let kl = 0;
  for (let j = 0; j < i; j++) {
    const pj = p[j]! / ps;
    if (pj === 0) continue;
    const qj = q[j]! / qs;
    kl += qj > 0 ? pj * Math.log(pj / qj) : pj * 20; // an empty q bin where p has mass: heavy penalty
  }
  return kl;
}

/** Candidate clip points per side searched by the MSE method (a grid over the observed extent). */
const MSE_GRID = 160;

/**
 * The range [lo, hi] (256 levels, asymmetric like activationParams) of least expected squared
 * error over the histogram: values outside are clipped to the nearest end, values inside are
 * rounded to a step of (hi - lo) / 255, costing step^2 / 12 each. Both ends are searched on a
 * grid (each side independently: a clipped lower tail does not force a clipped upper one); prefix
 * sums of count, count*x and count*x^2 make each candidate O(1). Unlike percentile it clips only
 * where the tail is sparse enough to be cheaper than the resolution it buys; unlike entropy it
 * weighs errors by their size, which is what a following Conv's output error does.
 */
function mseRange(s: TensorStats): Range {
  const h = s.hist!;
  const n = HIST_BINS;
  const c = new Float64Array(n + 1);
  const cx = new Float64Array(n + 1);
  const cxx = new Float64Array(n + 1);
  const w = (2 * s.range) / n;
  for (let i = 0; i < n; i++) {
    const x = s.edge(i) + w / 2;
    c[i + 1] = c[i]! + h[i]!;
    cx[i + 1] = cx[i]! + h[i]! * x;
    cxx[i + 1] = cxx[i]! + h[i]! * x * x;
  }
  const binOf = (v: number): number => Math.min(n, Math.max(0, Math.round((v + s.range) / w)));
  // squared error of clipping the bins [a, b) to the value t
  const clip = (a: number, b: number, t: number): number => cxx[b]! - cxx[a]! - 2 * t * (cx[b]! - cx[a]!) + t * t * (c[b]! - c[a]!);
  const lows = s.min < 0 ? Array.from({ length: MSE_GRID }, (_, k) => (s.min * (k + 1)) / MSE_GRID) : [0];
  const highs = s.max > 0 ? Array.from({ length: MSE_GRID }, (_, k) => (s.max * (k + 1)) / MSE_GRID) : [0];
  let best = { min: Math.min(s.min, 0), max: Math.max(s.max, 0) };
  let bestErr = Infinity;
  for (const lo of lows) {
    const a = binOf(lo);
    const below = clip(0, a, lo);
    for (const hi of highs) {
      if (!(hi > lo)) continue;
      const b = binOf(hi);
      const step = (hi - lo) / 255;
      const err = below + clip(b, n, hi) + ((c[b]! - c[a]!) * step * step) / 12;
      if (err < bestErr) {
        bestErr = err;
        best = { min: lo, max: hi };
      }
    }
  }
  return best;
}

export function activationParams(r: Range, type: ActType): QParams {
  const [qmin, qmax] = INT8_RANGES[type];
  const span = r.max - r.min;
  if (!(span > 0) || !Number.isFinite(span)) return { scale: 1, zeroPoint: type === 'uint8' ? 0 : 0 };
  const scale = span / (qmax - qmin);
  const zp = Math.round(qmin - r.min / scale);
  return { scale, zeroPoint: Math.min(qmax, Math.max(qmin, zp)) };
}
