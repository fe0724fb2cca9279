// Per-op shape rules. Each returns output types (and, for small integer tensors, values).
import type { Graph } from './graph.js';
import type { Node } from './node.js';
import type { Dim, TensorType } from './types.js';
import type { DType } from './dtype.js';
import { dtypeFromOnnx } from './dtype.js';

export interface InferCtx {
  type(v: string | undefined): TensorType | null;
  value(v: string | undefined): number[] | undefined;
  opset: number;
  graph: Graph;
}
export interface RuleOut {
  types: (TensorType | null)[];
  values?: (number[] | undefined)[];
}
export type Rule = (n: Node, c: InferCtx) => RuleOut | null;

const one = (t: TensorType | null, v?: number[]): RuleOut => ({ types: [t], values: [v] });
const same: Rule = (n, c) => one(c.type(n.inputs[0]));
const shp = (c: InferCtx, v: string | undefined): Dim[] | null => c.type(v)?.shape ?? null;
const dt = (c: InferCtx, v: string | undefined): DType => c.type(v)?.dtype ?? 'float32';
const normAxis = (a: number, r: number): number => (a < 0 ? a + r : a);

function broadcast(shapes: (Dim[] | null)[]): Dim[] | null {
  if (shapes.some((s) => s === null)) return null;
  const rank = Math.max(...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes as Dim[][]) {
      const x = s[s.length - rank + i];
      if (x === undefined || x === 1) continue;
      if (d === 1) d = x;
      else if (typeof d === 'number' && typeof x === 'number' && d !== x) throw new Error('broadcast');
      else if (d === null || typeof d === 'string') d = typeof x === 'number' ? x : d;
    }
    out.push(d);
  }
  return out;
}

function elementwiseValues(op: string, a?: number[], b?: number[]): number[] | undefined {
  if (!a || !b) return undefined;
  const n = Math.max(a.length, b.length);
  if (a.length !== n && a.length !== 1) return undefined;
  if (b.length !== n && b.length !== 1) return undefined;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length === 1 ? 0 : i]!;
    const y = b[b.length === 1 ? 0 : i]!;
    out.push(op === 'Add' ? x + y : op === 'Sub' ? x - y : op === 'Mul' ? x * y : op === 'Div' ? Math.trunc(x / y) : NaN);
  }
  return out.some(Number.isNaN) ? undefined : out;
}

const binary: Rule = (n, c) => {
  const s = broadcast([shp(c, n.inputs[0]), shp(c, n.inputs[1])]);
  return one({ dtype: dt(c, n.inputs[0]), shape: s }, elementwiseValues(n.opType, c.value(n.inputs[0]), c.value(n.inputs[1])));
};
const compare: Rule = (n, c) => one({ dtype: 'bool', shape: broadcast([shp(c, n.inputs[0]), shp(c, n.inputs[1])]) });
const variadic: Rule = (n, c) => one({ dtype: dt(c, n.inputs[0]), shape: broadcast(n.inputs.map((i) => shp(c, i))) });

function spatial(n: Node, c: InferCtx, x: Dim[], kernel: number[], outC: Dim): Dim[] {
  const r = kernel.length;
  const strides = n.attrInts('strides') ?? Array(r).fill(1);
  const dil = n.attrInts('dilations') ?? Array(r).fill(1);
  let pads = n.attrInts('pads') ?? Array(2 * r).fill(0);
  const autoPad = n.attrString('auto_pad') ?? 'NOTSET';
  const ceil = n.attrInt('ceil_mode', 0) === 1;
  const out: Dim[] = [x[0]!, outC];
  for (let i = 0; i < r; i++) {
    const inp = x[i + 2];
    if (typeof inp !== 'number') {
      out.push(null);
      continue;
    }
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      out.push(Math.ceil(inp / strides[i]!));
      continue;
    }
    if (autoPad === 'VALID') pads = Array(2 * r).fill(0);
    const eff = inp + pads[i]! + pads[i + r]! - dil[i]! * (kernel[i]! - 1) - 1;
    out.push((ceil ? Math.ceil(eff / strides[i]!) : Math.floor(eff / strides[i]!)) + 1);
  }
  void c;
  return out;
}

const conv: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  const w = shp(c, n.inputs[1]);
  if (!x || !w) return null;
  const kernel = n.attrInts('kernel_shape') ?? (w.slice(2) as number[]);
  return one({ dtype: dt(c, n.inputs[0]), shape: spatial(n, c, x, kernel, w[0]!) });
};

const convTranspose: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  const w = shp(c, n.inputs[1]);
  if (!x || !w) return null;
  const group = n.attrInt('group', 1);
  const kernel = n.attrInts('kernel_shape') ?? (w.slice(2) as number[]);
  const r = kernel.length;
  const outC = typeof w[1] === 'number' ? w[1] * group : null;
  const explicit = n.attrInts('output_shape');
  if (explicit) return one({ dtype: dt(c, n.inputs[0]), shape: [x[0]!, outC, ...explicit.slice(-r)] });
  const strides = n.attrInts('strides') ?? Array(r).fill(1);
  const dil = n.attrInts('dilations') ?? Array(r).fill(1);
  const pads = n.attrInts('pads') ?? Array(2 * r).fill(0);
  const outPad = n.attrInts('output_padding') ?? Array(r).fill(0);
  const out: Dim[] = [x[0]!, outC];
  // SAME_UPPER / SAME_LOWER: the output is the input times the stride, the pads split to fit
  const same = (n.attrString('auto_pad') ?? '').startsWith('SAME');
  for (let i = 0; i < r; i++) {
    const inp = x[i + 2];
    if (same) {
      out.push(typeof inp === 'number' ? inp * strides[i]! : null);
      continue;
    }
    out.push(
      typeof inp === 'number' ? strides[i]! * (inp - 1) + outPad[i]! + ((kernel[i]! - 1) * dil[i]! + 1) - pads[i]! - pads[i + r]! : null,
    );
  }
  return one({ dtype: dt(c, n.inputs[0]), shape: out });
};

const pool: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return null;
  const kernel = n.attrInts('kernel_shape');
  if (!kernel) return null;
  const outs: RuleOut = one({ dtype: dt(c, n.inputs[0]), shape: spatial(n, c, x, kernel, x[1]!) });
  if (n.outputs.length > 1) outs.types.push({ dtype: 'int64', shape: outs.types[0]!.shape });
  return outs;
};

const globalPool: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  return one({ dtype: dt(c, n.inputs[0]), shape: x ? [x[0]!, x[1]!, ...x.slice(2).map(() => 1)] : null });
};

const gemm: Rule = (n, c) => {
  const a = shp(c, n.inputs[0]);
  const b = shp(c, n.inputs[1]);
  if (!a || !b) return null;
  const m = n.attrInt('transA', 0) ? a[1]! : a[0]!;
  const k = n.attrInt('transB', 0) ? b[0]! : b[1]!;
  return one({ dtype: dt(c, n.inputs[0]), shape: [m, k] });
};

const matmul: Rule = (n, c) => {
  const a = shp(c, n.inputs[0]);
  const b = shp(c, n.inputs[1]);
  if (!a || !b) return null;
  const dtype: DType = n.opType === 'MatMulInteger' ? 'int32' : dt(c, n.inputs[0]);
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const batch = broadcast([a2.slice(0, -2), b2.slice(0, -2)]);
  if (!batch) return null;
  const out: Dim[] = [...batch];
  if (a.length !== 1) out.push(a2[a2.length - 2]!);
  if (b.length !== 1) out.push(b2[b2.length - 1]!);
  return one({ dtype, shape: out });
};

const concat: Rule = (n, c) => {
  const ins = n.inputs.filter((i) => i !== '');
  const shapes = ins.map((i) => shp(c, i));
  const first = shapes.find((s) => s !== null);
  if (!first) return null;
  const axis = normAxis(n.attrInt('axis', 0), first.length);
  const out = [...first];
  let sum: Dim = 0;
  for (const s of shapes) {
    const d = s ? s[axis] : null;
    sum = typeof sum === 'number' && typeof d === 'number' ? sum + d : null;
  }
  out[axis] = sum;
  const vals = ins.map((i) => c.value(i));
  const values = first.length === 1 && vals.every((v) => v !== undefined) ? (vals.flat() as number[]) : undefined;
  return one({ dtype: dt(c, ins[0]), shape: out }, values);
};

const reshape: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  const target = c.opset >= 5 ? c.value(n.inputs[1]) : n.attrInts('shape');
  if (!target) return null;
  const allowZero = n.attrInt('allowzero', 0) === 1;
  const out: Dim[] = target.map((d, i) => (d === 0 && !allowZero ? (x ? (x[i] ?? null) : null) : d));
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const total = x && x.every((d) => typeof d === 'number') ? (x as number[]).reduce((a, b) => a * b, 1) : null;
    const rest = out.filter((_, i) => i !== neg);
    out[neg] = total !== null && rest.every((d) => typeof d === 'number') ? total / (rest as number[]).reduce((a, b) => a * b, 1) : null;
  }
  return one({ dtype: dt(c, n.inputs[0]), shape: out }, c.value(n.inputs[0]));
};

const flatten: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return null;
  const axis = normAxis(n.attrInt('axis', 1), x.length);
  const prod = (s: Dim[]): Dim => s.reduce<Dim>((a, b) => (typeof a === 'number' && typeof b === 'number' ? a * b : null), 1);
  return one({ dtype: dt(c, n.inputs[0]), shape: [prod(x.slice(0, axis)), prod(x.slice(axis))] });
};

const transpose: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return null;
  const perm = n.attrInts('perm') ?? x.map((_, i) => x.length - 1 - i);
  return one({ dtype: dt(c, n.inputs[0]), shape: perm.map((p) => x[p]!) });
};

function axesOf(n: Node, c: InferCtx, inputIdx: number): number[] | undefined {
  return c.opset >= 13 && n.inputs.length > inputIdx ? c.value(n.inputs[inputIdx]) : n.attrInts('axes');
}

const squeeze: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return null;
  const axes = (axesOf(n, c, 1) ?? x.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)).map((a) => normAxis(a, x.length));
  return one({ dtype: dt(c, n.inputs[0]), shape: x.filter((_, i) => !axes.includes(i)) }, c.value(n.inputs[0]));
};

const unsqueeze: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  const axes0 = axesOf(n, c, 1);
  if (!x || !axes0) return null;
  const r = x.length + axes0.length;
  const axes = axes0.map((a) => normAxis(a, r)).sort((a, b) => a - b);
  const out: Dim[] = [];
  let k = 0;
  for (let i = 0; i < r; i++) out.push(axes.includes(i) ? 1 : x[k++]!);
  return one({ dtype: dt(c, n.inputs[0]), shape: out }, c.value(n.inputs[0]));
};

const shapeOp: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return one({ dtype: 'int64', shape: [null] });
  let start = n.attrInt('start', 0);
  let end = n.attrInt('end', x.length);
  start = Math.max(0, normAxis(start, x.length));
  end = Math.min(x.length, normAxis(end, x.length));
  const part = x.slice(start, end);
  const values = part.every((d) => typeof d === 'number') ? (part as number[]) : undefined;
  return one({ dtype: 'int64', shape: [part.length] }, values);
};

const gather: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  const idx = shp(c, n.inputs[1]);
  if (!x || !idx) return null;
  const axis = normAxis(n.attrInt('axis', 0), x.length);
  const out = [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)];
  const xv = c.value(n.inputs[0]);
  const iv = c.value(n.inputs[1]);
  const values = xv && iv && x.length === 1 ? iv.map((i) => xv[i < 0 ? i + xv.length : i]!) : undefined;
  return one({ dtype: dt(c, n.inputs[0]), shape: out }, values);
};

const slice: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return null;
  let starts: number[] | undefined, ends: number[] | undefined, axes: number[] | undefined, steps: number[] | undefined;
  if (c.opset >= 10) {
    starts = c.value(n.inputs[1]);
    ends = c.value(n.inputs[2]);
    axes = n.inputs[3] ? c.value(n.inputs[3]) : undefined;
    steps = n.inputs[4] ? c.value(n.inputs[4]) : undefined;
    if ((n.inputs[3] && !axes) || (n.inputs[4] && !steps)) return null;
  } else {
    starts = n.attrInts('starts');
    ends = n.attrInts('ends');
    axes = n.attrInts('axes');
  }
  if (!starts || !ends) return null;
  const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis(a, x.length));
  const out = [...x];
  const xv = c.value(n.inputs[0]);
  let values: number[] | undefined;
  ax.forEach((a, i) => {
    const d = x[a];
    const step = steps?.[i] ?? 1;
    if (typeof d !== 'number') {
      out[a] = null;
      return;
    }
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    let s = starts![i]!;
    let e = ends![i]!;
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (step > 0) {
      s = clamp(s, 0, d);
      e = clamp(e, 0, d);
      out[a] = Math.max(0, Math.ceil((e - s) / step));
    } else {
      s = clamp(s, 0, d - 1);
      e = clamp(e, -1, d - 1);
      out[a] = Math.max(0, Math.ceil((e - s) / step));
    }
    if (xv && x.length === 1) {
      values = [];
      for (let k = s; step > 0 ? k < e : k > e; k += step) values.push(xv[k]!);
    }
  });
  return one({ dtype: dt(c, n.inputs[0]), shape: out }, values);
};

const split: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return null;
  const axis = normAxis(n.attrInt('axis', 0), x.length);
  let parts = c.opset >= 13 && n.inputs[1] ? c.value(n.inputs[1]) : n.attrInts('split');
  const d = x[axis];
  if (!parts) {
    if (typeof d !== 'number') return null;
    const k = n.outputs.length;
    const each = Math.ceil(d / k);
    parts = Array.from({ length: k }, (_, i) => Math.min(each, d - each * i));
  }
  return { types: parts.map((p) => ({ dtype: dt(c, n.inputs[0]), shape: x.map((v, i) => (i === axis ? p : v)) })) };
};

const resize: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return null;
  let sizes: number[] | undefined;
  let scales: number[] | undefined;
  if (n.opType === 'Upsample') scales = c.opset >= 9 ? c.value(n.inputs[1]) : n.attrFloats('scales');
  else if (c.opset >= 11) {
    scales = n.inputs[2] ? c.value(n.inputs[2]) : undefined;
    sizes = n.inputs[3] ? c.value(n.inputs[3]) : undefined;
    if (scales && scales.length === 0) scales = undefined;
  } else scales = c.value(n.inputs[1]);
  if (sizes && sizes.length === x.length) return one({ dtype: dt(c, n.inputs[0]), shape: sizes });
  if (!scales || scales.length !== x.length) return null;
  return one({ dtype: dt(c, n.inputs[0]), shape: x.map((d, i) => (typeof d === 'number' ? Math.floor(d * scales![i]!) : null)) });
};

const reduce: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return null;
  const fromInput = (n.opType === 'ReduceSum' && c.opset >= 13) || c.opset >= 18;
  const axes0 = fromInput ? (n.inputs[1] ? c.value(n.inputs[1]) : undefined) : n.attrInts('axes');
  if (fromInput && n.inputs[1] && !axes0) return null;
  const axes = (axes0 ?? x.map((_, i) => i)).map((a) => normAxis(a, x.length));
  const keep = n.attrInt('keepdims', 1) === 1;
  const out = keep ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i));
  return one({ dtype: dt(c, n.inputs[0]), shape: out });
};

const argReduce: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return null;
  const axis = normAxis(n.attrInt('axis', 0), x.length);
  const keep = n.attrInt('keepdims', 1) === 1;
  return one({ dtype: 'int64', shape: keep ? x.map((d, i) => (i === axis ? 1 : d)) : x.filter((_, i) => i !== axis) });
};

const pad: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  if (!x) return null;
  const pads = c.opset >= 11 ? c.value(n.inputs[1]) : n.attrInts('pads');
  if (!pads) return null;
  const r = x.length;
  return one({ dtype: dt(c, n.inputs[0]), shape: x.map((d, i) => (typeof d === 'number' ? d + pads[i]! + pads[i + r]! : null)) });
};

const cast: Rule = (n, c) => one({ dtype: dtypeFromOnnx(n.attrInt('to', 1)), shape: shp(c, n.inputs[0]) }, c.value(n.inputs[0]));

const constantOfShape: Rule = (n, c) => {
  const s = c.value(n.inputs[0]);
  const t = n.attrTensor('value');
  return one({ dtype: t?.dtype ?? 'float32', shape: s ?? null });
};

const expand: Rule = (n, c) => {
  const s = c.value(n.inputs[1]);
  if (!s) return null;
  return one({ dtype: dt(c, n.inputs[0]), shape: broadcast([shp(c, n.inputs[0]), s]) });
};

const tile: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  const r = c.value(n.inputs[1]);
  if (!x || !r) return null;
  return one({ dtype: dt(c, n.inputs[0]), shape: x.map((d, i) => (typeof d === 'number' ? d * r[i]! : null)) });
};

const rnn: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  const h = n.attrInt('hidden_size');
  if (!x || !h) return null;
  const dirs = n.attrString('direction') === 'bidirectional' ? 2 : 1;
  const layout = n.attrInt('layout', 0);
  const [seq, batch] = layout === 0 ? [x[0]!, x[1]!] : [x[1]!, x[0]!];
  const y: Dim[] = layout === 0 ? [seq, dirs, batch, h] : [batch, seq, dirs, h];
  const yh: Dim[] = layout === 0 ? [dirs, batch, h] : [batch, dirs, h];
  return {
    types: [
      { dtype: dt(c, n.inputs[0]), shape: y },
      { dtype: dt(c, n.inputs[0]), shape: yh },
      { dtype: dt(c, n.inputs[0]), shape: yh },
    ],
  };
};

const dropout: Rule = (n, c) => ({ types: [c.type(n.inputs[0]), { dtype: 'bool', shape: shp(c, n.inputs[0]) }] });

const depthToSpace: Rule = (n, c) => {
  const x = shp(c, n.inputs[0]);
  const b = n.attrInt('blocksize', 1);
  if (!x || x.length !== 4) return null;
  const [N, C, H, W] = x;
  const m = (d: Dim, f: number): Dim => (typeof d === 'number' ? d * f : null);
  return n.opType === 'DepthToSpace'
    ? one({ dtype: dt(c, n.inputs[0]), shape: [N!, typeof C === 'number' ? C / (b * b) : null, m(H!, b), m(W!, b)] })
    : one({
        dtype: dt(c, n.inputs[0]),
        shape: [N!, m(C!, b * b), typeof H === 'number' ? H / b : null, typeof W === 'number' ? W / b : null],
      });
};

const quantLinear: Rule = (n, c) => {
  const zpType = c.type(n.inputs[2])?.dtype ?? 'uint8';
  return one({ dtype: zpType, shape: shp(c, n.inputs[0]) });
};

const dynQuant: Rule = (n, c) => ({
  types: [
    { dtype: 'uint8', shape: shp(c, n.inputs[0]) },
    { dtype: 'float32', shape: [] },
    { dtype: 'uint8', shape: [] },
  ],
});

const where: Rule = (n, c) =>
  one({ dtype: dt(c, n.inputs[1]), shape: broadcast([shp(c, n.inputs[0]), shp(c, n.inputs[1]), shp(c, n.inputs[2])]) });

const range: Rule = (n, c) => {
  const [s, l, d] = [c.value(n.inputs[0]), c.value(n.inputs[1]), c.value(n.inputs[2])];
  if (!s || !l || !d) return one({ dtype: dt(c, n.inputs[0]), shape: [null] });
  const len = Math.max(Math.ceil((l[0]! - s[0]!) / d[0]!), 0);
  return one({ dtype: dt(c, n.inputs[0]), shape: [len] });
};

const UNARY = [
  'Relu',
  'LeakyRelu',
  'PRelu',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Tanh',
  'Elu',
  'Selu',
  'Gelu',
  'Erf',
  'Exp',
  'Log',
  'Sqrt',
  'Reciprocal',
  'Neg',
  'Abs',
  'Ceil',
  'Floor',
  'Round',
  'Sin',
  'Cos',
  'Softplus',
  'Softsign',
  'Mish',
  'Clip',
  'Identity',
  'BatchNormalization',
  'InstanceNormalization',
  'LayerNormalization',
  'GroupNormalization',
  'Softmax',
  'LogSoftmax',
  'LRN',
  'CumSum',
  'Not',
  'Sign',
  'ThresholdedRelu',
  'Celu',
  'Shrink',
  'HardMax',
  'Hardmax',
  'LpNormalization',
  'MeanVarianceNormalization',
  'DequantizeLinearSame',
  'QuickGelu',
] as const;

export const RULES: Record<string, Rule> = {
  Conv: conv,
  ConvInteger: conv,
  QLinearConv: conv,
  ConvTranspose: convTranspose,
  MaxPool: pool,
  AveragePool: pool,
  LpPool: pool,
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  Gemm: gemm,
  MatMul: matmul,
  MatMulInteger: matmul,
  Add: binary,
  Sub: binary,
  Mul: binary,
  Div: binary,
  Pow: binary,
  Mod: binary,
  BitShift: binary,
  And: compare,
  Or: compare,
  Xor: compare,
  Equal: compare,
  Less: compare,
  Greater: compare,
  LessOrEqual: compare,
  GreaterOrEqual: compare,
  Max: variadic,
  Min: variadic,
  Sum: variadic,
  Mean: variadic,
  Concat: concat,
  Reshape: reshape,
  Flatten: flatten,
  Transpose: transpose,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Shape: shapeOp,
  Gather: gather,
  Slice: slice,
  Split: split,
  Resize: resize,
  Upsample: resize,
  ReduceMean: reduce,
  ReduceSum: reduce,
  ReduceMax: reduce,
  ReduceMin: reduce,
  ReduceProd: reduce,
  ReduceL2: reduce,
  ReduceL1: reduce,
  ReduceSumSquare: reduce,
  ReduceLogSumExp: reduce,
  ArgMax: argReduce,
  ArgMin: argReduce,
  Pad: pad,
  Cast: cast,
  ConstantOfShape: constantOfShape,
  Expand: expand,
  Tile: tile,
  LSTM: rnn,
  GRU: rnn,
  RNN: rnn,
  Dropout: dropout,
  DepthToSpace: depthToSpace,
  SpaceToDepth: depthToSpace,
  QuantizeLinear: quantLinear,
  DequantizeLinear: (n, c) => one({ dtype: 'float32', shape: shp(c, n.inputs[0]) }),
  DynamicQuantizeLinear: dynQuant,
  Where: where,
  Range: range,
  Size: () => one({ dtype: 'int64', shape: [] }),
  NonZero: (n, c) => one({ dtype: 'int64', shape: [shp(c, n.inputs[0])?.length ?? null, null] }),
};
for (const op of UNARY) RULES[op] ??= same;
