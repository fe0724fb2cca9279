// Channel importance, aggregated over a group. Data-free: L1/L2 norms of every weight slice the
// group removes (producers' rows and consumers' columns), each normalised by its mean so a wide
// consumer does not drown a narrow producer. Activation-aware: for each consumer, mean |x_c| of
// the channel on calibration data times the L2 norm of the weights reading it (Wanda-style:
// what the channel actually contributes to the next layer).
import type { Graph } from '../../ir/graph.js';
import type { Tensor } from '../../ir/tensor.js';
import type { Action } from './ops.js';
import type { Group, GroupAnalysis } from './groups.js';
import type { ChannelStats } from '../../calib/stats.js';
import { groupPositions } from './space.js';

export const IMPORTANCE = ['l1', 'l2', 'activation'] as const;
export type Importance = (typeof IMPORTANCE)[number];

/** Per-index norm of `w` along `axis` (all other axes reduced). */
export function axisNorms(w: Float32Array, dims: readonly number[], axis: number, p: 1 | 2): Float64Array {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const n = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  for (let a = 0; a < outer; a++) {
    for (let i = 0; i < n; i++) {
      const base = (a * n + i) * inner;
      let s = 0;
      for (let j = 0; j < inner; j++) {
        const v = w[base + j]!;
        s += p === 1 ? Math.abs(v) : v * v;
      }
      out[i] += s;
    }
  }
  if (p === 2) for (let i = 0; i < n; i++) out[i] = Math.sqrt(out[i]!);
  return out;
}

/**
 * Per-input-channel norms of a grouped Conv weight [Cout, Cin/G, ...]: channel g*(Cin/G) + j is
 * read only by the rows of group g (column j), so its norm is over those rows alone.
 */
export function groupedColumnNorms(w: Float32Array, dims: readonly number[], groups: number, p: 1 | 2): Float64Array {
  const rows = dims[0]!,
    per = dims[1]!;
  const inner = dims.slice(2).reduce((a, b) => a * b, 1);
  const rowsPer = rows / groups;
  const out = new Float64Array(groups * per);
  for (let r = 0; r < rows; r++) {
    const base = Math.floor(r / rowsPer) * per;
    for (let j = 0; j < per; j++) {
      let s = 0;
      for (let k = (r * per + j) * inner, e = k + inner; k < e; k++) s += p === 1 ? Math.abs(w[k]!) : w[k]! * w[k]!;
      out[base + j] += s;
    }
  }
  if (p === 2) for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(out[i]!);
  return out;
}

/** Per-channel norms of the weight slices an action cuts (indexed like its space, flattened blocks expanded). */
function actionNorms(a: Action, w: Tensor, p: 1 | 2): Float64Array {
  return a.role === 'in-grouped' ? groupedColumnNorms(w.toFloat32(), w.dims, a.groups!, p) : axisNorms(w.toFloat32(), w.dims, a.axis, p);
}

/**
 * The group's share of an action's per-index norms: per group channel, the sum over the indices
 * that are that channel (a block of a grid, several concatenated parts) and, for flattened
 * spaces, over each index's block of features.
 */
function groupSlice(a: Action, grp: Group, ga: GroupAnalysis, norms: Float64Array, weight?: (p: number) => number): Float64Array | null {
  const pos = groupPositions(a.space, grp.id, ga.atoms);
  if (!pos) return null;
  const full = ga.atoms.size(a.space);
  const block = norms.length / full;
  if (!Number.isInteger(block)) return null;
  const out = new Float64Array(grp.size);
  for (let c = 0; c < grp.size; c++) {
    for (const p of pos[c] ?? []) {
      let s = 0;
      for (let j = 0; j < block; j++) s += norms[p * block + j]!;
      out[c] += weight ? s * weight(p) : s;
    }
  }
  return out;
}

function addNormalized(acc: Float64Array, v: Float64Array): void {
  let mean = 0;
  for (const x of v) mean += x;
  mean /= v.length || 1;
  if (!(mean > 0)) return;
  for (let i = 0; i < acc.length; i++) acc[i] += v[i]! / mean;
}

/** Scores per channel of `grp` (higher = keep). `stats` is needed for 'activation'. */
export function groupScores(
  g: Graph,
  ga: GroupAnalysis,
  grp: Group,
  kind: Importance,
  stats?: ReadonlyMap<string, ChannelStats>,
): Float64Array {
  const acc = new Float64Array(grp.size);
  let used = 0;
  if (kind === 'activation' && stats) {
    for (const a of grp.actions) {
      if (a.role !== 'in' && a.role !== 'in-grouped') continue;
      const st = stats.get(a.node.inputs[0]!);
      const w = g.initializer(a.node.inputs[a.input]!);
      if (!st || !w) continue;
      // statistics are per channel of the value read: they index the action's space only when
      // it is that value's (not a grouped Conv's position-in-group atom, whose value is wider)
      const full = ga.atoms.size(a.space);
      if (st.meanSq.length < full || (w.dims[a.axis] === full && st.meanSq.length !== full)) continue;
      // each index the channel occupies: its weights' norm times its RMS activation
      const v = groupSlice(a, grp, ga, actionNorms(a, w, 2), (p) => Math.sqrt(st.meanSq[p]!));
      if (!v) continue;
      addNormalized(acc, v);
      used++;
    }
    if (used) return acc;
    // no consumer with statistics (the group feeds only elementwise ops): fall back to weights
  }
  const p = kind === 'l1' ? 1 : 2;
  for (const a of grp.actions) {
    if (a.role !== 'out' && a.role !== 'in' && a.role !== 'in-grouped') continue;
    const w = g.initializer(a.node.inputs[a.input]!);
    if (!w || w.dims.length < 2) continue; // biases say little about a channel's use
    const norms = groupSlice(a, grp, ga, actionNorms(a, w, p));
    if (norms) addNormalized(acc, norms);
  }
  return acc;
}
