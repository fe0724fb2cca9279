// Exact evaluation of the small tensors exporters compute from shapes at run time (Shape ->
// Gather/Slice -> Unsqueeze -> Concat, Cast, integer arithmetic, ConstantOfShape, Range, ...), for
// the shape-folding pass. The IR's shape inference tracks such values loosely (enough to size
// tensors); folding writes them into the model, so here every op follows its ONNX definition for
// the dtype at hand (integer Div truncates, float results round to float32 after each op), and
// an op or case not handled leaves the value unknown rather than guessed.
import { dtypeFromOnnx, type DType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Node } from '../../ir/node.js';
import type { TensorType } from '../../ir/types.js';

/** A small tensor known before run time: dims and C-order values. */
export interface Val {
  dtype: DType;
  dims: number[];
  data: number[];
}

/** Larger values are never tracked: shape vectors are tiny, and folding must not bloat the file. */
export const MAX_ELEMENTS = 64;

const INT: ReadonlySet<DType> = new Set(['int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'uint32', 'uint64']);
const isInt = (d: DType): boolean => INT.has(d);
const numel = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);
const norm = (a: number, r: number): number => (a < 0 ? a + r : a);

function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
}

/** Round a result to its dtype the way the op would store it. */
function store(dtype: DType, x: number): number {
  if (dtype === 'float32') return Math.fround(x);
  if (dtype === 'bool') return x ? 1 : 0;
  return isInt(dtype) ? Math.trunc(x) : x;
}

function broadcastDims(a: readonly number[], b: readonly number[]): number[] | null {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1,
      y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Element of `v` that broadcasts to multi-index `idx` of an output of rank idx.length. */
function at(v: Val, idx: readonly number[]): number {
  const off = idx.length - v.dims.length;
  const st = strides(v.dims);
  let k = 0;
  v.dims.forEach((d, i) => (k += (d === 1 ? 0 : idx[off + i]!) * st[i]!));
  return v.data[k]!;
}

function unravel(k: number, dims: readonly number[]): number[] {
  const idx = new Array<number>(dims.length).fill(0);
  for (let i = dims.length - 1; i >= 0; i--) {
    idx[i] = k % dims[i]!;
    k = Math.floor(k / dims[i]!);
  }
  return idx;
}

function elementwise(vals: readonly Val[], dtype: DType, f: (xs: number[]) => number): Val | undefined {
  let dims: number[] | null = [];
  for (const v of vals) dims = dims && broadcastDims(dims, v.dims);
  if (!dims || numel(dims) > MAX_ELEMENTS) return undefined;
  const data: number[] = [];
  for (let k = 0; k < numel(dims); k++) {
    const idx = unravel(k, dims);
    data.push(store(dtype, f(vals.map((v) => at(v, idx)))));
  }
  return data.some((x) => !Number.isFinite(x)) ? undefined : { dtype, dims, data };
}

const BINARY: Readonly<Record<string, (x: number, y: number, int: boolean) => number>> = {
  Add: (x, y) => x + y,
  Sub: (x, y) => x - y,
  Mul: (x, y) => x * y,
  // integer Div truncates toward zero (onnxruntime's, C's); a zero divisor stays unknown
  Div: (x, y, int) => (y === 0 ? NaN : int ? Math.trunc(x / y) : x / y),
  Max: (x, y) => Math.max(x, y),
  Min: (x, y) => Math.min(x, y),
  Equal: (x, y) => +(x === y),
  Less: (x, y) => +(x < y),
  Greater: (x, y) => +(x > y),
  LessOrEqual: (x, y) => +(x <= y),
  GreaterOrEqual: (x, y) => +(x >= y),
};
const COMPARE: ReadonlySet<string> = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual']);

const UNARY: Readonly<Record<string, (x: number) => number>> = {
  Identity: (x) => x,
  Neg: (x) => -x,
  Abs: (x) => Math.abs(x),
  Floor: (x) => Math.floor(x),
  Ceil: (x) => Math.ceil(x),
  Sqrt: (x) => Math.sqrt(x),
  Not: (x) => +!x,
};

/** Input i of `n` as a known value, or the given default when the input is absent. */
type Get = (name: string | undefined) => Val | undefined;

function gather(n: Node, x: Val, idx: Val): Val | undefined {
  const r = x.dims.length;
  const axis = norm(n.attrInt('axis', 0)!, r);
  const dims = [...x.dims.slice(0, axis), ...idx.dims, ...x.dims.slice(axis + 1)];
  if (numel(dims) > MAX_ELEMENTS) return undefined;
  const outer = numel(x.dims.slice(0, axis)),
    inner = numel(x.dims.slice(axis + 1)),
    len = x.dims[axis]!;
  const data: number[] = [];
  for (let o = 0; o < outer; o++)
    for (const i0 of idx.data) {
      const i = i0 < 0 ? i0 + len : i0;
      if (i < 0 || i >= len) return undefined;
      for (let j = 0; j < inner; j++) data.push(x.data[(o * len + i) * inner + j]!);
    }
  return { dtype: x.dtype, dims, data };
}

function slice(n: Node, x: Val, get: Get, opset: number): Val | undefined {
  const r = x.dims.length;
  let starts: number[] | undefined, ends: number[] | undefined, axes: number[] | undefined, steps: number[] | undefined;
  if (opset >= 10) {
    starts = get(n.inputs[1])?.data;
    ends = get(n.inputs[2])?.data;
    if (n.inputs[3] && !(axes = get(n.inputs[3])?.data)) return undefined;
    if (n.inputs[4] && !(steps = get(n.inputs[4])?.data)) return undefined;
  } else {
    starts = n.attrInts('starts');
    ends = n.attrInts('ends');
    axes = n.attrInts('axes');
  }
  if (!starts || !ends) return undefined;
  const ranges = x.dims.map((d) => ({ s: 0, e: d, step: 1 }));
  const ax = (axes ?? starts.map((_, i) => i)).map((a) => norm(a, r));
  for (let i = 0; i < ax.length; i++) {
    const d = x.dims[ax[i]!]!;
    const step = steps?.[i] ?? 1;
    if (step === 0) return undefined;
    let s = starts[i]!,
      e = ends[i]!;
    if (s < 0) s += d;
    if (e < 0) e += d;
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    [s, e] = step > 0 ? [clamp(s, 0, d), clamp(e, 0, d)] : [clamp(s, 0, d - 1), clamp(e, -1, d - 1)];
    ranges[ax[i]!] = { s, e, step };
  }
  const picks = ranges.map(({ s, e, step }) => {
    const out: number[] = [];
    for (let k = s; step > 0 ? k < e : k > e; k += step) out.push(k);
    return out;
  });
  const dims = picks.map((p) => p.length);
  const st = strides(x.dims);
  const data: number[] = [];
  for (let k = 0; k < numel(dims); k++) {
    const idx = unravel(k, dims);
    data.push(x.data[idx.reduce((a, v, i) => a + picks[i]![v]! * st[i]!, 0)]!);
  }
  return { dtype: x.dtype, dims, data };
}

function concat(n: Node, xs: Val[]): Val | undefined {
  const r = xs[0]!.dims.length;
  const axis = norm(n.attrInt('axis', 0)!, r);
  if (xs.some((v) => v.dims.length !== r)) return undefined;
  const outer = numel(xs[0]!.dims.slice(0, axis));
  const dims = [...xs[0]!.dims];
  dims[axis] = xs.reduce((a, v) => a + v.dims[axis]!, 0);
  if (numel(dims) > MAX_ELEMENTS) return undefined;
  const data: number[] = [];
  for (let o = 0; o < outer; o++)
    for (const v of xs) {
      const run = numel(v.dims.slice(axis));
      data.push(...v.data.slice(o * run, (o + 1) * run));
    }
  return { dtype: xs[0]!.dtype, dims, data };
}

/** Axes of Squeeze/Unsqueeze: the attribute before opset 13, input 1 from it. */
function axesOf(n: Node, get: Get, opset: number): number[] | undefined | null {
  if (opset >= 13) return n.inputs[1] ? (get(n.inputs[1])?.data ?? null) : undefined;
  return n.attrInts('axes');
}

/** The value of `n`'s outputs from its known inputs (and static input shapes for Shape/Size). */
function evalNode(n: Node, get: Get, type: (v: string) => TensorType | null, opset: number): Val | undefined {
  const x = get(n.inputs[0]);
  const op = n.opType;
  if (op === 'Shape' || op === 'Size') {
    const s = type(n.inputs[0]!)?.shape;
    if (!s || !s.every((d): d is number => typeof d === 'number' && d >= 0)) return undefined;
    if (op === 'Size') return { dtype: 'int64', dims: [], data: [numel(s)] };
    const r = s.length;
    const start = Math.max(0, Math.min(r, norm(n.attrInt('start', 0)!, r)));
    const end = Math.max(0, Math.min(r, norm(n.attrInt('end', r)!, r)));
    const data = s.slice(start, Math.max(start, end));
    return { dtype: 'int64', dims: [data.length], data };
  }
  if (op === 'ConstantOfShape') {
    if (!x || x.data.some((d) => d < 0) || numel(x.data) > MAX_ELEMENTS) return undefined;
    const t = n.attrTensor('value');
    const dtype = t?.dtype ?? 'float32';
    if (t && t.size !== 1) return undefined;
    const v = t ? t.toNumbers()[0]! : 0;
    return { dtype, dims: [...x.data], data: new Array<number>(numel(x.data)).fill(v) };
  }
  if (op === 'Range') {
    const [s, l, d] = [x, get(n.inputs[1]), get(n.inputs[2])];
    if (!s || !l || !d || d.data[0] === 0) return undefined;
    const count = Math.max(Math.ceil((l.data[0]! - s.data[0]!) / d.data[0]!), 0);
    if (count > MAX_ELEMENTS) return undefined;
    const data = Array.from({ length: count }, (_, i) => store(s.dtype, s.data[0]! + i * d.data[0]!));
    return { dtype: s.dtype, dims: [count], data };
  }
  if (!x) return undefined;
  if (op in UNARY) return elementwise([x], x.dtype, ([a]) => UNARY[op]!(a!));
  if (op in BINARY) {
    const y = get(n.inputs[1]);
    if (!y || y.dtype !== x.dtype) return undefined;
    const int = isInt(x.dtype);
    return elementwise([x, y], COMPARE.has(op) ? 'bool' : x.dtype, ([a, b]) => BINARY[op]!(a!, b!, int));
  }
  switch (op) {
    case 'Cast': {
      const to = dtypeFromOnnx(n.attrInt('to', 1));
      // float -> int truncates toward zero (onnxruntime); other conversions keep the value
      return to === 'float32' || to === 'float64' || isInt(to) || to === 'bool' ? elementwise([x], to, ([a]) => a!) : undefined;
    }
    case 'Where': {
      const [a, b] = [get(n.inputs[1]), get(n.inputs[2])];
      if (!a || !b || a.dtype !== b.dtype) return undefined;
      return elementwise([x, a, b], a.dtype, ([c, p, q]) => (c ? p! : q!));
    }
    case 'Gather': {
      const idx = get(n.inputs[1]);
      return idx ? gather(n, x, idx) : undefined;
    }
    case 'Slice':
      return slice(n, x, get, opset);
    case 'Concat': {
      const xs = n.inputs.map((i) => get(i));
      return xs.every((v): v is Val => !!v) ? concat(n, xs) : undefined;
    }
    case 'Unsqueeze': {
      const axes = axesOf(n, get, opset);
      if (!axes) return undefined;
      const r = x.dims.length + axes.length;
      const set = new Set(axes.map((a) => norm(a, r)));
      const dims: number[] = [];
      for (let i = 0, j = 0; i < r; i++) dims.push(set.has(i) ? 1 : x.dims[j++]!);
      return { ...x, dims };
    }
    case 'Squeeze': {
      const axes = axesOf(n, get, opset);
      if (axes === null) return undefined;
      const set = new Set((axes ?? x.dims.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => norm(a, x.dims.length)));
      return { ...x, dims: x.dims.filter((_, i) => !set.has(i)) };
    }
    case 'Reshape': {
      const s = get(n.inputs[1]);
      if (!s) return undefined;
      const allowzero = n.attrInt('allowzero', 0) === 1;
      const dims = s.data.map((d, i) => (d === 0 && !allowzero ? x.dims[i]! : d));
      const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
      const filled = dims.map((d) => (d === -1 ? x.data.length / known : d));
      return filled.every((d) => Number.isInteger(d) && d >= 0) && numel(filled) === x.data.length ? { ...x, dims: filled } : undefined;
    }
    case 'ReduceProd':
    case 'ReduceSum': {
      // only the whole-tensor reduction exporters use on shape vectors
      const axes = opset >= 18 || op === 'ReduceSum' ? (n.inputs[1] ? get(n.inputs[1])?.data : undefined) : n.attrInts('axes');
      if (x.dims.length > 1 || (axes && axes.length && !(axes.length === 1 && norm(axes[0]!, 1) === 0))) return undefined;
      const v = op === 'ReduceProd' ? x.data.reduce((a, b) => a * b, 1) : x.data.reduce((a, b) => a + b, 0);
      const keep = n.attrInt('keepdims', 1) === 1;
      return { dtype: x.dtype, dims: keep ? [1] : [], data: [store(x.dtype, v)] };
    }
    default:
      return undefined;
  }
}

/**
 * Every value of `g` known before run time: small initializers, and what the ops above compute
 * from them and from the static shapes in `types` (the input shapes fixed, then inferred).
 */
export function knownValues(g: Graph, types: ReadonlyMap<string, TensorType>, opset: number): Map<string, Val> {
  const vals = new Map<string, Val>();
  for (const t of g.initializers()) {
    if (g.isGraphInput(t.name) || t.size > MAX_ELEMENTS) continue;
    if (!(isInt(t.dtype) || t.dtype === 'float32' || t.dtype === 'bool')) continue;
    vals.set(t.name, { dtype: t.dtype, dims: [...t.dims], data: t.toNumbers() });
  }
  const get: Get = (v) => (v ? vals.get(v) : undefined);
  const type = (v: string) => types.get(v) ?? g.type(v);
  for (const n of g.topoOrder()) {
    if ((n.domain !== '' && n.domain !== 'ai.onnx') || n.outputs.length !== 1 || !n.outputs[0]) continue;
    let v: Val | undefined;
    try {
      v = evalNode(n, get, type, opset);
    } catch {
      v = undefined; // a malformed node stays unknown; validation reports it elsewhere
    }
    if (v && v.data.length <= MAX_ELEMENTS && v.data.length === numel(v.dims)) vals.set(n.outputs[0], v);
  }
  return vals;
}
