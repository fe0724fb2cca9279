// Data-aware weight rounding for static int8: what a weighted layer computes is W x, so the
// rounding that matters is the one that keeps W_q x close to W x on the inputs the layer really
// sees, not the one closest to W element by element. From calibration activations we keep, per
// layer (per group for grouped convs), the second moment H = E[x x^T] and the mean E[x] of the
// input rows (im2col patches for Conv). Then, per output channel:
//  - 'bias'     round to nearest, then fold the mean output shift (W - W_q) E[x] into the bias
//               (Nagel et al. 2019, bias correction);
//  - 'adaround' choose round-up or round-down per weight (AdaRound's choice set) by coordinate
//               descent on (w - w_q)^T H (w - w_q), starting from nearest, then bias correction.
//               No gradients: each flip's effect on the quadratic is known in closed form.
// Both only change which int8 values and biases are stored: the graph and kernels are the same.
import * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import { Graph } from '../../ir/graph.js';
import { modelOf } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { openSession } from '../../runtime/runner.js';
import { packWeight, type QuantizedWeight } from './weights.js';

export const WEIGHT_ROUNDINGS = ['nearest', 'bias', 'adaround'] as const;
export type WeightRounding = (typeof WEIGHT_ROUNDINGS)[number];

/** How a layer's input rows are formed and how its weight indexes (output channel, row element). */
export interface LayerGeometry {
  op: 'Conv' | 'MatMul' | 'Gemm';
  /** Input value the rows come from. */
  input: string;
  /** Row length (per group for Conv). */
  k: number;
  outChannels: number;
  groups: number;
  /** Flat weight index of element i of output channel c's row. */
  index: (c: number, i: number) => number;
  /** Conv only: kernel, strides, pads [top, left, bottom, right], dilations. */
  conv?: { kh: number; kw: number; sh: number; sw: number; pads: number[]; dh: number; dw: number; cinPerGroup: number };
}

/** Geometry of a Conv (2-D, explicit pads), MatMul or Gemm with a constant weight; undefined when not supported. */
export function layerGeometry(g: Graph, n: Node): LayerGeometry | undefined {
  const w = g.constant(n.inputs[1] ?? '');
  if (!w || w.dtype !== 'float32') return undefined;
  const d = w.dims;
  if (n.opType === 'Conv') {
    if (d.length !== 4) return undefined;
    const ap = n.attrString('auto_pad');
    if (ap && ap !== 'NOTSET') return undefined;
    const groups = n.attrInt('group', 1);
    const [cout, cg, kh, kw] = d as [number, number, number, number];
    const k = cg * kh * kw;
    const s = n.attrInts('strides') ?? [1, 1];
    const p = n.attrInts('pads') ?? [0, 0, 0, 0];
    const dl = n.attrInts('dilations') ?? [1, 1];
    return {
      op: 'Conv',
      input: n.inputs[0]!,
      k,
      outChannels: cout,
      groups,
      index: (c, i) => c * k + i,
      conv: { kh, kw, sh: s[0]!, sw: s[1]!, pads: p, dh: dl[0]!, dw: dl[1]!, cinPerGroup: cg },
    };
  }
  if (d.length !== 2) return undefined;
  const [r, c] = d as [number, number];
  if (n.opType === 'MatMul') return { op: 'MatMul', input: n.inputs[0]!, k: r, outChannels: c, groups: 1, index: (ch, i) => i * c + ch };
  if (n.opType === 'Gemm' && n.attrInt('transA', 0) === 0) {
    return n.attrInt('transB', 0) === 1
      ? { op: 'Gemm', input: n.inputs[0]!, k: c, outChannels: r, groups: 1, index: (ch, i) => ch * c + i }
      : { op: 'Gemm', input: n.inputs[0]!, k: r, outChannels: c, groups: 1, index: (ch, i) => i * c + ch };
  }
  return undefined;
}

/**
 * X^T X and the column sums of row blocks [G, N, K], computed by onnxruntime (its batched
 * sgemm is tens of times faster than a JS loop: rec's 2880-long neck rows took seconds a crop).
 */
export class Gram {
  private constructor(private readonly s: ort.InferenceSession) {}

  static async open(threads = 2): Promise<Gram> {
    const g = new Graph();
    g.name = 'edgefit_gram';
    g.inputs.push({ name: 'p', type: { dtype: 'float32', shape: ['g', 'n', 'k'] } });
    g.setInitializer(Tensor.fromInt64('axes', [1], [1]));
    g.addNode({ name: 't', opType: 'Transpose', inputs: ['p'], outputs: ['pt'], attrs: { perm: { type: 'ints', value: [0, 2, 1] } } });
    g.addNode({ name: 'mm', opType: 'MatMul', inputs: ['pt', 'p'], outputs: ['h'] });
    g.addNode({ name: 'sum', opType: 'ReduceSum', inputs: ['p', 'axes'], outputs: ['s'], attrs: { keepdims: { type: 'int', value: 0 } } });
    g.outputs.push(
      { name: 'h', type: { dtype: 'float32', shape: ['g', 'k', 'k'] } },
      { name: 's', type: { dtype: 'float32', shape: ['g', 'k'] } },
    );
    const m = modelOf(g, { producer: 'edgefit' });
    return new Gram(await openSession(m, { threads }));
  }

  async run(p: Float32Array, groups: number, rows: number, k: number): Promise<{ h: Float32Array; s: Float32Array }> {
    const r = await this.s.run({ p: new ort.Tensor('float32', p, [groups, rows, k]) });
    return { h: r.h!.data as Float32Array, s: r.s!.data as Float32Array };
  }

  release(): Promise<void> {
    return this.s.release();
  }
}

/** Conv output positions sampled per input batch by default. */
export const ROWS_PER_BATCH = 512;

/** Running sums of x x^T and x over one layer's input rows, per group. */
export class LayerInputStats {
  readonly h: Float64Array[];
  readonly sum: Float64Array[];
  rows = 0;

  /** `maxRows`: Conv output positions sampled per input batch (all of them when Infinity). */
  constructor(
    readonly geo: LayerGeometry,
    readonly maxRows = ROWS_PER_BATCH,
  ) {
    const k = geo.k;
    this.h = Array.from({ length: geo.groups }, () => new Float64Array(k * k));
    this.sum = Array.from({ length: geo.groups }, () => new Float64Array(k));
  }

  /** Row blocks [G, n, K] not yet summed: wide layers see few rows a crop, and a K x K sum per crop dominated. */
  private pending: { p: Float32Array; rows: number }[] = [];
  private pendingRows = 0;

  private async push(p: Float32Array, rows: number, gram: Gram): Promise<void> {
    this.pending.push({ p, rows });
    this.pendingRows += rows;
    if (this.pendingRows * this.geo.k * this.geo.groups >= 1 << 22) await this.flush(gram);
  }

  /** Sum the buffered rows in (call once the last batch is added). */
  async flush(gram: Gram): Promise<void> {
    if (!this.pending.length) return;
    const { groups, k } = this.geo;
    const n = this.pendingRows;
    let p = this.pending[0]!.p;
    if (this.pending.length > 1) {
      p = new Float32Array(groups * n * k);
      let at = 0;
      for (const c of this.pending) {
        for (let gi = 0; gi < groups; gi++) p.set(c.p.subarray(gi * c.rows * k, (gi + 1) * c.rows * k), (gi * n + at) * k);
        at += c.rows;
      }
    }
    this.pending = [];
    this.pendingRows = 0;
    this.accumulate(await gram.run(p, groups, n, k), n);
  }

  private accumulate(r: { h: Float32Array; s: Float32Array }, rows: number): void {
    const k = this.geo.k;
    for (let gi = 0; gi < this.geo.groups; gi++) {
      const h = this.h[gi]!;
      const s = this.sum[gi]!;
      for (let i = 0; i < k * k; i++) h[i]! += r.h[gi * k * k + i]!;
      for (let i = 0; i < k; i++) s[i]! += r.s[gi * k + i]!;
    }
    this.rows += rows;
  }

  /**
   * Add one activation tensor (the layer's input as onnxruntime computed it). Conv inputs become
   * im2col rows, zero where the kernel overlaps the padding: those outputs exist too.
   */
  async add(data: Float32Array, dims: readonly number[], gram: Gram): Promise<void> {
    const geo = this.geo;
    const k = geo.k;
    if (!geo.conv) {
      if (dims[dims.length - 1] !== k)
        throw new EdgefitError('INTERNAL', `layer input rows of ${dims[dims.length - 1]} for a weight of ${k} rows`);
      await this.push(data, data.length / k, gram);
      return;
    }
    if (dims.length !== 4) throw new EdgefitError('INTERNAL', `Conv input of rank ${dims.length}`);
    const [b, ch, hh, ww] = dims as [number, number, number, number];
    const { kh, kw, sh, sw, pads, dh, dw, cinPerGroup } = geo.conv;
    if (ch !== cinPerGroup * geo.groups)
      throw new EdgefitError('INTERNAL', `Conv input has ${ch} channels, weight expects ${cinPerGroup * geo.groups}`);
    const oh = Math.floor((hh + pads[0]! + pads[2]! - dh * (kh - 1) - 1) / sh) + 1;
    const ow = Math.floor((ww + pads[1]! + pads[3]! - dw * (kw - 1) - 1) / sw) + 1;
    // at most ROWS_PER_BATCH output positions, spread evenly: a 25-weight depthwise row needs
    // far fewer samples than a 12x80 map has, and im2col of every position cost seconds per crop
    const all = b * oh * ow;
    const rows = Math.min(all, this.maxRows);
    const p = new Float32Array(geo.groups * rows * k);
    for (let gi = 0; gi < geo.groups; gi++) {
      for (let r = 0; r < rows; r++) {
        const pos = Math.floor((r * all) / rows);
        const bi = Math.floor(pos / (oh * ow));
        const oy = Math.floor(pos / ow) % oh;
        const ox = pos % ow;
        let o = (gi * rows + r) * k;
        for (let ci = 0; ci < cinPerGroup; ci++) {
          const base = (bi * ch + gi * cinPerGroup + ci) * hh * ww;
          for (let ky = 0; ky < kh; ky++) {
            const iy = oy * sh - pads[0]! + ky * dh;
            const inY = iy >= 0 && iy < hh;
            for (let kx = 0; kx < kw; kx++, o++) {
              const ix = ox * sw - pads[1]! + kx * dw;
              if (inY && ix >= 0 && ix < ww) p[o] = data[base + iy * ww + ix]!;
            }
          }
        }
      }
    }
    await this.push(p, rows, gram);
  }

  /**
   * The matrix the rounding minimises, per group, full and symmetric, per input row: E[x x^T],
   * or the covariance E[x x^T] - E[x] E[x]^T when a bias absorbs the mean error afterwards.
   * A small multiple of the mean diagonal is added: with fewer calibration rows than weights per
   * row the estimate is singular, and unseen directions must not be free to grow.
   */
  matrix(gi: number, centered: boolean, damp: number): { m: Float64Array; mean: Float64Array } {
    if (this.pending.length) throw new EdgefitError('INTERNAL', 'layer statistics read before flush()');
    const k = this.geo.k;
    const n = Math.max(1, this.rows);
    const h = this.h[gi]!;
    const mean = Float64Array.from(this.sum[gi]!, (v) => v / n);
    const m = new Float64Array(k * k);
    // symmetrised: float32 sums of the two triangles may differ in the last bits
    for (let i = 0; i < k; i++) {
      for (let j = i; j < k; j++) {
        const v = (h[i * k + j]! + h[j * k + i]!) / (2 * n) - (centered ? mean[i]! * mean[j]! : 0);
        m[i * k + j] = v;
        m[j * k + i] = v;
      }
    }
    let diag = 0;
    for (let i = 0; i < k; i++) diag += m[i * k + i]!;
    const add = (damp * diag) / k || 1e-12;
    for (let i = 0; i < k; i++) m[i * k + i]! += add;
    return { m, mean };
  }
}

/** e^T M e for a symmetric k x k matrix. */
export function quadratic(m: Float64Array, e: ArrayLike<number>, k: number): number {
  let s = 0;
  for (let i = 0; i < k; i++) {
    const ei = e[i]!;
    if (ei === 0) continue;
    let r = 0;
    for (let j = 0; j < k; j++) r += m[i * k + j]! * e[j]!;
    s += ei * r;
  }
  return s;
}

/**
 * Integer row minimising (w - s q)^T M (w - s q) with each q_i in {floor(w_i/s), ceil(w_i/s)}
 * (and |q_i| <= qmax): coordinate descent from round-to-nearest, a flip kept when it lowers the
 * quadratic. Never worse than nearest on M (every accepted step lowers it).
 */
export function adaroundRow(
  w: ArrayLike<number>,
  s: number,
  qmax: number,
  m: Float64Array,
  k: number,
  passes = 4,
): { q: Int8Array; errNearest: number; err: number } {
  const q = new Int8Array(k);
  const e = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    const v = Math.max(-qmax, Math.min(qmax, Math.round(w[i]! / s)));
    q[i] = v;
    e[i] = w[i]! - s * v;
  }
  // g = M e, kept current as flips change e
  const g = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    const ei = e[i]!;
    if (ei === 0) continue;
    for (let j = 0; j < k; j++) g[j]! += m[i * k + j]! * ei;
  }
  // the quadratic is e.g = e^T M e, kept current by adding each flip's change
  let err = 0;
  for (let i = 0; i < k; i++) err += e[i]! * g[i]!;
  const errNearest = err;
  for (let p = 0; p < passes; p++) {
    let flips = 0;
    for (let i = 0; i < k; i++) {
      const t = w[i]! / s;
      const cur = q[i]!;
      if (t === cur) continue;
      const alt = t > cur ? cur + 1 : cur - 1;
      if (alt > qmax || alt < -qmax || Math.abs(alt - t) >= 1) continue; // stay on floor/ceil
      const de = s * (cur - alt); // e_i' - e_i
      const dl = 2 * de * g[i]! + de * de * m[i * k + i]!;
      if (!(dl < 0)) continue;
      q[i] = alt;
      e[i]! += de;
      err += dl;
      for (let j = 0; j < k; j++) g[j]! += de * m[j * k + i]!;
      flips++;
    }
    if (flips === 0) break;
  }
  return { q, errNearest, err };
}

export interface RoundedWeight {
  q: Int8Array;
  scales: Float32Array;
  axis: number | undefined;
  /** Per output channel: add to the float bias, (W - W_q) E[x]. */
  biasShift: Float64Array | undefined;
  /** Sum over channels of the quadratic error on M, before (nearest) and after. */
  errNearest: number;
  err: number;
}

export interface RoundOptions {
  method: WeightRounding;
  reduceRange: boolean;
  /** Per-channel scales (the default) or one scale for the tensor. */
  axis: number | undefined;
  /** Whether the node has a bias the mean error can go into. */
  hasBias: boolean;
  damp?: number;
}

/** Round `w` with the chosen method on the layer's input statistics. */
export function roundWeight(w: Tensor, st: LayerInputStats, o: RoundOptions): RoundedWeight {
  const geo = st.geo;
  const data = w.toFloat32();
  const qmax = o.reduceRange ? 63 : 127;
  const k = geo.k;
  const perGroup = geo.outChannels / geo.groups;
  // symmetric max-abs scales, as quantizeWeight: the rounding, not the grid, is what changes
  const scales = new Float32Array(o.axis === undefined ? 1 : geo.outChannels);
  if (o.axis === undefined) {
    let mx = 0;
    for (const v of data) mx = Math.max(mx, Math.abs(v));
    scales[0] = mx > 0 ? mx / qmax : 1;
  } else {
    for (let c = 0; c < geo.outChannels; c++) {
      let mx = 0;
      for (let i = 0; i < k; i++) mx = Math.max(mx, Math.abs(data[geo.index(c, i)]!));
      scales[c] = mx > 0 ? mx / qmax : 1;
    }
  }
  const q = new Int8Array(data.length);
  const centered = o.hasBias && o.method !== 'nearest';
  const biasShift = o.hasBias && o.method !== 'nearest' ? new Float64Array(geo.outChannels) : undefined;
  const row = new Float64Array(k);
  const e = new Float64Array(k);
  let errNearest = 0;
  let err = 0;
  for (let gi = 0; gi < geo.groups; gi++) {
    const { m, mean } = st.matrix(gi, centered, o.damp ?? 0.01);
    for (let c = gi * perGroup; c < (gi + 1) * perGroup; c++) {
      const s = scales[o.axis === undefined ? 0 : c]!;
      for (let i = 0; i < k; i++) row[i] = data[geo.index(c, i)]!;
      const r = o.method === 'adaround' ? adaroundRow(row, s, qmax, m, k) : undefined;
      const qr = r?.q ?? Int8Array.from(row, (v) => Math.max(-qmax, Math.min(qmax, Math.round(v / s))));
      let shift = 0;
      for (let i = 0; i < k; i++) {
        e[i] = row[i]! - s * qr[i]!;
        shift += e[i]! * mean[i]!;
        q[geo.index(c, i)] = qr[i]!;
      }
      const en = r ? r.errNearest : quadratic(m, e, k);
      errNearest += en;
      err += r ? r.err : en;
      if (biasShift) biasShift[c] = shift;
    }
  }
  return { q, scales, axis: o.axis, biasShift, errNearest, err };
}

/** Int8 weight tensors for a rounded weight, named after `name` like quantizeWeight's. */
export function packRounded(w: Tensor, r: RoundedWeight, name: string): QuantizedWeight {
  return packWeight(name, w.dims, r.q, r.scales, r.axis);
}
