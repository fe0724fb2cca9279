// Gradient rules of the ops that move data without arithmetic on it (Reshape, Transpose, Concat,
// Split, Slice, ...), pools, Resize and Pad. Each is the op's adjoint: views reshape back, a
// permutation is undone by the inverse one, a copy sums its copies' gradients, a selection puts
// the gradient back where it was taken from and zeros elsewhere.
import type { Node } from '../../../../ir/node.js';
import type { GradEmitter, GradRule } from '../types.js';
import { constInts, mixAxis, normAxis, numel, padOf, padOrCrop, refuse, reverseAxis, sliceOf, zeros } from './layout.js';
import { POOL_GRADS } from './pool.js';
import { RESIZE_GRADS } from './resize.js';

/** Views (same data, another shape): the gradient is dy reshaped back. */
const view: GradRule = { diff: [0], grad: (n, [dy], _need, e) => [e.reshape(dy!, e.shape(n.inputs[0]!))] };

const transpose: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const rank = e.shape(n.inputs[0]!).length;
    const perm = n.attrInts('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
    const inv = Array<number>(rank);
    perm.forEach((p, i) => (inv[p] = i));
    return [e.op('Transpose', [dy!], { perm: inv })];
  },
};

const concat: GradRule = {
  diff: Array.from({ length: 64 }, (_, i) => i),
  grad: (n, [dy], need, e) => {
    const rank = e.shape(dy!).length;
    const axis = normAxis(n.attrInt('axis', 0), rank);
    let off = 0;
    return n.inputs.map((x, i) => {
      if (!x) return undefined;
      const len = e.shape(x)[axis]!;
      off += len;
      return need[i] ? sliceOf(e, dy!, [axis], [off - len], [off]) : undefined;
    });
  },
};

const split: GradRule = {
  diff: [0],
  grad: (n, dy, _need, e) => {
    const rank = e.shape(n.inputs[0]!).length;
    const axis = normAxis(n.attrInt('axis', 0), rank);
    // the parts' sizes are the outputs' shapes, however the split was given (attribute, input, equal)
    const like = dy.find((d) => d !== undefined)!;
    const parts = n.outputs.map((o, i) => dy[i] ?? zeros(e, e.shape(o), like));
    return [parts.length === 1 ? parts[0]! : e.op('Concat', parts, { axis })];
  },
};

/** Slice's starts/ends/axes/steps, from inputs (opset 10+) or attributes, normalised per axis. */
function sliceParams(n: Node, e: GradEmitter): { axis: number; first: number; step: number }[] {
  const xs = e.shape(n.inputs[0]!);
  const fromInputs = e.opset >= 10;
  const starts = fromInputs ? constInts(n, 1, e, 'starts') : n.attrInts('starts')!;
  const axes = fromInputs ? (n.inputs[3] ? constInts(n, 3, e, 'axes') : undefined) : n.attrInts('axes');
  const steps = fromInputs && n.inputs[4] ? constInts(n, 4, e, 'steps') : undefined;
  return starts.map((s0, i) => {
    const axis = normAxis(axes?.[i] ?? i, xs.length);
    const d = xs[axis]!;
    const step = steps?.[i] ?? 1;
    const s = s0 < 0 ? s0 + d : s0;
    // the first element taken, clamped as Slice clamps (the count comes from the output's shape)
    const first = step > 0 ? Math.min(Math.max(s, 0), d) : Math.min(Math.max(s, 0), d - 1);
    return { axis, first, step };
  });
}

const slice: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    const ys = e.shape(n.outputs[0]!);
    if (numel(ys) === 0) return [zeros(e, xs, dy!)];
    let g = dy!;
    // one axis at a time: the taken elements are first, first+step, ...; a negative step reverses
    // them, so reversing dy makes every step positive, and a step k spreads dy with k-1 zeros
    for (const { axis, first, step } of sliceParams(n, e)) {
      const len = ys[axis]!;
      const k = Math.abs(step);
      let start = first;
      if (step < 0) {
        g = reverseAxis(e, g, axis);
        start = first - (len - 1) * k;
      }
      if (k > 1) {
        const gs = e.shape(g);
        const split = [...gs.slice(0, axis + 1), 1, ...gs.slice(axis + 1)];
        const spread = Array<number>(2 * split.length).fill(0);
        spread[split.length + axis + 1] = k - 1;
        g = e.reshape(
          padOf(e, e.reshape(g, split), spread),
          gs.map((d, i) => (i === axis ? d * k : d)),
        );
      }
      const begin = xs.map(() => 0);
      const end = xs.map(() => 0);
      begin[axis] = start;
      end[axis] = xs[axis]! - start - len * k;
      g = padOrCrop(e, g, begin, end);
    }
    return [g];
  },
};

/** Pad's pads over every axis (begins then ends), from the input (opset 11+) or attribute, with its axes (18+). */
function padPads(n: Node, e: GradEmitter): number[] {
  const rank = e.shape(n.inputs[0]!).length;
  const given = e.opset >= 11 ? constInts(n, 1, e, 'pads') : (n.attrInts('pads') ?? n.attrInts('paddings')!);
  const axes = n.inputs[3] ? constInts(n, 3, e, 'axes').map((a) => normAxis(a, rank)) : undefined;
  if (!axes) return given;
  const pads = Array<number>(2 * rank).fill(0);
  axes.forEach((a, i) => {
    pads[a] = given[i]!;
    pads[a + rank] = given[i + axes.length]!;
  });
  return pads;
}

const pad: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    const r = xs.length;
    const pads = padPads(n, e);
    const mode = n.attrString('mode') ?? 'constant';
    // constant: the padding is not the input's, so dy is cropped back (and padded where pads cropped)
    if (mode === 'constant')
      return [
        padOrCrop(
          e,
          dy!,
          pads.slice(0, r).map((p) => -p),
          pads.slice(r).map((p) => -p),
        ),
      ];
    if (mode !== 'reflect' && mode !== 'edge') throw refuse(n, `Pad mode '${mode}' has no gradient rule (constant, reflect, edge do)`);
    if (pads.some((p) => p < 0)) throw refuse(n, `negative pads in ${mode} mode`);
    // reflect and edge pad axis by axis, so their adjoint folds each axis's margins back onto the input
    let g = dy!;
    for (let a = 0; a < r; a++) {
      const [b, f] = [pads[a]!, pads[a + r]!];
      if (!b && !f) continue;
      const d = xs[a]!;
      const zero = xs.map(() => 0);
      const at = (begin: number, end: number, v: string): string => {
        const bs = [...zero];
        const es = [...zero];
        bs[a] = begin;
        es[a] = end;
        return padOrCrop(e, v, bs, es);
      };
      const terms = [sliceOf(e, g, [a], [b], [b + d])];
      if (b) {
        const left = sliceOf(e, g, [a], [0], [b]);
        // reflect: margin element i copies x[b - i]; edge: every one copies x[0]
        terms.push(mode === 'reflect' ? at(1, d - 1 - b, reverseAxis(e, left, a)) : at(0, d - 1, e.reduceSum(left, [a])));
      }
      if (f) {
        const right = sliceOf(e, g, [a], [b + d], [b + d + f]);
        terms.push(mode === 'reflect' ? at(d - 1 - f, 1, reverseAxis(e, right, a)) : at(d - 1, 0, e.reduceSum(right, [a])));
      }
      g = e.op('Sum', terms);
    }
    return [g];
  },
};

/**
 * Gather's adjoint with indices known only at run time (token ids into an embedding table): the
 * one-hot map is built in the graph (Equal of the indices against 0..d-1) and applied by MatMul.
 */
function gatherByRuntimeOneHot(n: Node, e: GradEmitter, dy: string, xs: number[], axis: number): string {
  const iv = n.inputs[1]!;
  const d = xs[axis]!;
  const k = numel(e.shape(iv));
  if (d * k > 1 << 26) throw refuse(n, `Gather of ${k} run-time indices from an axis of ${d} (a ${d}x${k} one-hot map is too big)`);
  let idx = e.reshape(e.dtype(iv) === 'int64' ? iv : e.op('Cast', [iv], { to: 7 }), [k]);
  idx = e.op('Where', [e.op('Less', [idx, e.constInt64([0], [])]), e.op('Add', [idx, e.constInt64([d], [])]), idx]);
  const range = Array.from({ length: d }, (_, i) => i);
  const pre = numel(xs.slice(0, axis));
  const post = numel(xs.slice(axis + 1));
  const to = e.dtype(dy) === 'float64' ? 11 : 1;
  if (post === 1) {
    const oh = e.op('Cast', [e.op('Equal', [e.reshape(idx, [k, 1]), e.constInt64(range, [1, d])])], { to });
    return e.reshape(e.op('MatMul', [e.reshape(dy, [pre, k]), oh]), xs);
  }
  const oh = e.op('Cast', [e.op('Equal', [e.reshape(idx, [1, k]), e.constInt64(range, [d, 1])])], { to });
  return e.reshape(e.op('MatMul', [oh, e.reshape(dy, [pre, k, post])]), xs);
}

const gather: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    const axis = normAxis(n.attrInt('axis', 0), xs.length);
    const d = xs[axis]!;
    if (!e.constant(n.inputs[1]!)) return [gatherByRuntimeOneHot(n, e, dy!, xs, axis)];
    const idx = constInts(n, 1, e, 'indices').map((i) => (i < 0 ? i + d : i));
    const k = idx.length;
    // the adjoint of a gather is a scatter-add; with constant indices it is a one-hot d x k MatMul,
    // which sums repeated indices by itself. Only for small index sets: it costs d*k per row
    if (d * k > 1 << 22) throw refuse(n, `Gather of ${k} indices from an axis of ${d} (a ${d}x${k} one-hot map is too big)`);
    const m = new Float32Array(d * k);
    idx.forEach((i, j) => (m[i * k + j]! += 1));
    const flat = e.reshape(dy!, [...xs.slice(0, axis), k, ...xs.slice(axis + 1)]);
    return [mixAxis(e, flat, axis, m, d)];
  },
};

/** x reshaped to `split`, transposed by `perm`, reshaped to `to` (the block moves of DepthToSpace). */
const blockMove = (e: GradEmitter, x: string, split: number[], perm: number[], to: number[]): string =>
  e.reshape(e.op('Transpose', [e.reshape(x, split)], { perm }), to);

const depthToSpace: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    const [nb, c, h, w] = xs as [number, number, number, number];
    const b = n.attrInt('blocksize', 1);
    const co = c / (b * b);
    // the forward op is reshape, transpose, reshape; its adjoint the inverse transpose between the reshapes
    return n.attrString('mode') === 'CRD'
      ? [blockMove(e, dy!, [nb, co, h, b, w, b], [0, 1, 3, 5, 2, 4], xs)]
      : [blockMove(e, dy!, [nb, co, h, b, w, b], [0, 3, 5, 1, 2, 4], xs)];
  },
};

const spaceToDepth: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    const [nb, c, h, w] = xs as [number, number, number, number];
    const b = n.attrInt('blocksize', 1);
    return [blockMove(e, dy!, [nb, b, b, c, h / b, w / b], [0, 3, 4, 1, 5, 2], xs)];
  },
};

const tile: GradRule = {
  diff: [0],
  grad: (n, [dy], _need, e) => {
    const xs = e.shape(n.inputs[0]!);
    // the repeats are the output's dims over the input's (static shapes), however they were computed
    const ys = e.shape(n.outputs[0]!);
    const reps = xs.map((d, i) => ys[i]! / d);
    // output index i along an axis is copy floor(i / d) of element i mod d: split each axis into
    // (copy, element) and sum the copies
    const split = xs.flatMap((d, i) => [reps[i]!, d]);
    return [
      e.reduceSum(
        e.reshape(dy!, split),
        xs.map((_, i) => 2 * i),
        false,
      ),
    ];
  },
};

export const SHAPE_GRADS: Readonly<Record<string, GradRule>> = {
  // Identity and the shape-only views pass the gradient through, reshaped back to the input's shape
  Identity: { diff: [0], grad: (_n, [dy]) => [dy] },
  Reshape: view,
  Flatten: view,
  Squeeze: view,
  Unsqueeze: view,
  Transpose: transpose,
  // a broadcast copies: the copies' gradients sum back onto the broadcast axes
  Expand: { diff: [0], grad: (n, [dy], _need, e) => [e.unbroadcast(dy!, e.shape(n.inputs[0]!))] },
  Tile: tile,
  Concat: concat,
  Split: split,
  Slice: slice,
  Pad: pad,
  Gather: gather,
  DepthToSpace: depthToSpace,
  SpaceToDepth: spaceToDepth,
  ...POOL_GRADS,
  ...RESIZE_GRADS,
};
