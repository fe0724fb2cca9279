// Recovery without retraining. Two repairs, both from calibration data:
// - bias compensation: a removed input channel c of a layer contributed on average
//   mean(x_c) · Σ W[:, c] to every output; fold that constant into the bias (exact for the mean).
// - least-squares reconstruction (ThiNet / He et al. 2017 style): refit the weights and bias of
//   every layer that lost inputs so that, fed the pruned model's own activations, it reproduces
//   the original (teacher) model's outputs of that layer. A fit that does not lower the error on
//   the calibration rows is discarded, so lsq never makes a layer worse on that data.
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { ModelRunner, type F32Array } from '../../runtime/runner.js';
import type { Sample } from '../../data/inputs.js';
import type { ChannelStats } from '../../calib/stats.js';
import { rng as seededUniform } from '../../util/rng.js';
import { FidelityAccumulator } from '../../fidelity/index.js';
import type { GroupAnalysis } from './groups.js';
import { NormalEquations } from './linalg.js';
import { keptIndices } from './space.js';
import type { AsyncPass, Pass } from '../pass.js';

// 'distill': lsq, then training against the original's outputs (passes/train/distill.ts)
export const RECOVERY = ['none', 'bias', 'lsq', 'distill'] as const;
export type Recovery = (typeof RECOVERY)[number];

/** Output-channel axis of a layer's weight given its input-channel axis. */
function outAxis(n: Node, inAxis: number): number {
  if (n.opType === 'Conv') return 0;
  if (n.opType === 'ConvTranspose') return 1;
  return inAxis === 0 ? 1 : 0; // Gemm / MatMul: the other axis of a 2-D weight
}

/** Values whose statistics bias compensation needs: the inputs of layers that lose input channels. */
export function compensationValues(ga: GroupAnalysis): Map<string, number> {
  const out = new Map<string, number>();
  for (const a of ga.actions) {
    if (a.role !== 'in' && a.role !== 'in-grouped') continue;
    const v = a.node.inputs[0]!;
    const info = ga.values.get(v);
    if (info) out.set(v, info.axis);
  }
  return out;
}

/** Per-layer bias shifts (full output width), computed from the unpruned weights. */
export function biasCompensation(
  g: Graph,
  ga: GroupAnalysis,
  keep: ReadonlyMap<number, readonly number[]>,
  stats: ReadonlyMap<string, ChannelStats>,
): Map<Node, Float64Array> {
  const comps = new Map<Node, Float64Array>();
  for (const a of ga.actions) {
    if (a.role !== 'in' && a.role !== 'in-grouped') continue;
    const n = a.node;
    const st = stats.get(n.inputs[0]!);
    const w = g.initializer(n.inputs[a.input]!);
    if (!st || !w) continue;
    const full = ga.atoms.size(a.space);
    const len = w.dims[a.axis]!;
    const grouped = a.role === 'in-grouped';
    // a grouped Conv's column j of group g's rows reads channel g*len + j (statistics are per channel)
    if (st.mean.length !== (grouped ? full : len)) continue;
    const kept = keptIndices(a.space, ga.atoms, keep, grouped ? 1 : len / full);
    if (kept.length === (grouped ? full : len)) continue;
    const keptSet = new Set(kept);
    const oa = outAxis(n, a.axis);
    const W = w.toFloat32();
    const dims = w.dims;
    const strides = dims.map((_, i) => dims.slice(i + 1).reduce((p, q) => p * q, 1));
    const comp = comps.get(n) ?? new Float64Array(dims[oa]!);
    const rowsPer = grouped ? dims[oa]! / a.groups! : 0;
    // Σ over the removed inputs c and every other (spatial) index of W[o, c, ...] · mean_c
    for (let idx = 0; idx < W.length; idx++) {
      const o = Math.floor(idx / strides[oa]!) % dims[oa]!;
      const j = Math.floor(idx / strides[a.axis]!) % dims[a.axis]!;
      const c = grouped ? Math.floor(o / rowsPer) * len + j : j;
      if (keptSet.has(c)) continue;
      comp[o] += W[idx]! * st.mean[c]!;
    }
    comps.set(n, comp);
  }
  return comps;
}

/** Add `delta` (already restricted to kept outputs) to the layer's bias, creating one if needed. */
export function addToBias(g: Graph, n: Node, delta: ArrayLike<number>): boolean {
  let idx = n.opType === 'MatMul' ? -1 : 2;
  let target = n;
  if (n.opType === 'MatMul') {
    // exporters write Linear as MatMul + Add(bias)
    const cs = g.consumers(n.outputs[0]!);
    const add = cs.length === 1 && cs[0]!.opType === 'Add' ? cs[0]! : undefined;
    if (!add) return false;
    idx = add.inputs.findIndex((v) => v !== n.outputs[0] && g.constant(v));
    if (idx < 0) return false;
    target = add;
  }
  const name = target.inputs[idx];
  const b = name ? g.constant(name) : undefined;
  if (name && (!b || b.dtype !== 'float32' || b.size !== delta.length)) return false;
  const vals = b ? Float32Array.from(b.toFloat32()) : new Float32Array(delta.length);
  for (let i = 0; i < vals.length; i++) vals[i] += delta[i]!;
  const shared = name ? g.consumers(name).length > 1 : true;
  const outName = !name || shared ? g.uniqueName(`${n.outputs[0]}_bias`) : name;
  g.setInitializer(Tensor.fromFloat32(outName, b ? b.dims : [delta.length], vals));
  while (target.inputs.length <= idx) target.inputs.push('');
  target.inputs[idx] = outName;
  g.touch();
  return true;
}

export function applyCompensation(g: Graph, comps: ReadonlyMap<Node, Float64Array>, keptOut: ReadonlyMap<string, number[]>): number {
  let n = 0;
  for (const [node, comp] of comps) {
    const kept = keptOut.get(node.outputs[0]!);
    const delta = kept ? kept.map((o) => comp[o]!) : Array.from(comp);
    if (addToBias(g, node, delta)) n++;
  }
  return n;
}

/**
 * One group of a grouped Conv: its rows [g*Cout/G, (g+1)*Cout/G) read only input channels
 * [g*Cin/G, (g+1)*Cin/G), so the layer's fit splits into G independent fits, one per block
 * (a dense fit over all inputs would fill the weights between groups, which the Conv cannot hold).
 */
interface Block {
  g: number;
  G: number;
}

interface Layer {
  node: Node;
  out: string;
  input: string;
  keptOut: number[] | null;
  blk?: Block;
  ne: NormalEquations;
  /** Current weights as the unknown matrix (d x o, last row = bias). */
  current: Float64Array;
}

/** The layer's weight and bias as a (d+1) x o matrix over its im2col / feature rows. */
function layerMatrix(g: Graph, n: Node, blk?: Block): { W: Float64Array; d: number; o: number } | null {
  const w = g.initializer(n.inputs[1]!);
  if (!w || w.dtype !== 'float32') return null;
  const f = w.toFloat32();
  let d: number, o: number;
  let at: (row: number, col: number) => number;
  let r0 = 0; // first weight row (and bias entry) of the block
  if (n.opType === 'Conv') {
    const G = n.attrInt('group', 1);
    if (w.dims.length !== 4 || G !== (blk?.G ?? 1) || w.dims[0]! % G !== 0) return null;
    o = w.dims[0]! / G;
    d = f.length / w.dims[0]!;
    r0 = (blk?.g ?? 0) * o;
    at = (r, c) => f[(r0 + c) * d + r]!;
  } else if (blk) return null;
  else if (n.opType === 'Gemm' && n.attrInt('transB', 0) === 1) {
    o = w.dims[0]!;
    d = w.dims[1]!;
    at = (r, c) => f[c * d + r]!;
  } else if (n.opType === 'Gemm' || n.opType === 'MatMul') {
    d = w.dims[0]!;
    o = w.dims[1]!;
    at = (r, c) => f[r * o + c]!;
  } else return null;
  const W = new Float64Array((d + 1) * o);
  for (let r = 0; r < d; r++) for (let c = 0; c < o; c++) W[r * o + c] = at(r, c);
  const biasName = n.opType === 'MatMul' ? undefined : n.inputs[2];
  const b = biasName ? g.constant(biasName) : undefined;
  if (b && b.size === o * (blk?.G ?? 1)) {
    const bf = b.toFloat32();
    for (let c = 0; c < o; c++) W[d * o + c] = bf[r0 + c]!;
  }
  return { W, d, o };
}

/** Rows (x with a trailing 1, y) of one sample for one layer, sampling at most `maxRows` positions. */
function* layerRows(
  n: Node,
  x: F32Array,
  y: F32Array,
  keptOut: number[] | null,
  maxRows: number,
  next: () => number,
  blk?: Block,
): Generator<[Float64Array, Float64Array]> {
  let oIdx = keptOut ?? Array.from({ length: n.opType === 'Conv' ? y.shape[1]! : y.shape[y.shape.length - 1]! }, (_, i) => i);
  if (n.opType === 'Conv') {
    const [N, Cx, H, Wd] = x.shape as [number, number, number, number];
    // a grouped Conv's block reads its own input channels and writes its own outputs
    const C = Cx / (blk?.G ?? 1),
      c0 = (blk?.g ?? 0) * C;
    if (blk) oIdx = oIdx.slice(blk.g * (oIdx.length / blk.G), (blk.g + 1) * (oIdx.length / blk.G));
    const [, O, OH, OW] = y.shape as [number, number, number, number];
    const k = n.attrInts('kernel_shape')!;
    const s = n.attrInts('strides') ?? [1, 1];
    const p = n.attrInts('pads') ?? [0, 0, 0, 0];
    const dl = n.attrInts('dilations') ?? [1, 1];
    const total = N * OH * OW;
    const take = Math.min(total, maxRows);
    for (let r = 0; r < take; r++) {
      const pos = take === total ? r : Math.floor(next() * total);
      const b = Math.floor(pos / (OH * OW)),
        oy = Math.floor(pos / OW) % OH,
        ox = pos % OW;
      const row = new Float64Array(C * k[0]! * k[1]! + 1);
      let j = 0;
      for (let c = 0; c < C; c++) {
        for (let ky = 0; ky < k[0]!; ky++) {
          const iy = oy * s[0]! - p[0]! + ky * dl[0]!;
          for (let kx = 0; kx < k[1]!; kx++, j++) {
            const ix = ox * s[1]! - p[1]! + kx * dl[1]!;
            if (iy >= 0 && iy < H && ix >= 0 && ix < Wd) row[j] = x.data[((b * Cx + c0 + c) * H + iy) * Wd + ix]!;
          }
        }
      }
      row[j] = 1;
      const t = new Float64Array(oIdx.length);
      for (let q = 0; q < oIdx.length; q++) t[q] = y.data[((b * O + oIdx[q]!) * OH + oy) * OW + ox]!;
      yield [row, t];
    }
    return;
  }
  const K = x.shape[x.shape.length - 1]!;
  const O = y.shape[y.shape.length - 1]!;
  const total = x.data.length / K;
  const take = Math.min(total, maxRows);
  for (let r = 0; r < take; r++) {
    const pos = take === total ? r : Math.floor(next() * total);
    const row = new Float64Array(K + 1);
    for (let j = 0; j < K; j++) row[j] = x.data[pos * K + j]!;
    row[K] = 1;
    const t = new Float64Array(oIdx.length);
    for (let q = 0; q < oIdx.length; q++) t[q] = y.data[pos * O + oIdx[q]!]!;
    yield [row, t];
  }
}

/** Write a (d+1) x o solution back into the layer's weight and bias. */
function writeLayer(g: Graph, n: Node, W: Float64Array, d: number, o: number, blk?: Block): boolean {
  const w = g.initializer(n.inputs[1]!)!;
  // a block rewrites its own rows and keeps the other groups'
  const f = blk ? Float32Array.from(w.toFloat32()) : new Float32Array(d * o);
  const r0 = blk ? blk.g * o : 0;
  const trans = n.opType === 'Conv' || (n.opType === 'Gemm' && n.attrInt('transB', 0) === 1);
  for (let r = 0; r < d; r++) for (let c = 0; c < o; c++) f[trans ? (r0 + c) * d + r : r * o + c] = W[r * o + c]!;
  const shared = g.consumers(w.name).length > 1;
  const name = shared ? g.uniqueName(`${w.name}_lsq`) : w.name;
  g.setInitializer(Tensor.fromFloat32(name, w.dims, f));
  n.inputs[1] = name;
  g.touch();
  // the bias row: replace the bias by the fitted one (delta from the current)
  const cur = layerMatrix(g, n, blk);
  if (!cur) return false;
  const delta = new Float64Array(o * (blk?.G ?? 1));
  for (let c = 0; c < o; c++) delta[r0 + c] = W[d * o + c]! - cur.W[d * o + c]!;
  return addToBias(g, n, delta) || delta.every((x) => Math.abs(x) < 1e-12);
}

export interface LsqReport {
  /** Fits attempted: one per layer, one per group of a grouped Conv. */
  layers: number;
  refit: number;
  /** Mean relative reconstruction error over refit layers, before and after (held-out rows). */
  errBefore: number;
  errAfter: number;
  /** Refits rejected: no ridge value lowered the layer's error on held-out rows. */
  rejected: number;
  /** Chunks of refits undone because the model's output moved away from the teacher's on held-out samples. */
  reverted: number;
  /** Σ‖student − teacher‖² of the first output on the held-out samples, before and after lsq (null without held-out samples). */
  heldOut: { samples: number; before: number; after: number } | null;
}

/** Ridge strengths tried per layer (relative to the mean diagonal of XᵀX); the held-out rows choose. */
export const RIDGES = [1e-3, 1e-2, 1e-1, 1] as const;

/**
 * Held-out calibration samples: one in four (at least one when there are two or more), at
 * alternating parity (3, 6, 11, 14, ...): labelled folders load round-robin over classes, and a
 * held-out set of one class only once approved a cls refit that answers that class for everything.
 */
export function heldOutIndices(n: number): Set<number> {
  const out = new Set<number>();
  if (n < 2) return out;
  for (let i = 0; i < n; i++) if (i % 8 === 3 || i % 8 === 6) out.add(i);
  if (!out.size) out.add(n - 1);
  return out;
}

interface Snapshot {
  node: Node;
  inputs: string[];
  tensors: Map<string, Tensor | undefined>;
}

/** What writeLayer may change on `n` (its inputs, the tensors they name, a MatMul's bias Add). */
function snapshot(g: Graph, n: Node): Snapshot[] {
  const nodes = [n];
  if (n.opType === 'MatMul') {
    const cs = g.consumers(n.outputs[0]!);
    if (cs.length === 1 && cs[0]!.opType === 'Add') nodes.push(cs[0]!);
  }
  return nodes.map((node) => ({
    node,
    inputs: [...node.inputs],
    tensors: new Map(node.inputs.filter(Boolean).map((v) => [v, g.initializer(v)])),
  }));
}

function restore(g: Graph, snaps: readonly Snapshot[]): void {
  const created = new Set<string>();
  // newest first, so a layer snapshotted twice ends in its oldest state
  for (const s of [...snaps].reverse()) {
    for (const v of s.node.inputs) if (v && !s.tensors.has(v)) created.add(v);
    s.node.inputs.length = 0;
    s.node.inputs.push(...s.inputs);
    for (const t of s.tensors.values()) if (t) g.setInitializer(t);
  }
  g.touch();
  // tensors the refit created (private copies, new biases) that nobody reads any more
  for (const v of created) if (g.initializer(v) && !g.consumers(v).length) g.removeInitializer(v);
}

/**
 * The value the held-out check compares: the first graph output, or the logits under a final
 * Sigmoid/Softmax. A saturated output hides every repair: once pruning has pushed det's logits
 * far below zero its map is 0 everywhere, every refit leaves it 0, and judged on the map alone
 * each would be undone although it brought the logits back toward the teacher's.
 */
export function judgedValue(g: Graph): string {
  const out = g.outputs[0]!.name;
  const p = g.producer(out);
  return p && (p.opType === 'Sigmoid' || p.opType === 'Softmax') && p.inputs[0] ? p.inputs[0] : out;
}

async function outputError(student: Model, samples: readonly Sample[], ref: readonly Float32Array[], threads?: number): Promise<number> {
  if (!samples.length) return 0;
  const name = judgedValue(student.graph);
  const r = await ModelRunner.create(student, { threads, ...(name !== student.graph.outputs[0]!.name ? { extraOutputs: [name] } : {}) });
  const sse = new FidelityAccumulator([{ metric: 'sse', over: 'pooled' }], ['v']);
  try {
    for (let i = 0; i < samples.length; i++) {
      const y = (await r.run(samples[i]!, [name])).get(name)!.data;
      const t = ref[i]!;
      sse.add({ v: { dims: [t.length], data: t } }, { v: { dims: [y.length], data: y } });
    }
  } finally {
    await r.release();
  }
  return sse.result().results[0]!.value;
}

/**
 * Least-squares refit of `layers` (output value names) of `student` against `teacher`.
 * Systems wider than `maxDim` unknowns are skipped (too slow to solve on the box).
 *
 * Never worse than no refit, judged on data the fit did not see: one calibration sample in four
 * is held out (heldOutIndices; with a single sample, every other sampled position). Per layer, the ridge strength
 * is chosen among RIDGES by the held-out rows' error, and the refit is kept only if it lowers
 * that error below the current weights'. Per chunk of layers, the refits are undone when the
 * model's output (its logits under a final Sigmoid/Softmax: judgedValue) on the held-out samples
 * moves away from the teacher's.
 */
export async function lsqRecover(
  teacher: Model,
  student: Model,
  layers: readonly string[],
  samples: readonly Sample[],
  opts: { maxDim?: number; rowsPerSample?: number; threads?: number; chunks?: number; ridges?: readonly number[] } = {},
  keptOut: ReadonlyMap<string, number[]> = new Map(),
): Promise<LsqReport> {
  const g = student.graph;
  const maxDim = opts.maxDim ?? 1200;
  const todo: (Layer & { nv: NormalEquations })[] = [];
  for (const out of layers) {
    const n = g.producer(out);
    if (!n || !['Conv', 'Gemm', 'MatMul'].includes(n.opType)) continue;
    const G = n.opType === 'Conv' ? n.attrInt('group', 1) : 1;
    for (let gi = 0; gi < G; gi++) {
      const blk = G > 1 ? { g: gi, G } : undefined;
      const m = layerMatrix(g, n, blk);
      if (!m || m.d + 1 > maxDim) continue;
      todo.push({
        node: n,
        out,
        input: n.inputs[0]!,
        keptOut: keptOut.get(out) ?? null,
        blk,
        ne: new NormalEquations(m.d + 1, m.o),
        nv: new NormalEquations(m.d + 1, m.o),
        current: m.W,
      });
    }
  }
  const none: LsqReport = { layers: 0, refit: 0, errBefore: 0, errAfter: 0, rejected: 0, reverted: 0, heldOut: null };
  if (!todo.length) return none;
  const heldIdx = heldOutIndices(samples.length);
  const held = samples.filter((_, i) => heldIdx.has(i));
  // Sequential in topological order, in chunks: a layer is fitted to the activations the
  // already-repaired layers before it produce (fitting all at once would aim every layer at
  // inputs that the upstream refits then change). Chunks bound the number of inference runs.
  const pos = new Map(g.topoOrder().map((n, i) => [n, i]));
  todo.sort((a, b) => pos.get(a.node)! - pos.get(b.node)!);
  // a grouped Conv's per-group fits stay in one chunk: they share the inputs, and the held-out
  // check must judge the layer's refit whole (fixing one group alone can move the output away
  // when the groups' errors partly cancelled)
  const units: (typeof todo)[] = [];
  for (const l of todo) {
    const last = units[units.length - 1];
    if (last && last[0]!.node === l.node) last.push(l);
    else units.push([l]);
  }
  const chunks = Math.max(1, Math.min(units.length, opts.chunks ?? 8));
  const per = Math.ceil(units.length / chunks);
  const judged = judgedValue(teacher.graph);
  const t = await ModelRunner.create(teacher, {
    extraOutputs: [...todo.map((l) => l.out), ...(judged !== teacher.graph.outputs[0]!.name ? [judged] : [])],
    threads: opts.threads,
  });
  const next = seededUniform(7);
  const rows = opts.rowsPerSample ?? Math.max(64, Math.ceil(4096 / samples.length));
  const ridges = opts.ridges ?? RIDGES;
  let refit = 0,
    rejected = 0,
    reverted = 0,
    before = 0,
    after = 0;
  let heldOut: LsqReport['heldOut'] = null;
  try {
    const ref: Float32Array[] = [];
    for (const s of held) ref.push(Float32Array.from((await t.run(s, [judged])).get(judged)!.data));
    let errNow = held.length ? await outputError(student, held, ref, opts.threads) : 0;
    if (held.length) heldOut = { samples: held.length, before: errNow, after: errNow };
    for (let c0 = 0; c0 < units.length; c0 += per) {
      const chunk = units.slice(c0, c0 + per).flat();
      const s = await ModelRunner.create(student, { extraOutputs: chunk.map((l) => l.input), threads: opts.threads });
      try {
        for (let si = 0; si < samples.length; si++) {
          const sample = samples[si]!;
          const ty = await t.run(
            sample,
            chunk.map((l) => l.out),
          );
          const fetch = [...new Set(chunk.map((l) => l.input))].filter((v) => !sample[v]);
          const sx = fetch.length ? await s.run(sample, fetch) : new Map<string, F32Array>();
          for (const l of chunk) {
            const x = sx.get(l.input) ?? (sample[l.input] as F32Array | undefined);
            const y = ty.get(l.out);
            if (!x || !y) continue;
            let r = 0;
            for (const [row, target] of layerRows(l.node, x, y, l.keptOut, rows, next, l.blk)) {
              const toVal = heldIdx.size ? heldIdx.has(si) : r++ % 2 === 1;
              (toVal ? l.nv : l.ne).add(row, target);
            }
          }
        }
      } finally {
        await s.release();
      }
      const snaps: Snapshot[] = [];
      let b = 0,
        a = 0,
        k = 0;
      for (const l of chunk) {
        // fewer rows than ~2 per unknown would fit the calibration set, not the layer
        if (l.ne.rows < 2 * l.ne.d || !l.nv.rows) continue;
        const e0 = l.nv.error(l.current);
        let best: Float64Array | null = null,
          e1 = e0;
        for (const ridge of ridges) {
          const W = l.ne.solve(ridge);
          if (!W) continue;
          const e = l.nv.error(W);
          if (e < e1) [best, e1] = [W, e];
        }
        if (!best) {
          rejected++;
          continue;
        }
        const snap = snapshot(g, l.node);
        if (!writeLayer(g, l.node, best, l.ne.d - 1, l.ne.o, l.blk)) {
          restore(g, snap);
          continue;
        }
        snaps.push(...snap);
        k++;
        b += e0 / (l.nv.yy || 1);
        a += e1 / (l.nv.yy || 1);
      }
      if (!k) continue;
      if (held.length) {
        const e = await outputError(student, held, ref, opts.threads);
        if (!(e < errNow)) {
          restore(g, snaps);
          reverted++;
          continue;
        }
        errNow = e;
        heldOut!.after = e;
      }
      refit += k;
      before += b;
      after += a;
    }
  } finally {
    await t.release();
  }
  return {
    layers: todo.length,
    refit,
    errBefore: refit ? before / refit : 0,
    errAfter: refit ? after / refit : 0,
    rejected,
    reverted,
    heldOut,
  };
}

/** Bias compensation as a checked pass: `comps` from biasCompensation, measured before the cut. */
export const biasCompensationPass: Pass<
  { comps: ReadonlyMap<Node, Float64Array>; keptOut: ReadonlyMap<string, number[]> },
  { layers: number }
> = {
  name: 'prune-bias-compensation',
  requires: ['valid-graph'],
  // not 'only-shrinks': a layer without a bias gets one
  guarantees: ['stays-valid', 'outputs-kept'],
  run(model, o) {
    const layers = applyCompensation(model.graph, o.comps, o.keptOut);
    return { changed: layers > 0, details: { layers } };
  },
};

export interface LsqPassOptions {
  teacher: Model;
  layers: readonly string[];
  samples: readonly Sample[];
  opts?: Parameters<typeof lsqRecover>[4];
  keptOut?: ReadonlyMap<string, number[]>;
}

/** Least-squares reconstruction as a checked pass on the pruned (student) model. */
export const lsqRecoveryPass: AsyncPass<LsqPassOptions, LsqReport> = {
  name: 'prune-lsq-recovery',
  requires: ['valid-graph'],
  guarantees: ['stays-valid', 'outputs-kept'],
  async run(model, o) {
    const r = await lsqRecover(o.teacher, model, o.layers, o.samples, o.opts, o.keptOut);
    return { changed: r.refit > 0, details: r };
  },
};
