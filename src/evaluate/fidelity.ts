// Fidelity of a model's outputs against a reference's on the same inputs, and accuracy against
// labels. Sums run in float64 over all samples of an output; an output equal bit for bit has
// cosine exactly 1 and infinite SNR (no rounding can make a model differ from itself).
import { EdgefitError } from '../errors.js';
import { ndToFloat64, shapeStr, type NdArray } from '../data/ndarray.js';
import type { AccuracyReport, FidelityMetric, FidelityReport, OutputFidelity } from './types.js';

type Outputs = Record<string, NdArray>;

/** Scores over classes: float, last dim C >= 2, at most one non-unit leading dim. */
export function isClassifierLike(a: NdArray): boolean {
  if (!['float32', 'float64', 'float16'].includes(a.dtype)) return false;
  const c = a.shape[a.shape.length - 1] ?? 0;
  if (c < 2 || c > 100000) return false;
  const lead = a.shape.slice(0, -1).filter((d) => d !== 1);
  return a.shape.length <= 2 || lead.length <= 1 && a.shape.length <= 3;
}

function topK(v: Float64Array, off: number, c: number, k: number): number[] {
  const idx: number[] = [];
  for (let j = 0; j < c; j++) {
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

export function argmax(v: Float64Array, off = 0, c = v.length - off): number {
  let best = 0;
  for (let j = 1; j < c; j++) if (v[off + j]! > v[off + best]!) best = j;
  return best;
}

function sameBits(a: NdArray, b: NdArray): boolean {
  if (a.dtype !== b.dtype || a.data.byteLength !== b.data.byteLength) return false;
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  return Buffer.compare(x, y) === 0;
}

/** Compare per output over all samples. `names` fixes the output order of the report. */
export function compareOutputs(cand: readonly Outputs[], ref: readonly Outputs[], names: readonly string[]): OutputFidelity[] {
  if (cand.length !== ref.length) throw new EdgefitError('INTERNAL', `compare: ${cand.length} vs ${ref.length} samples`);
  return names.map((name) => {
    let dot = 0, aa = 0, bb = 0, err = 0, maxAbs = 0;
    let equal = true;
    let rows = 0, top1 = 0, top5 = 0;
    let classifier = cand.length > 0;
    let c = 0;
    for (let s = 0; s < cand.length; s++) {
      const a = cand[s]![name];
      const b = ref[s]![name];
      if (!a || !b) throw new EdgefitError('EVAL', `output '${name}' missing from ${a ? 'the reference' : 'the model'}'s results`);
      if (shapeStr(a.shape) !== shapeStr(b.shape)) {
        throw new EdgefitError('EVAL', `output '${name}' has shape ${shapeStr(a.shape)} but the reference's is ${shapeStr(b.shape)}`);
      }
      equal &&= sameBits(a, b);
      const x = ndToFloat64(a);
      const y = ndToFloat64(b);
      for (let i = 0; i < x.length; i++) {
        const u = x[i]!, v = y[i]!;
        dot += u * v;
        aa += u * u;
        bb += v * v;
        const d = u - v;
        err += d * d;
        if (Math.abs(d) > maxAbs || Number.isNaN(d)) maxAbs = Math.abs(d);
      }
      classifier &&= isClassifierLike(a);
      if (classifier) {
        c = a.shape[a.shape.length - 1]!;
        for (let off = 0; off < x.length; off += c) {
          const rt = argmax(y, off, c);
          const ct = topK(x, off, c, 5);
          rows++;
          if (ct[0] === rt) top1++;
          if (ct.includes(rt)) top5++;
        }
      }
    }
    let cosine: number;
    if (equal) cosine = 1;
    else if (aa === 0 && bb === 0) cosine = 1;
    else if (aa === 0 || bb === 0) cosine = 0;
    else cosine = Math.max(-1, Math.min(1, dot / Math.sqrt(aa * bb)));
    const snrDb = equal || err === 0 ? Infinity : bb === 0 ? -Infinity : 10 * Math.log10(bb / err);
    const f: OutputFidelity = { name, cosine, snrDb, maxAbsErr: equal ? 0 : maxAbs };
    if (classifier && rows > 0) {
      f.top1Agreement = top1 / rows;
      if (c > 5) f.top5Agreement = top5 / rows;
    }
    return f;
  });
}

/** Roll per-output figures into the headline report. */
export function summarizeFidelity(per: OutputFidelity[], metric: FidelityMetric, samples: number, synthetic: boolean): FidelityReport {
  const min = (xs: number[]) => xs.reduce((m, x) => Math.min(m, x), Infinity);
  const cls = per.filter((p) => p.top1Agreement !== undefined);
  const top5s = per.filter((p) => p.top5Agreement !== undefined);
  let chosen: FidelityReport['metric'];
  if (metric === 'auto') chosen = cls.length ? 'top1' : 'cosine';
  else chosen = metric;
  if (chosen === 'top1' && !cls.length) throw new EdgefitError('USAGE', 'fidelity metric top1 needs a classifier-like output ([N, classes] scores); none found');
  if (chosen === 'top5' && !top5s.length) throw new EdgefitError('USAGE', 'fidelity metric top5 needs a classifier-like output with more than 5 classes; none found');
  const cosine = min(per.map((p) => p.cosine));
  const value =
    chosen === 'top1' ? min(cls.map((p) => p.top1Agreement!)) : chosen === 'top5' ? min(top5s.map((p) => p.top5Agreement!)) : Math.max(0, cosine);
  const r: FidelityReport = {
    value,
    metric: chosen,
    cosine,
    snrDb: min(per.map((p) => p.snrDb)),
    maxAbsErr: per.reduce((m, p) => Math.max(m, p.maxAbsErr), 0),
    perOutput: per,
    samples,
    synthetic,
  };
  if (cls.length) r.top1Agreement = min(cls.map((p) => p.top1Agreement!));
  if (top5s.length) r.top5Agreement = min(top5s.map((p) => p.top5Agreement!));
  return r;
}

/** Accuracy of argmax over the first classifier-like output against integer labels. */
export function accuracy(outputs: readonly Outputs[], labels: readonly number[], names: readonly string[]): AccuracyReport {
  if (outputs.length !== labels.length) throw new EdgefitError('INTERNAL', `accuracy: ${outputs.length} outputs for ${labels.length} labels`);
  const name = names.find((n) => outputs[0]?.[n] && isClassifierLike(outputs[0][n]!));
  if (!name) throw new EdgefitError('DATA', 'labels given, but the model has no classifier-like output ([N, classes] scores) to compare them with');
  let correct = 0, total = 0;
  outputs.forEach((o, s) => {
    const a = o[name]!;
    const c = a.shape[a.shape.length - 1]!;
    const x = ndToFloat64(a);
    const rows = x.length / c;
    if (rows !== 1) throw new EdgefitError('DATA', `accuracy: output '${name}' has ${rows} rows per sample; labelled samples must be batch 1`);
    if (argmax(x, 0, c) === labels[s]) correct++;
    total++;
  });
  return { value: correct / total, correct, total, output: name };
}
