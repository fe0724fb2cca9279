// Reshape, Squeeze, Unsqueeze, Gather and reductions in the pruner table: ops that regroup, add
// or remove axes. Channels survive what keeps their axis whole (a Flatten, a batch or spatial
// regroup around it, a size-1 axis inserted or removed, a Gather or a reduction along another
// axis) or splits it in a known layout (channel shuffle, attention heads: shuffle.ts, heads.ts);
// any other Reshape would move channels in ways not tracked.
import type { Ctx, Handler, VInfo } from './ops.js';
import { mergeHeads, resolveTarget, splitHeads, splitHeadsIntoBatch, splitQkvHeads } from './heads.js';
import { channelShuffle } from './shuffle.js';

/**
 * A Reshape that leaves the channel axis whole at the same place, counted from the end (the
 * leading batch/token axes regrouped: [T*N, E] -> [T, N, E] around an attention's out_proj) or
 * from the start (the trailing spatial axes regrouped: [N, C, H, W] -> [N, C, H*W] before a
 * transformer block). Its channel entry follows the cut. Returns false when it is not one.
 */
function keepsChannelAxis(n: Parameters<Handler>[0], x: VInfo, shape: readonly number[], c: Ctx): boolean {
  const C = c.atoms.size(x.space);
  const xs = c.shape(n.inputs[0]!);
  const res = resolveTarget(shape, xs);
  if (!xs || !res || x.rank === null) return false;
  const R = shape.length;
  let at: number;
  if (x.axis === -1 && shape[R - 1] === C) at = R - 1;
  else {
    const p = x.rank + x.axis;
    if (p >= R - 1 || shape[p] !== C || !xs.slice(0, p).every((d, i) => res[i] === d)) return false;
    at = p;
  }
  c.act({ role: 'shape', input: 1, axis: at, space: x.space });
  c.set(n.outputs[0]!, { space: x.space, axis: at - R, rank: R });
  return true;
}

export const reshape: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  const shape = n.inputs[1] ? c.constant(n.inputs[1])?.toNumbers() : undefined;
  if (!x) return shape || !n.inputs[1] ? undefined : 'Reshape input 1 is computed at run time';
  // [0, -1] / [N, -1] is a Flatten
  if (shape && shape.length === 2 && shape[1] === -1 && x.rank !== null && x.axis === 1 - x.rank) {
    c.set(n.outputs[0]!, x.rank === 2 ? x : { space: { kind: 'flat', inner: x.space }, axis: -1, rank: 2 });
    return undefined;
  }
  if (!shape)
    return (
      'Reshape whose shape is computed at run time and was not folded (it depends on a dynamic input dim in a way ' +
      'a 0 or -1 entry cannot say, or no --shape fixed the input): only constant shapes are understood'
    );
  if (keepsChannelAxis(n, x, shape, c)) return undefined;
  if (shape.length === 5 && x.rank === 4 && x.axis === -3) return channelShuffle(n, x, shape, c);
  if (x.rank !== null && x.axis === -1 && shape.length === x.rank + 2) return splitQkvHeads(n, x, shape, c);
  if (x.rank !== null && x.axis === -1 && shape.length === x.rank + 1) return splitHeads(n, x, shape, c);
  if (x.rank !== null && x.rank >= 3 && x.axis === -2 && shape.length === x.rank - 1) return mergeHeads(n, x, shape, c);
  if (x.rank !== null && x.rank >= 3 && x.axis === -1 && shape.length === x.rank) return splitHeadsIntoBatch(n, x, shape, c);
  return (
    `Reshape [${shape.join(',')}] of a rank-${x.rank ?? '?'} value with channels on axis ${x.axis}: ` +
    'only a Flatten, a regroup of the other axes, a channel shuffle, a heads split ([.., C] -> [.., H, d], [.., k, H, d] fused) ' +
    'or a heads merge ([.., H, d] -> [.., H*d]) are understood'
  );
};

/** Inputs after the first must be constants when the data is not tracked (nothing to couple otherwise). */
function constantsOnly(n: Parameters<Handler>[0], c: Ctx): string | undefined {
  const i = n.inputs.findIndex((v, k) => k > 0 && v && !c.constant(v));
  return i > 0 ? `${n.opType} input ${i} is computed at run time` : undefined;
}

/** Gather along another axis (a ViT's class token, x[:, 0]): the channels pass, the rank follows the indices. */
export const gather: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (!x) return constantsOnly(n, c);
  const idx = c.constant(n.inputs[1]!);
  if (!idx || x.rank === null) return 'Gather with run-time indices or of a value of unknown rank';
  const r = x.rank;
  const ax = n.attrInt('axis', 0)!;
  const at = ax < 0 ? ax + r : ax;
  const p = r + x.axis;
  if (at === p) return 'Gather along the channel axis';
  const R = r - 1 + idx.dims.length;
  c.set(n.outputs[0]!, { space: x.space, axis: (at < p ? p - 1 + idx.dims.length : p) - R, rank: R });
  return undefined;
};

/** Reductions over other axes (a global mean over H and W, torchvision's x.mean([2, 3])): per channel. */
export const reduce: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (!x) return constantsOnly(n, c);
  if (x.rank === null) return `${n.opType} of a value of unknown rank`;
  const axes = n.inputs[1] ? c.constant(n.inputs[1])?.toNumbers() : n.attrInts('axes');
  if (n.inputs[1] && !axes) return `${n.opType} axes computed at run time`;
  if (!axes?.length) return `${n.opType} over every axis, the channel axis too`;
  const neg = axes.map((a) => (a < 0 ? a : a - x.rank!));
  if (neg.includes(x.axis)) return `${n.opType} across the channel axis`;
  const keep = n.attrInt('keepdims', 1) === 1;
  c.set(n.outputs[0]!, {
    space: x.space,
    axis: keep ? x.axis : x.axis + neg.filter((a) => a > x.axis).length,
    rank: keep ? x.rank : x.rank - new Set(neg).size,
  });
  return undefined;
};

/** Squeeze/Unsqueeze axes: the attribute before opset 13, input 1 from it. */
function axesOf(n: Parameters<Handler>[0], c: Ctx): number[] | undefined | string {
  if (!n.inputs[1]) return n.attrInts('axes');
  return c.constant(n.inputs[1])?.toNumbers() ?? `${n.opType} axes computed at run time`;
}

/** Squeeze of size-1 axes other than the channel axis: the channel axis keeps its place. */
export const squeeze: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (!x) return undefined;
  const got = axesOf(n, c);
  if (typeof got === 'string') return got;
  const xs = c.shape(n.inputs[0]!);
  const r = x.rank ?? xs?.length ?? null;
  if (r === null) return 'Squeeze of a value of unknown rank';
  const axes = got ?? (xs ? xs.flatMap((d, i) => (d === 1 ? [i] : [])) : null);
  if (!axes) return 'Squeeze of every size-1 axis of a value of unknown shape';
  const neg = [...new Set(axes.map((a) => (a < 0 ? a : a - r)))];
  if (neg.includes(x.axis)) return 'Squeeze of the channel axis';
  c.set(n.outputs[0]!, { space: x.space, axis: x.axis + neg.filter((a) => a > x.axis).length, rank: r - neg.length });
  return undefined;
};

/** Unsqueeze: new size-1 axes around the channel axis, which keeps its channels. */
export const unsqueeze: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (!x) return undefined;
  const got = axesOf(n, c);
  if (typeof got === 'string') return got;
  if (!got || x.rank === null) return 'Unsqueeze with unknown axes or rank';
  const R = x.rank + got.length;
  const inserted = new Set(got.map((a) => (a < 0 ? a + R : a)));
  const p = x.rank + x.axis;
  let j = 0,
    at = -1;
  for (let i = 0; i < R; i++) {
    if (inserted.has(i)) continue;
    if (j++ === p) at = i;
  }
  c.set(n.outputs[0]!, { space: x.space, axis: at - R, rank: R });
  return undefined;
};
