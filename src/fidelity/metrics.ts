// The fidelity metrics, each defined once: how close a candidate model's outputs are to a
// reference's on the same inputs. A metric is a name in METRICS with a per-sample function over
// one output's two tensors (sufficient statistics, so samples can be pooled), the figure made
// from those statistics, its best and worst values, and the aggregation over samples its callers
// use unless they ask for another. Adding a metric (box F1, 1-CER, ...) is one entry here.
// Everything is pure arithmetic in float64 over typed arrays: running models is the runner's job.
import { EdgefitError } from '../errors.js';

/** One output of one sample: row-major values and their shape (the last axis is the class axis). */
export interface OutputTensor {
  readonly dims: readonly number[];
  readonly data: Float32Array | Float64Array;
}

type Values = Float32Array | Float64Array;

/**
 * How per-sample figures become one figure:
 * - pooled: the statistics of all samples combined (summed, or the max for maxAbsErr), then the
 *   figure; robust when some samples' outputs are near zero (det on an image without text).
 * - mean / min / max: of the per-sample figures (a sample's figure is its worst output).
 */
export const AGGREGATES = ['pooled', 'mean', 'min', 'max'] as const;
export type Aggregate = (typeof AGGREGATES)[number];

export interface MetricDef {
  readonly describe: string;
  /** Value for identical outputs; the other end of the scale is `worst`. */
  readonly best: number;
  readonly worst: number;
  /** Aggregation over samples when the caller names none. */
  readonly over: Aggregate;
  /** How one statistic combines over samples when pooled. */
  readonly combine: 'sum' | 'max';
  /** Sufficient statistics of one sample's output (ref against candidate, same shape). */
  stats(ref: Values, got: Values, dims: readonly number[]): number[];
  /** The figure from statistics (one sample's, or pooled). */
  value(s: readonly number[]): number;
}

/** Detection maps are binarised here before IoU (PP-OCR DB's default box threshold). */
export const MASK_THRESHOLD = 0.3;

function dotStats(a: ArrayLike<number>, b: ArrayLike<number>): number[] {
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let i = 0; i < a.length; i++) {
    const p = a[i]!,
      q = b[i]!;
    ab += p * q;
    aa += p * p;
    bb += q * q;
  }
  return [ab, aa, bb];
}

/** Cosine from (a.b, a.a, b.b): 1 when both are zero, 0 when one is, clamped to [-1, 1] against rounding. */
function cosineOf(ab: number, aa: number, bb: number): number {
  if (aa === 0 && bb === 0) return 1;
  if (aa === 0 || bb === 0) return 0;
  return Math.max(-1, Math.min(1, ab / Math.sqrt(aa * bb)));
}

/** Cosine similarity of two flattened tensors. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const [ab, aa, bb] = dotStats(a, b);
  return cosineOf(ab!, aa!, bb!);
}

/** Index of the largest of v[off .. off+n); the first maximum wins ties. */
export function argmax(v: ArrayLike<number>, off = 0, n = v.length - off): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (v[off + j]! > v[off + best]!) best = j;
  return best;
}

/** Indices of the k largest of v[off .. off+n), largest first; earlier indices win ties. */
export function topK(v: ArrayLike<number>, off: number, n: number, k: number): number[] {
  const idx: number[] = [];
  for (let j = 0; j < n; j++) {
    const x = v[off + j]!;
    let p = idx.length;
    while (p > 0 && v[off + idx[p - 1]!]! < x) p--;
    if (p < k) {
      idx.splice(p, 0, j);
      if (idx.length > k) idx.pop();
    }
  }
  return idx;
}

function rowsOf(ref: ArrayLike<number>, got: ArrayLike<number>, classes: number): number {
  if (!(classes > 0) || ref.length % classes !== 0 || got.length !== ref.length) {
    throw new EdgefitError('INTERNAL', `argmax agreement: ${ref.length} and ${got.length} values do not split into rows of ${classes}`);
  }
  return ref.length / classes;
}

/**
 * Positions (all axes but the last) whose argmax over the last axis agrees. Right for classifiers
 * and for sequence recognisers (PP-OCR rec [1, T, classes], decoded by a per-step argmax), where a
 * cosine of 0.99 can still hide flipped characters.
 */
export function argmaxAgreement(ref: ArrayLike<number>, got: ArrayLike<number>, classes: number): { agree: number; positions: number } {
  const positions = rowsOf(ref, got, classes);
  let agree = 0;
  for (let p = 0; p < positions; p++) if (argmax(ref, p * classes, classes) === argmax(got, p * classes, classes)) agree++;
  return { agree, positions };
}

/** Rows whose reference argmax is among the candidate's top k. */
function topKHits(ref: ArrayLike<number>, got: ArrayLike<number>, classes: number, k: number): { hits: number; positions: number } {
  const positions = rowsOf(ref, got, classes);
  let hits = 0;
  for (let p = 0; p < positions; p++) if (topK(got, p * classes, classes, k).includes(argmax(ref, p * classes, classes))) hits++;
  return { hits, positions };
}

/** Row as a distribution: used as is when it already is one (a Softmax output), else softmaxed. */
function distribution(a: ArrayLike<number>, off: number, n: number, out: Float64Array): void {
  let sum = 0;
  let neg = false;
  for (let c = 0; c < n; c++) {
    const v = a[off + c]!;
    if (v < 0) neg = true;
    sum += v;
  }
  if (!neg && Math.abs(sum - 1) < 1e-3) {
    for (let c = 0; c < n; c++) out[c] = a[off + c]! / sum;
    return;
  }
  let m = -Infinity;
  for (let c = 0; c < n; c++) m = Math.max(m, a[off + c]!);
  let z = 0;
  for (let c = 0; c < n; c++) z += out[c] = Math.exp(a[off + c]! - m);
  for (let c = 0; c < n; c++) out[c]! /= z;
}

/** Sum over positions of KL(ref || got), each row over the last axis taken as a distribution. */
function klSum(ref: ArrayLike<number>, got: ArrayLike<number>, classes: number): { sum: number; positions: number } {
  const positions = ref.length / classes;
  const p = new Float64Array(classes);
  const q = new Float64Array(classes);
  let kl = 0;
  for (let r = 0; r < positions; r++) {
    distribution(ref, r * classes, classes, p);
    distribution(got, r * classes, classes, q);
    for (let c = 0; c < classes; c++) if (p[c]! > 0) kl += p[c]! * Math.log(p[c]! / Math.max(q[c]!, 1e-12));
  }
  return { sum: kl, positions };
}

/**
 * Mean over positions of KL(ref || got). A smooth divergence: argmax agreement moves in whole
 * steps and ties between candidates that each flip nothing, KL does not, so it ranks layers where
 * the agreement cannot.
 */
export function meanKl(ref: ArrayLike<number>, got: ArrayLike<number>, classes: number): number {
  const { sum, positions } = klSum(ref, got, classes);
  return positions ? sum / positions : 0;
}

/** Intersection and union of the two maps binarised at MASK_THRESHOLD. */
export function maskCounts(a: ArrayLike<number>, b: ArrayLike<number>): number[] {
  let inter = 0,
    union = 0;
  for (let i = 0; i < a.length; i++) {
    const ma = a[i]! > MASK_THRESHOLD,
      mb = b[i]! > MASK_THRESHOLD;
    if (ma && mb) inter++;
    if (ma || mb) union++;
  }
  return [inter, union];
}

/** IoU of two probability maps binarised at MASK_THRESHOLD: what DB cuts text boxes from (1 when both are empty). */
export function maskIoU(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const [inter, union] = maskCounts(a, b);
  return union ? inter! / union : 1;
}

const classesOf = (dims: readonly number[]): number => dims[dims.length - 1] ?? 1;
const ratio = (n: number, d: number, empty: number): number => (d ? n / d : empty);

export const METRICS = {
  cosine: {
    describe: 'cosine similarity of the flattened outputs (1 = same direction)',
    best: 1,
    worst: -1,
    over: 'pooled',
    combine: 'sum',
    stats: (a, b) => dotStats(a, b),
    value: ([ab, aa, bb]) => cosineOf(ab!, aa!, bb!),
  },
  snrDb: {
    describe: 'signal-to-noise ratio in dB: 10 log10(sum ref^2 / sum (ref - out)^2), infinite when equal',
    best: Infinity,
    worst: -Infinity,
    over: 'pooled',
    combine: 'sum',
    stats: (a, b) => {
      let rr = 0,
        err = 0;
      for (let i = 0; i < a.length; i++) {
        const d = b[i]! - a[i]!;
        rr += a[i]! * a[i]!;
        err += d * d;
      }
      return [rr, err];
    },
    value: ([rr, err]) => (err === 0 ? Infinity : rr === 0 ? -Infinity : 10 * Math.log10(rr! / err!)),
  },
  maxAbsErr: {
    describe: 'largest absolute difference of any value (NaN when a value is NaN)',
    best: 0,
    worst: Infinity,
    over: 'pooled',
    combine: 'max',
    stats: (a, b) => {
      let m = 0;
      for (let i = 0; i < a.length; i++) {
        const d = b[i]! - a[i]!;
        if (Math.abs(d) > m || Number.isNaN(d)) m = Math.abs(d);
      }
      return [m];
    },
    value: ([m]) => m!,
  },
  relL2: {
    describe: 'relative L2 error ||out - ref|| / ||ref|| (0 when the reference is zero)',
    best: 0,
    worst: Infinity,
    over: 'mean',
    combine: 'sum',
    stats: (a, b) => {
      let aa = 0,
        dd = 0;
      for (let i = 0; i < a.length; i++) {
        aa += a[i]! * a[i]!;
        dd += (a[i]! - b[i]!) ** 2;
      }
      return [dd, aa];
    },
    value: ([dd, aa]) => (aa ? Math.sqrt(dd! / aa) : 0),
  },
  sse: {
    describe: "sum of squared differences (prune's held-out check of a refit against the teacher)",
    best: 0,
    worst: Infinity,
    over: 'pooled',
    combine: 'sum',
    stats: (a, b) => {
      let e = 0;
      for (let i = 0; i < a.length; i++) e += (b[i]! - a[i]!) ** 2;
      return [e];
    },
    value: ([e]) => e!,
  },
  top1: {
    describe: 'share of positions (rows over the last axis) whose argmax agrees with the reference',
    best: 1,
    worst: 0,
    over: 'pooled',
    combine: 'sum',
    stats: (a, b, dims) => {
      const r = argmaxAgreement(a, b, classesOf(dims));
      return [r.agree, r.positions];
    },
    value: ([n, d]) => ratio(n!, d!, 1),
  },
  top5: {
    describe: "share of positions whose reference argmax is among the output's 5 largest",
    best: 1,
    worst: 0,
    over: 'pooled',
    combine: 'sum',
    stats: (a, b, dims) => {
      const r = topKHits(a, b, classesOf(dims), 5);
      return [r.hits, r.positions];
    },
    value: ([n, d]) => ratio(n!, d!, 1),
  },
  kl: {
    describe: 'mean over positions of KL(ref || out), rows over the last axis as distributions',
    best: 0,
    worst: Infinity,
    over: 'mean',
    combine: 'sum',
    stats: (a, b, dims) => {
      const r = klSum(a, b, classesOf(dims));
      return [r.sum, r.positions];
    },
    // (clamped: rounding and the 1e-12 floor can leave a tiny negative sum for rows that agree)
    value: ([sum, n]) => Math.max(0, n ? sum! / n : 0),
  },
  maskIoU: {
    describe: `IoU of single-channel probability maps binarised at ${MASK_THRESHOLD} (text detection)`,
    best: 1,
    worst: 0,
    over: 'pooled',
    combine: 'sum',
    stats: (a, b) => maskCounts(a, b),
    value: ([inter, union]) => ratio(inter!, union!, 1),
  },
} as const satisfies Record<string, MetricDef>;

export type MetricName = keyof typeof METRICS;
export const METRIC_NAMES = Object.keys(METRICS) as MetricName[];
