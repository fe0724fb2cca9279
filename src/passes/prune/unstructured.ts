// Unstructured sparsity: zero individual weights of Conv/Gemm/MatMul layers by magnitude or by
// Wanda's |W|·‖X‖ (Sun et al., 2023: the weight times the L2 norm of the input feature it reads),
// per layer or with one global threshold, optionally in N:M patterns (2:4).
// Plainly: onnxruntime's CPU kernels do not skip zeros, so this buys no speed on these boxes.
// What it buys is a smaller compressed model (gzip), for storage and over-the-air updates.
import { gzipSync } from 'node:zlib';
import type { Model } from '../../ir/model.js';
import type { Pass } from '../pass.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { serializeModel } from '../../onnx/index.js';
import type { ChannelStats } from '../../calib/stats.js';

export const UNSTRUCTURED_METHODS = ['magnitude', 'wanda'] as const;
export type UnstructuredMethod = (typeof UNSTRUCTURED_METHODS)[number];

export interface UnstructuredOptions {
  ratio: number;
  method: UnstructuredMethod;
  scope: 'layer' | 'global';
  /** N:M pattern, e.g. [2, 4]: in every M consecutive input weights keep N. Overrides ratio. */
  nm?: [number, number];
  /** Input statistics by value name (for wanda). */
  stats?: ReadonlyMap<string, ChannelStats>;
}

export interface UnstructuredReport {
  layers: number;
  weights: number;
  zeroFraction: number;
  note: string;
}

export const NO_SPEEDUP_NOTE =
  'unstructured sparsity: onnxruntime CPU kernels do not skip zeros, so latency is unchanged; the gain is the compressed (gzip) size';

interface Target {
  node: Node;
  w: Tensor;
  /** Index of the input feature each weight reads. */
  inOf: (i: number) => number;
  inCount: number;
}

function targets(model: Model): Target[] {
  const g = model.graph;
  const out: Target[] = [];
  for (const n of g.nodes) {
    if (!['Conv', 'Gemm', 'MatMul'].includes(n.opType)) continue;
    const w = g.constant(n.inputs[1] ?? '');
    if (!w || w.dtype !== 'float32' || w.dims.length < 2) continue;
    const d = w.dims;
    if (n.opType === 'Conv') {
      const k = d.slice(2).reduce((a, b) => a * b, 1);
      out.push({ node: n, w, inOf: (i) => Math.floor(i / k) % d[1]!, inCount: d[1]! });
    } else if (n.opType === 'Gemm' && n.attrInt('transB', 0) === 1) out.push({ node: n, w, inOf: (i) => i % d[1]!, inCount: d[1]! });
    else out.push({ node: n, w, inOf: (i) => Math.floor(i / d[1]!), inCount: d[0]! });
  }
  return out;
}

/** The values whose input statistics wanda needs (layer inputs, channel axis from the end). */
export function wandaValues(model: Model): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of targets(model)) m.set(t.node.inputs[0]!, t.node.opType === 'Conv' ? 1 - t.w.dims.length : -1);
  return m;
}

function kthSmallest(a: Float64Array, k: number): number {
  if (k <= 0) return -Infinity;
  const s = Float64Array.from(a).sort();
  return s[Math.min(k, s.length) - 1]!;
}

export function pruneUnstructured(model: Model, o: UnstructuredOptions): UnstructuredReport {
  const g = model.graph;
  const ts = targets(model);
  const scores = ts.map((t) => {
    const f = t.w.toFloat32();
    const st = o.method === 'wanda' ? o.stats?.get(t.node.inputs[0]!) : undefined;
    const s = new Float64Array(f.length);
    for (let i = 0; i < f.length; i++)
      s[i] = Math.abs(f[i]!) * (st && st.meanSq.length === t.inCount ? Math.sqrt(st.meanSq[t.inOf(i)]!) : 1);
    return s;
  });
  let global = -Infinity;
  if (o.scope === 'global' && !o.nm) {
    // scale-free across layers: each layer's scores relative to its mean
    const all: number[] = [];
    scores.forEach((s) => {
      const m = s.reduce((a, b) => a + b, 0) / (s.length || 1) || 1;
      for (let i = 0; i < s.length; i++) s[i] = s[i]! / m;
      for (const v of s) all.push(v);
    });
    global = kthSmallest(Float64Array.from(all), Math.floor(all.length * o.ratio));
  }
  let zeros = 0,
    total = 0;
  ts.forEach((t, li) => {
    const f = Float32Array.from(t.w.toFloat32());
    const s = scores[li]!;
    if (o.nm) {
      const [n, m] = o.nm;
      // groups of M consecutive weights along the input axis (the innermost run of one output row)
      const rows = t.w.dims[0]!;
      const per = f.length / rows;
      for (let r = 0; r < rows; r++) {
        for (let st = 0; st + m <= per; st += m) {
          const idx = Array.from({ length: m }, (_, j) => r * per + st + j).sort((a, b) => s[a]! - s[b]!);
          for (const i of idx.slice(0, m - n)) f[i] = 0;
        }
      }
    } else if (o.scope === 'global') {
      for (let i = 0; i < f.length; i++) if (s[i]! <= global) f[i] = 0;
    } else {
      const cut = kthSmallest(s, Math.floor(s.length * o.ratio));
      let left = Math.floor(s.length * o.ratio);
      for (let i = 0; i < f.length && left > 0; i++)
        if (s[i]! <= cut) {
          f[i] = 0;
          left--;
        }
    }
    for (const v of f) if (v === 0) zeros++;
    total += f.length;
    const shared = g.consumers(t.w.name).length > 1;
    const name = shared ? g.uniqueName(`${t.w.name}_sparse`) : t.w.name;
    g.setInitializer(Tensor.fromFloat32(name, t.w.dims, f));
    t.node.inputs[1] = name;
  });
  g.touch();
  return { layers: ts.length, weights: total, zeroFraction: total ? zeros / total : 0, note: NO_SPEEDUP_NOTE };
}

/** Serialized and gzip-compressed sizes: what unstructured sparsity actually saves. */
export function modelSizes(model: Model): { bytes: number; gzipBytes: number } {
  const b = serializeModel(model);
  return { bytes: b.byteLength, gzipBytes: gzipSync(b, { level: 6 }).byteLength };
}

export const unstructuredPrunePass: Pass<UnstructuredOptions, UnstructuredReport> = {
  name: 'prune-unstructured',
  requires: ['valid-graph'],
  // not 'only-shrinks': a weight shared by two layers is copied before one copy is zeroed
  guarantees: ['stays-valid', 'outputs-kept'],
  run(model, o) {
    const r = pruneUnstructured(model, o);
    return { changed: r.zeroFraction > 0, details: r };
  },
};
