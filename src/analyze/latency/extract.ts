// The weight layers of a model and standalone one-layer "units" to time them with (issue 17).
// A unit is the weight node plus the elementwise ops right after it whose other inputs are
// constants (bias adds, BatchNormalization, Relu/Clip/HardSwish, a decomposed HardSwish's
// Add/Clip/Div/Mul): their cost scales with the layer's output width, and onnxruntime fuses some
// of them into the convolution (and wraps NCHWc reorders around the others), so timing the
// weight node alone would miss exactly what pruning that layer saves.
import { Graph } from '../../ir/graph.js';
import { modelOf, type Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { staticShape } from '../../ir/shapes.js';
import { Tensor } from '../../ir/tensor.js';
import type { AttrValue } from '../../ir/types.js';
import { rng } from '../../util/rng.js';

/** Ops that keep their input's shape and may follow a weight layer inside its unit. */
const ELEMENTWISE = new Set([
  'Relu',
  'LeakyRelu',
  'PRelu',
  'Clip',
  'HardSwish',
  'HardSigmoid',
  'Sigmoid',
  'Tanh',
  'Elu',
  'Selu',
  'Softplus',
  'Erf',
  'Identity',
  'Mul',
  'Add',
  'Sub',
  'Div',
  'Pow',
  'BatchNormalization',
] as const);

/** A unit stops growing here: long elementwise tails are rare, and a cap bounds odd graphs. */
const MAX_TAIL = 12;

export interface WeightLayer {
  node: Node;
  op: 'Conv' | 'ConvTranspose' | 'Gemm' | 'MatMul';
  /** The data input and its static shape in the model. */
  input: string;
  inShape: number[];
  /** Axis of the data input holding the input channels (1 for convolutions, the last for Gemm/MatMul). */
  inAxis: number;
  /** Axes of the weight holding input and output channels. */
  wIn: number;
  wOut: number;
  inChannels: number;
  outChannels: number;
  group: number;
  depthwise: boolean;
  /**
   * A grouped (not depthwise) Conv: its output channels per group. Pruning removes such a layer's
   * groups whole (passes/prune/ops.ts), so it is measured by kept groups: both sides narrow
   * together, the group count following (`outChannels` side only, like a depthwise layer).
   */
  groupWidth?: number;
  /** Sides that can be narrowed: false for a graph input feeding the layer; a grouped layer's output side stands for both. */
  inPrunable: boolean;
  outPrunable: boolean;
  /** The elementwise ops that follow it inside its unit, in order. */
  tail: Node[];
}

/** A constant input's tensor: an initializer or a Constant node's value. */
function constantOf(g: Graph, v: string): Tensor | undefined {
  const c = g.constant(v);
  if (c) return c;
  const p = g.producer(v);
  if (p && p.opType === 'Constant') return p.attrTensor('value');
  return undefined;
}

/**
 * A value from outside the unit that an elementwise op may join it with: the other branch of a
 * re-parameterised block (PP-LCNetV3: a kxk and a 1x1 Conv added), a residual, an SE gate. Its
 * static shape must broadcast to the unit value's without widening it (same rank, each dim equal
 * or 1), so the join costs what the unit's width costs; the unit reads it as an extra input.
 */
function joinable(g: Graph, v: string, unitShape: readonly number[] | null): boolean {
  const s = staticShape(g, v);
  const t = g.type(v);
  if (!s || !unitShape || t?.dtype !== 'float32' || s.length !== unitShape.length) return false;
  return s.every((d, i) => d === unitShape[i] || d === 1);
}

/**
 * The elementwise ops after `n` reading its values, constants and joinable outside values (see
 * the file comment and joinable), none already in another layer's unit (`claimed`).
 */
function tailOf(g: Graph, n: Node, claimed: Set<Node>): Node[] {
  const inUnit = new Set<string>([n.outputs[0]!]);
  const unitShape = staticShape(g, n.outputs[0]!);
  const tail: Node[] = [];
  let grew = true;
  while (grew && tail.length < MAX_TAIL) {
    grew = false;
    for (const v of [...inUnit]) {
      for (const c of g.consumers(v)) {
        if (tail.includes(c) || claimed.has(c) || !ELEMENTWISE.has(c.opType as never) || c.domain !== '') continue;
        const ok = c.inputs.every((i) => i === '' || inUnit.has(i) || constantOf(g, i) !== undefined || joinable(g, i, unitShape));
        if (!ok || tail.length >= MAX_TAIL) continue;
        tail.push(c);
        claimed.add(c);
        for (const o of c.outputs) if (o) inUnit.add(o);
        grew = true;
      }
    }
  }
  return tail;
}

/** The model's weight layers with static input shapes (shapes must be annotated: annotateShapes / analyzeModel). */
export function weightLayers(model: Model): WeightLayer[] {
  const g = model.graph;
  const out: WeightLayer[] = [];
  const claimed = new Set<Node>();
  for (const n of g.topoOrder()) {
    if (n.domain !== '' || !n.outputs[0]) continue;
    const op = n.opType;
    if (op !== 'Conv' && op !== 'ConvTranspose' && op !== 'Gemm' && op !== 'MatMul') continue;
    const input = n.inputs[0]!;
    const w = g.constant(n.inputs[1] ?? '');
    const inShape = staticShape(g, input);
    if (!w || w.dtype !== 'float32' || !inShape) continue;
    const group = op === 'Conv' || op === 'ConvTranspose' ? n.attrInt('group', 1) : 1;
    let inAxis = 1,
      wIn = 1,
      wOut = 0;
    if (op === 'ConvTranspose') [wIn, wOut] = [0, 1];
    else if (op === 'Gemm') {
      if (n.attrInt('transA', 0) !== 0 || inShape.length !== 2) continue;
      inAxis = 1;
      [wIn, wOut] = n.attrInt('transB', 0) ? [1, 0] : [0, 1];
    } else if (op === 'MatMul') {
      if (w.dims.length !== 2 || inShape.length < 2) continue;
      inAxis = inShape.length - 1;
      [wIn, wOut] = [0, 1];
    }
    const inChannels = inShape[inAxis]!;
    const outChannels = w.dims[wOut]! * (op === 'ConvTranspose' ? group : 1);
    const depthwise = op === 'Conv' && group > 1 && group === inChannels && group === outChannels;
    // grouped layers (1 < group < channels) move in whole groups (RegNet, ResNeXt): measured by
    // kept groups; a grouped ConvTranspose is never pruned and stays unmeasured
    const grouped = op === 'Conv' && group > 1 && !depthwise && outChannels % group === 0 && inChannels % group === 0;
    const plain = group === 1;
    out.push({
      node: n,
      op,
      input,
      inShape,
      inAxis,
      wIn,
      wOut,
      inChannels,
      outChannels,
      group,
      depthwise,
      ...(grouped ? { groupWidth: outChannels / group } : {}),
      inPrunable: plain && !g.isGraphInput(input),
      outPrunable: plain || depthwise || (grouped && !g.isGraphInput(input)),
      tail: tailOf(g, n, claimed),
    });
  }
  return out;
}

/** Small random values (never denormal, never NaN): a unit's time depends on shapes, not on values. */
function noise(n: number, seed: number): Float32Array {
  const next = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (next() - 0.5) * 0.1;
  return a;
}

/** `t`'s float values restricted to the first `keep` entries along `axis`. */
function sliceAxis(t: Tensor, axis: number, keep: number): Tensor {
  const dims = [...t.dims];
  if (dims[axis] === keep) return t;
  const src = t.toFloat32();
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const full = dims[axis]!;
  const out = new Float32Array(outer * keep * inner);
  for (let o = 0; o < outer; o++) out.set(src.subarray(o * full * inner, (o * full + keep) * inner), o * keep * inner);
  dims[axis] = keep;
  return Tensor.fromFloat32(t.name, dims, out);
}

/**
 * A constant read by a tail op, narrowed to `cout` output channels where it is per-channel:
 * right-aligned with the output (rank `outRank`, channels on `chAxis`), the dim facing the
 * channel axis equals the full width. BatchNormalization's 1-D parameters are per-channel too.
 */
function narrowConstant(t: Tensor, full: number, cout: number, outRank: number, chAxis: number, bn: boolean): Tensor {
  if (t.dtype !== 'float32' || full === cout) return t;
  if (bn) return t.dims.length === 1 && t.dims[0] === full ? sliceAxis(t, 0, cout) : t;
  const axis = t.dims.length - (outRank - chAxis);
  if (axis < 0 || t.dims[axis] !== full) return t;
  return sliceAxis(t, axis, cout);
}

/** Attributes that say which node this is, not how it computes: left out of dedupe keys. */
function attrsKey(attrs: ReadonlyMap<string, AttrValue>): string {
  return JSON.stringify([...attrs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v.type === 'tensor' ? v.value.dims : v.value]));
}

// the unit's own value names: odd enough not to meet the model's value names it keeps
const X = '__x',
  W = '__w',
  B = '__b';

export interface Unit {
  model: Model;
  /** The unit's input (name, shape) and what identifies its configuration (for dedupe). */
  input: string;
  inShape: number[];
  /** Every input of the unit: the layer's, then the outside values its tail joins. */
  inputs: Array<{ name: string; shape: number[] }>;
  key: string;
}

/**
 * A standalone model of `l`'s unit with `cin` input and `cout` output channels (a depthwise
 * layer: both equal, and the group follows; a grouped layer: cout / groupWidth whole groups, the
 * input following). The weight is random (same shape as a pruned one); the tail's per-channel
 * constants are the model's own, sliced.
 */
export function buildUnit(model: Model, l: WeightLayer, cin: number, cout: number): Unit {
  const g = model.graph;
  const u = new Graph();
  u.name = `unit_${l.node.name || l.node.outputs[0]}`;
  let group = l.depthwise ? cout : l.group;
  if (l.depthwise) cin = cout;
  else if (l.groupWidth) {
    group = cout / l.groupWidth;
    cin = group * (l.inChannels / l.group);
  }
  const inShape = [...l.inShape];
  inShape[l.inAxis] = cin;
  u.inputs.push({ name: X, type: { dtype: 'float32', shape: inShape } });
  const w = g.constant(l.node.inputs[1]!)!;
  const wDims = [...w.dims];
  if (l.depthwise) wDims[0] = cout;
  else {
    // a grouped weight holds one group's channels on its input axis (Conv) or output axis (ConvTranspose)
    wDims[l.wIn] = l.op === 'Conv' ? cin / group : cin;
    wDims[l.wOut] = l.op === 'ConvTranspose' ? cout / group : cout;
  }
  const size = wDims.reduce((a, b) => a * b, 1);
  u.setInitializer(Tensor.fromFloat32(W, wDims, noise(size, size)));
  const inputs = [X, W];
  const keyParts: unknown[] = [l.op, inShape, wDims];
  if (l.node.inputs[2]) {
    u.setInitializer(Tensor.fromFloat32(B, [cout], noise(cout, 7)));
    inputs.push(B);
    keyParts.push('bias');
  }
  const main = l.node.clone();
  main.inputs = inputs;
  if (l.depthwise || l.groupWidth) main.setInt('group', group);
  keyParts.push(attrsKey(main.attrs));
  u.addNode(main);
  const outShape = staticShape(g, l.node.outputs[0]!);
  const outRank = outShape?.length ?? l.inShape.length;
  const chAxis = l.op === 'Conv' || l.op === 'ConvTranspose' ? 1 : outRank - 1;
  const names = new Set<string>(main.outputs);
  const extra: Array<{ name: string; shape: number[] }> = [];
  for (const t of l.tail) {
    const c = t.clone();
    for (let i = 0; i < c.inputs.length; i++) {
      const v = c.inputs[i]!;
      if (v === '' || names.has(v)) continue;
      const k = constantOf(g, v);
      if (!k) {
        // a joined outside value: an input of the unit, narrowed with the output where per-channel
        const shape = [...staticShape(g, v)!];
        if (shape[chAxis] === l.outChannels) shape[chAxis] = cout;
        const name = `__e${extra.length}`;
        u.inputs.push({ name, type: { dtype: 'float32', shape } });
        extra.push({ name, shape });
        c.inputs[i] = name;
        continue;
      }
      const narrowed = narrowConstant(k, l.outChannels, cout, outRank, chAxis, t.opType === 'BatchNormalization');
      const name = `__c${u.initializerCount}`;
      u.setInitializer(narrowed.withName(name));
      c.inputs[i] = name;
    }
    u.addNode(c);
    for (const o of c.outputs) if (o) names.add(o);
    keyParts.push([
      c.opType,
      attrsKey(c.attrs),
      c.inputs.map((i) => u.initializer(i)?.dims ?? extra.find((e) => e.name === i)?.shape ?? (i === main.outputs[0] ? 'y' : '.')),
    ]);
  }
  // the unit's outputs: its values read outside it in the model (or the model's outputs), at least its last
  const inside = new Set([l.node, ...l.tail]);
  const outs = [...names].filter((v) => g.isGraphOutput(v) || g.consumers(v).some((c) => !inside.has(c)));
  if (!outs.length) outs.push(u.nodes[u.nodes.length - 1]!.outputs[0]!);
  u.outputs = outs.map((name) => ({ name, type: { dtype: 'float32', shape: null } }));
  keyParts.push(outs.map((o) => [...names].indexOf(o)));
  const unitModel = modelOf(u, {
    producer: 'edgefit-latency-unit',
    opset: model.opsets.get('') ?? model.opsets.get('ai.onnx') ?? 17,
    irVersion: model.irVersion,
  });
  return { model: unitModel, input: X, inShape, inputs: [{ name: X, shape: inShape }, ...extra], key: JSON.stringify(keyParts) };
}

/**
 * Widths to measure on one side of `full` channels: block multiples at about 7 points from one
 * block to the full width (every multiple for narrow layers), the full width always last. A
 * layer narrower than two blocks is measured at quarter blocks: pruning may still cut it (a
 * round below the block), and extrapolating its one or two points toward zero overstated what
 * cls's narrow layers save.
 */
export function widthsFor(full: number, block: number, points = 7): number[] {
  if (full < 2 * block) block = Math.max(1, block >> 2);
  const set = new Set<number>();
  const multiples = Math.floor(full / block);
  if (multiples <= points) for (let m = 1; m <= multiples; m++) set.add(m * block);
  else {
    set.add(block);
    for (let i = 1; i < points; i++) set.add(Math.max(block, Math.round((full * i) / points / block) * block));
  }
  set.add(full);
  return [...set].filter((w) => w > 0 && w <= full).sort((a, b) => a - b);
}
