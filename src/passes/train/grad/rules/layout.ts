// Building blocks the shape, pool and Resize gradient rules share: Slice, Pad and crop along axes
// (written per opset: both moved from attributes to inputs), zeros of a shape, and a constant
// linear map along one axis (a MatMul), which is how gathers and resamplings are transposed.
import { EdgefitError } from '../../../../errors.js';
import type { Node } from '../../../../ir/node.js';
import type { GradEmitter } from '../types.js';

export const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
export const normAxis = (a: number, rank: number): number => (a < 0 ? a + rank : a);

/** A refusal naming the node and why its gradient cannot be built. */
export function refuse(n: Node, why: string): EdgefitError {
  return new EdgefitError('UNSUPPORTED', `${n.label()}: no gradient: ${why}, so this model cannot be trained on the box`);
}

/** The integer constant behind input `i` of `n`, or a refusal (it acts as an attribute). */
export function constInts(n: Node, i: number, e: GradEmitter, what: string): number[] {
  const c = n.inputs[i] ? e.constant(n.inputs[i]) : undefined;
  // exporters compute such inputs from Shape chains; with the training shape fixed, fold-shapes
  // (passes/cleanup) turns them into constants, so the refusal says to run it first
  if (!c) {
    throw refuse(
      n,
      `its ${what} (input ${i}) is computed at run time (fold the shape chains at the training shape first), and the gradient needs it constant`,
    );
  }
  return c.toNumbers();
}

/** The indices Slice picks along an axis of length d (numpy's rules: negatives count from the end, clamped). */
export function sliceIndices(d: number, start: number, end: number, step: number): number[] {
  const norm = (v: number, lo: number, hi: number): number => Math.min(Math.max(v < 0 ? v + d : v, lo), hi);
  const out: number[] = [];
  if (step > 0) for (let i = norm(start, 0, d), e = norm(end, 0, d); i < e; i += step) out.push(i);
  else for (let i = norm(start, -1, d - 1), e = norm(end, -1, d - 1); i > e; i += step) out.push(i);
  return out;
}

/**
 * x sliced along `axes` (Slice's inputs from opset 10, attributes before). Steps (strided or
 * reversed: the conv rules' taps and kernel flips) need opset 10's Slice; before it they are a
 * Gather of the indices per axis, so opset-9 models (PP-OCR cls) train too.
 */
export function sliceOf(e: GradEmitter, x: string, axes: number[], starts: number[], ends: number[], steps?: number[]): string {
  const stepped = steps?.some((s) => s !== 1);
  if (e.opset >= 10) {
    const ins = [x, e.constInt64(starts), e.constInt64(ends), e.constInt64(axes)];
    if (stepped) ins.push(e.constInt64(steps!));
    return e.op('Slice', ins);
  }
  if (!stepped) return e.op('Slice', [x], { axes, starts, ends });
  const xs = e.shape(x);
  let y = x;
  axes.forEach((a, i) => {
    const axis = a < 0 ? a + xs.length : a;
    y = e.op('Gather', [y, e.constInt64(sliceIndices(xs[axis]!, starts[i]!, ends[i]!, steps![i]!))], { axis });
  });
  return y;
}

/** x reversed along `axis`. */
export function reverseAxis(e: GradEmitter, x: string, axis: number): string {
  const d = e.shape(x)[axis]!;
  return sliceOf(e, x, [axis], [d - 1], [-d - 1], [-1]);
}

/** Zero padding (pads: begins then ends, all >= 0; Pad's pads an input from opset 11). */
export function padOf(e: GradEmitter, x: string, pads: number[]): string {
  if (pads.every((p) => p === 0)) return x;
  if (e.opset >= 11) return e.op('Pad', [x, e.constInt64(pads)]);
  return e.op('Pad', [x], { pads });
}

/**
 * x grown by `begin`/`end` per axis: zeros where positive, cropped where negative (a crop is a
 * Slice, so onnxruntime's negative-pad support is never relied on).
 */
export function padOrCrop(e: GradEmitter, x: string, begin: readonly number[], end: readonly number[]): string {
  const xs = e.shape(x);
  const axes: number[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  xs.forEach((d, a) => {
    if (begin[a]! < 0 || end[a]! < 0) {
      axes.push(a);
      starts.push(Math.max(-begin[a]!, 0));
      ends.push(d - Math.max(-end[a]!, 0));
    }
  });
  const cropped = axes.length ? sliceOf(e, x, axes, starts, ends) : x;
  return padOf(e, cropped, [...begin.map((b) => Math.max(b, 0)), ...end.map((b) => Math.max(b, 0))]);
}

/** Zeros of `shape` in `like`'s float type (an Expand of a scalar: no big constant). */
export function zeros(e: GradEmitter, shape: readonly number[], like: string): string {
  return e.op('Expand', [e.constFloat([0], [], like), e.constInt64(shape)]);
}

/**
 * y = M x along `axis`: y[.., i, ..] = sum_j m[i * dIn + j] x[.., j, ..], M a constant dOut x dIn
 * matrix (row-major). One MatMul; the constant is stored transposed when `axis` is the last one,
 * so the big operand is the left one and onnxruntime runs one GEMM, not many matrix-vector ones.
 */
export function mixAxis(e: GradEmitter, x: string, axis: number, m: Float32Array, dOut: number): string {
  const xs = e.shape(x);
  const dIn = xs[axis]!;
  const pre = numel(xs.slice(0, axis));
  const post = numel(xs.slice(axis + 1));
  const out = xs.map((d, i) => (i === axis ? dOut : d));
  if (post === 1) {
    const t = new Float32Array(dIn * dOut);
    for (let i = 0; i < dOut; i++) for (let j = 0; j < dIn; j++) t[j * dOut + i] = m[i * dIn + j]!;
    const y = e.op('MatMul', [e.reshape(x, [pre, dIn]), e.constFloat(t, [dIn, dOut], x)]);
    return e.reshape(y, out);
  }
  const y = e.op('MatMul', [e.constFloat(m, [dOut, dIn], x), e.reshape(x, [pre, dIn, post])]);
  return e.reshape(y, out);
}
