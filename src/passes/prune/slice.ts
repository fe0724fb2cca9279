// Slice on the channel axis in the pruner table: torchvision's ShuffleNetV2 splits a block's input
// with x.chunk(2, dim=1) and PyTorch's MultiheadAttention takes q, k and v from the fused in_proj
// output; both export as Slices with constant bounds. A Slice keeps the channels [lo, hi) of its
// input. Every Slice reading the same value on the channel axis cuts it at its bounds, so the
// input becomes a concatenation of runs between consecutive bounds (new atoms the producer's
// channels alias); each Slice's output is the runs it covers, and its bounds follow the kept
// channels before them (action 'range'). A grid whose blocks the bounds do not cut (a channel
// shuffle's output) is cut on its outer index the same way.
import type { Node } from '../../ir/node.js';
import type { Ctx, Handler } from './ops.js';
import { type Space, describe } from './space.js';

interface Bounds {
  /** Index of the channel axis's entry in starts/ends (and axes). */
  entry: number;
  lo: number;
  hi: number;
}

/** The constant starts/ends/axes/steps of a Slice (inputs from opset 10, attributes before). */
function sliceArgs(n: Node, c: Ctx): { starts: number[]; ends: number[]; axes?: number[]; steps?: number[] } | string {
  if (n.inputs.length <= 1) {
    const starts = n.attrInts('starts'),
      ends = n.attrInts('ends');
    return starts && ends ? { starts, ends, axes: n.attrInts('axes') } : 'Slice without starts/ends';
  }
  const get = (i: number): number[] | undefined | null => (n.inputs[i] ? (c.constant(n.inputs[i]!)?.toNumbers() ?? null) : undefined);
  const [starts, ends, axes, steps] = [get(1), get(2), get(3), get(4)];
  if (!starts || !ends || axes === null || steps === null) return 'Slice bounds computed at run time';
  return { starts, ends, axes, steps };
}

/** Where `n` cuts the channel axis of a rank-`rank` value with `C` channels on `axis` (from the end), or null when it does not. */
function channelBounds(n: Node, c: Ctx, axis: number, rank: number | null, C: number): Bounds | null | string {
  const args = sliceArgs(n, c);
  if (typeof args === 'string') return args;
  const axes = args.axes ?? args.starts.map((_, i) => i);
  const entry = axes.findIndex((a) => (a < 0 ? a : rank === null ? NaN : a - rank) === axis);
  if (entry < 0) {
    if (rank === null && axes.some((a) => a >= 0)) return 'Slice axes with unknown rank';
    return null;
  }
  if ((args.steps?.[entry] ?? 1) !== 1) return 'Slice of the channel axis with a step';
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + C : v, 0), C);
  const lo = clamp(args.starts[entry]!),
    hi = clamp(args.ends[entry]!);
  return hi > lo ? { entry, lo, hi } : 'empty Slice of the channel axis';
}

/** A piece of a cut space: channels [lo, hi) of it, never straddling a cut. */
interface Piece {
  space: Space;
  lo: number;
  hi: number;
}

/**
 * The space in pieces that never straddle `cuts` (sorted, from 0 to its size), splitting atoms
 * where needed: an atom becomes a concatenation of new atoms between the cuts; a grid of blocks
 * of `n` fixed channels (a channel shuffle's output) is cut on its outer index, and a cut inside a
 * block (torchvision's x1_0 has 58 positions shuffled 2 ways, chunked again in two at 29) makes
 * that block's outer channel a run of its own whose block is split (each part a grid of it by
 * fewer fixed channels: the channel and its partner across the cut go together).
 */
function cutAt(s: Space, cuts: readonly number[], n: Node, c: Ctx, at = 0): Piece[] | string {
  const size = c.atoms.size(s);
  const inside = cuts.filter((x) => x > 0 && x < size);
  if (!inside.length) return [{ space: s, lo: at, hi: at + size }];
  if (s.kind === 'atom') {
    const al = c.atoms.aliasOf(s.id);
    if (al) return cutAt(al, cuts, n, c, at);
    // labelled by position, not bounds: labels name groups across prune steps and replays
    const bounds = [0, ...inside, size];
    const k = bounds.length - 1;
    const runs = bounds.slice(1).map((e, i) => c.atom(n, e - bounds[i]!, `${c.atoms.info[s.id]!.origin} (Slice part ${i + 1} of ${k})`));
    if (!c.atoms.unify(s, { kind: 'cat', parts: runs })) return `cannot cut ${describe(s, c.atoms)} at [${inside.join(', ')}]`;
    return runs.map((r, i) => ({ space: r, lo: at + bounds[i]!, hi: at + bounds[i + 1]! }));
  }
  if (s.kind === 'cat') {
    const out: Piece[] = [];
    let off = 0;
    for (const p of s.parts) {
      const sub = cutAt(
        p,
        cuts.map((x) => x - off),
        n,
        c,
        at + off,
      );
      if (typeof sub === 'string') return sub;
      out.push(...sub);
      off += c.atoms.size(p);
    }
    return out;
  }
  if (s.kind === 'grid') {
    const inner = c.atoms.size(s.inner);
    if (inside.some((x) => x % inner !== 0) && s.inner.kind !== 'fixed')
      return `the bounds cut across blocks of ${inner} of ${describe(s, c.atoms)}`;
    const outerCuts = [...new Set(inside.flatMap((x) => [Math.floor(x / inner), Math.ceil(x / inner)]))];
    const outer = cutAt(s.outer, outerCuts, n, c);
    if (typeof outer === 'string') return outer;
    const out: Piece[] = [];
    for (const o of outer) {
      const [a, b] = [o.lo * inner, o.hi * inner];
      const mid = inside.filter((x) => x > a && x < b);
      const bounds = [a, ...mid, b];
      for (let i = 0; i + 1 < bounds.length; i++) {
        const len = bounds[i + 1]! - bounds[i]!;
        const space: Space = { kind: 'grid', outer: o.space, inner: mid.length ? { kind: 'fixed', size: len } : s.inner };
        out.push({ space, lo: at + bounds[i]!, hi: at + bounds[i + 1]! });
      }
    }
    return out;
  }
  return `a Slice of ${describe(s, c.atoms)}`;
}

export const slice: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (!x) return sliceArgs(n, c) === 'Slice bounds computed at run time' ? 'Slice bounds computed at run time' : undefined;
  const C = c.atoms.size(x.space);
  const mine = channelBounds(n, c, x.axis, x.rank, C);
  if (typeof mine === 'string') return mine;
  if (!mine || (mine.lo === 0 && mine.hi === C)) {
    c.set(n.outputs[0]!, x); // another axis sliced (or the whole channel axis): channels pass through
    return undefined;
  }
  // every sibling Slice on the channel axis cuts the input too: the runs are between all bounds
  const cuts = new Set([0, C]);
  for (const s of c.g.consumers(n.inputs[0]!)) {
    if (s.opType !== 'Slice' || s.inputs[0] !== n.inputs[0]) continue;
    const b = channelBounds(s, c, x.axis, x.rank, C);
    if (b && typeof b !== 'string') [b.lo, b.hi].forEach((v) => cuts.add(v));
  }
  const sorted = [...cuts].sort((a, b) => a - b);
  const pieces = cutAt(x.space, sorted, n, c);
  if (typeof pieces === 'string') return `Slice [${mine.lo}:${mine.hi}] of ${C} channels: ${pieces}`;
  const mineRuns = pieces.filter((p) => p.lo >= mine.lo && p.hi <= mine.hi).map((p) => p.space);
  const out: Space = mineRuns.length === 1 ? mineRuns[0]! : { kind: 'cat', parts: mineRuns };
  c.act({ role: 'range', input: n.inputs.length <= 1 ? -1 : 1, axis: mine.entry, space: x.space, range: [mine.lo, mine.hi] });
  c.set(n.outputs[0]!, { ...x, space: out });
  return undefined;
};
