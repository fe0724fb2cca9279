// Attention heads in the pruner table. Multi-head attention splits a projection's C channels into
// H heads of d (Reshape [.., C] -> [.., H, d]), works per head (Transposes, the scores MatMul
// q @ k^T contracting over d, the scale, Softmax over keys, att @ v), and merges the heads back
// (Reshape [.., H, d] -> [.., H*d]) for the output projection. Removing a whole head keeps all of
// this valid: every per-head op is independent along the head axis, and d, the only axis that is
// contracted, stays whole (so does the 1/sqrt(d) scale). So a split makes the projection's
// channels a grid (heads) x (d fixed), the split value's channel axis becomes the head axis, the
// run-time MatMuls couple their operands' heads (q, k and v lose the same heads), and the merge
// makes the merged channels that grid again; both Reshape constants follow the kept head count.
import type { Node } from '../../ir/node.js';
import type { Ctx, Handler, VInfo } from './ops.js';
import { type Space, describe } from './space.js';

/** A Reshape target with its 0 (copy) and -1 (inferred) entries resolved against the input's static shape, or null. */
export function resolveTarget(target: readonly number[], input: readonly number[] | null): number[] | null {
  if (!input) return null;
  const d = target.map((t, i) => (t === 0 ? (input[i] ?? NaN) : t));
  const known = d.filter((t) => t !== -1).reduce((a, b) => a * b, 1);
  const total = input.reduce((a, b) => a * b, 1);
  const out = d.map((t) => (t === -1 ? total / known : t));
  return out.every((t) => Number.isInteger(t) && t >= 0) && out.reduce((a, b) => a * b, 1) === total ? out : null;
}

/**
 * The leading dims of a Reshape target must copy the input's (0, the same static size, or the one
 * -1 that resolves to it), or the Reshape moves data across them and channel indices mean nothing.
 * Returns a reason when they do not.
 */
function sameLeading(target: readonly number[], lead: number, input: readonly number[] | null, what: string): string | undefined {
  const resolved = resolveTarget(target, input);
  for (let i = 0; i < lead; i++) {
    const t = target[i]!;
    if (t === 0) continue;
    if (!input) return `${what}: entry ${i} (${t}) is neither 0 nor checkable against the input's shape (unknown)`;
    if ((t === -1 ? resolved?.[i] : t) !== input[i])
      return `${what}: entry ${i} (${t}) differs from the input's ${input[i]}, so it moves data across the leading axes, not only splitting or merging the channel axis`;
  }
  return undefined;
}

/**
 * Reshape [.., C] -> [.., H, d] of a value whose channels are its last axis: the heads split.
 * The input becomes (H heads, a new atom) x (d fixed); the output is tracked on the head axis.
 */
export function splitHeads(n: Node, x: VInfo, target: readonly number[], c: Ctx): string | undefined {
  const r = x.rank!;
  const C = c.atoms.size(x.space);
  const what = `Reshape [${target.join(',')}] of ${C} channels (a heads split is [.., H, d] with H*d = ${C})`;
  const bad = sameLeading(target, r - 1, c.shape(n.inputs[0]!), what);
  if (bad) return bad;
  const th = target[r - 1]!,
    td = target[r]!;
  let H: number, d: number;
  if (th > 0 && td > 0) [H, d] = [th, td];
  else if (th > 0 && td === -1) [H, d] = [th, C / th];
  else if (th === -1 && td > 0) [H, d] = [C / td, td];
  else return `${what}: the head and head-size entries ${th}, ${td} are not two sizes (or one size and -1)`;
  if (!Number.isInteger(H) || !Number.isInteger(d) || H * d !== C)
    return `${what}: ${th} x ${td} does not divide the ${C} channels into heads`;
  const heads = c.atom(n, H, `${n.label()} heads (of ${d})`);
  const grid: Space = { kind: 'grid', outer: heads, inner: { kind: 'fixed', size: d } };
  if (!c.atoms.canUnify(x.space, grid))
    return `${what}: it splits ${describe(x.space, c.atoms)}, laid out otherwise than ${H} heads of ${d}`;
  c.atoms.unify(x.space, grid);
  if (th > 0) c.act({ role: 'shape', input: 1, axis: r - 1, space: heads });
  c.set(n.outputs[0]!, { space: heads, axis: -2, rank: r + 1 });
  return undefined;
}

/**
 * Fused q/k/v projection (PP-OCRv4 rec's SVTR blocks, timm-style ViTs): one Linear makes k*H*d
 * channels, a Reshape [.., C] -> [.., k, H, d] splits them into k projections of H heads of d,
 * a Transpose moves the k axis out front and q, k and v are taken along it (Slice/Gather, then
 * Squeeze). Each of the k projections must lose the same heads (the scores MatMul couples q's
 * heads with k's, att @ v with v's), so the channels are (k fixed) x (H heads) x (d fixed) with
 * one heads atom; the output is tracked on the head axis, the k axis being a batch-like axis that
 * slices and squeezes pass through. The H entry follows the kept heads.
 */
export function splitQkvHeads(n: Node, x: VInfo, target: readonly number[], c: Ctx): string | undefined {
  const r = x.rank!;
  const C = c.atoms.size(x.space);
  const what = `Reshape [${target.join(',')}] of ${C} channels (a fused heads split is [.., k, H, d] with k*H*d = ${C})`;
  const xs = c.shape(n.inputs[0]!);
  const bad = sameLeading(target, r - 1, xs, what);
  if (bad) return bad;
  const [k, th, td] = [target[r - 1]!, target[r]!, target[r + 1]!];
  if (!(k >= 2 && th > 0 && td > 0 && k * th * td === C))
    return `${what}: the projection, head and head-size entries ${k}, ${th}, ${td} are not sizes that multiply to ${C}`;
  const heads = c.atom(n, th, `${n.label()} heads (of ${td}, fused ${k} ways)`);
  const grid: Space = {
    kind: 'grid',
    outer: { kind: 'fixed', size: k },
    inner: { kind: 'grid', outer: heads, inner: { kind: 'fixed', size: td } },
  };
  if (!c.atoms.canUnify(x.space, grid))
    return `${what}: it splits ${describe(x.space, c.atoms)}, laid out otherwise than ${k} x ${th} heads of ${td}`;
  c.atoms.unify(x.space, grid);
  c.act({ role: 'shape', input: 1, axis: r, space: heads });
  c.set(n.outputs[0]!, { space: heads, axis: -2, rank: r + 2 });
  return undefined;
}

/**
 * PyTorch's MultiheadAttention splits heads into the batch axis: q [T, N, H*d] -> [T, N*H, d]
 * (view(tgt_len, bsz * num_heads, head_dim)). Axis -2 then holds (batch, head) pairs, n*H + h, so
 * a head is H-strided blocks of it, one per batch item; removing head h from every item keeps
 * the layout. Understood where the merged batch is 1 at the shapes the analysis runs with, so the
 * axis is the heads (the fold leaves the entry -1 for a dynamic batch: it then follows the kept
 * heads at any batch). The value becomes (H heads) x (d fixed), tracked on axis -2.
 */
export function splitHeadsIntoBatch(n: Node, x: VInfo, target: readonly number[], c: Ctx): string | undefined {
  const r = x.rank!;
  const C = c.atoms.size(x.space);
  const what = `Reshape [${target.join(',')}] of ${C} channels (a heads split into the batch is [.., N*H, d] with H*d = ${C})`;
  const xs = c.shape(n.inputs[0]!);
  const res = resolveTarget(target, xs);
  if (!xs || !res) return `${what}: the input's shape is unknown`;
  if (xs[r - 2] !== 1) return `${what}: the batch merged with the heads is ${xs[r - 2]}, not 1, at the shapes given`;
  const bad = sameLeading(target, r - 2, xs, what);
  if (bad) return bad;
  const d = res[r - 1]!,
    H = res[r - 2]!;
  if (target[r - 1]! <= 0 || H * d !== C) return `${what}: the head size is not a constant dividing the channels`;
  const heads = c.atom(n, H, `${n.label()} heads (of ${d})`);
  const grid: Space = { kind: 'grid', outer: heads, inner: { kind: 'fixed', size: d } };
  if (!c.atoms.canUnify(x.space, grid))
    return `${what}: it splits ${describe(x.space, c.atoms)}, laid out otherwise than ${H} heads of ${d}`;
  c.atoms.unify(x.space, grid);
  if (target[r - 2]! > 0) c.act({ role: 'shape', input: 1, axis: r - 2, space: heads });
  c.set(n.outputs[0]!, { space: heads, axis: -2, rank: r });
  return undefined;
}

/**
 * Reshape [.., H, d] -> [.., H*d] of a value tracked on its second-to-last axis: the heads merge.
 * The output channels are (the heads) x (d fixed). d comes from the target's channel entry or,
 * when that is -1, from the input's static shape.
 */
export function mergeHeads(n: Node, x: VInfo, target: readonly number[], c: Ctx): string | undefined {
  const r = x.rank!;
  const H = c.atoms.size(x.space);
  const what = `Reshape [${target.join(',')}] of ${H} heads (a heads merge is [.., H*d])`;
  const xs = c.shape(n.inputs[0]!);
  const bad = sameLeading(target, r - 2, xs, what);
  if (bad) return bad;
  const tc = target[r - 2]!;
  let d: number;
  if (tc > 0) d = tc / H;
  else if (tc === -1 && xs && xs.length === r) d = xs[r - 1]!;
  else return `${what}: the merged size ${tc} is neither a size nor -1 with a known input shape`;
  if (!Number.isInteger(d) || d < 1) return `${what}: ${tc} channels are not ${H} heads of a whole size`;
  if (xs && xs.length === r && (xs[r - 2] !== H || xs[r - 1] !== d))
    return `${what}: the input's [${xs.join(',')}] is not ${H} heads of ${d}`;
  const out: Space = { kind: 'grid', outer: x.space, inner: { kind: 'fixed', size: d } };
  if (tc > 0) c.act({ role: 'shape', input: 1, axis: r - 2, space: out });
  c.set(n.outputs[0]!, { space: out, axis: -1, rank: r - 1 });
  return undefined;
}

/**
 * MatMul of two run-time values (q @ k^T, att @ v). It only contracts and multiplies the last
 * two axes, so channels tracked on a batch axis (a head axis, -3 or further out) pass through
 * unchanged when both operands carry the same channels there: they are coupled (lose the same
 * heads). Channels on either of the last two axes would be contracted or mixed: refused.
 */
export const runtimeMatmul: Handler = (n, c) => {
  const a = c.info(n.inputs[0]!),
    b = c.info(n.inputs[1]!);
  if (!a && !b) return undefined;
  const on = (v: VInfo | undefined) => (v ? (v.axis >= -2 ? 'matrix' : 'batch') : 'untracked');
  if (!a || !b || a.axis >= -2 || b.axis >= -2)
    return (
      `MatMul of two run-time values with channels on ${on(a)} / ${on(b)} axes: ` +
      'only channels on a batch axis of both (attention heads split by a Reshape [.., H, d]) pass through; ' +
      'on the last two axes they would be contracted or mixed (attention scores, head mixing)'
    );
  if (a.rank === null || a.rank !== b.rank || a.axis !== b.axis)
    return `MatMul of run-time values whose head axes do not line up (ranks ${a.rank}/${b.rank}, axes ${a.axis}/${b.axis})`;
  if (!c.atoms.canUnify(a.space, b.space))
    return `MatMul couples ${describe(a.space, c.atoms)} with ${describe(b.space, c.atoms)}, laid out differently`;
  c.atoms.unify(a.space, b.space);
  c.set(n.outputs[0]!, { space: a.space, axis: a.axis, rank: a.rank });
  return undefined;
};
