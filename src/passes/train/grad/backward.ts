// buildGradients: reverse-mode differentiation as a graph transform. From a model whose graph
// computes a scalar loss, it builds one ONNX graph that computes the loss and, as extra outputs,
// the loss's gradients with respect to chosen weights (and inputs), from standard ONNX ops only,
// by walking the nodes the loss depends on in reverse and asking each op's rule (GRAD_RULES) for
// its inputs' gradients. Trainable initializers become graph inputs, so a trainer re-feeds them
// each step. Every gradient a rule returns is checked to have its input's shape: a wrong rule
// fails here, naming the op, not as a silently wrong update.
import { EdgefitError } from '../../../errors.js';
import type { DType } from '../../../ir/dtype.js';
import type { Graph } from '../../../ir/graph.js';
import { cloneModel, opsetVersion, type Model } from '../../../ir/model.js';
import { Node } from '../../../ir/node.js';
import { RULES, type InferCtx } from '../../../ir/shape-rules.js';
import { inferShapes } from '../../../ir/shapes.js';
import { Tensor } from '../../../ir/tensor.js';
import type { AttrValue, TensorType } from '../../../ir/types.js';
import { GRAD_RULES } from './rules/index.js';
import type { AttrLike, GradEmitter, GradRules } from './types.js';

export interface GradientsSpec {
  /** The scalar value to differentiate (a loss the graph already computes). */
  loss: string;
  /** Values to take gradients for: initializers (they become graph inputs) or runtime inputs. */
  wrt: readonly string[];
  /** Static dims for runtime inputs whose dims the model leaves open. */
  shapes?: Map<string, number[]>;
  /** The rule table (GRAD_RULES unless a test narrows it). */
  rules?: GradRules;
}

export interface GradientsResult {
  /** The training model: outputs are the loss, then one gradient per `wrt`, then the model's own outputs. */
  model: Model;
  /** wrt value -> name of its gradient output. */
  grads: Map<string, string>;
  /** Initializers that became graph inputs, with their values (the trainer feeds and updates them). */
  initial: Map<string, Tensor>;
  /** wrt values the loss does not depend on (their gradient output is zeros). */
  unreached: string[];
  /** Nodes emitted for the backward pass. */
  backwardNodes: number;
}

export { floatAttr, floatsAttr } from './attrs.js';

function toAttr(a: AttrLike): AttrValue {
  if (typeof a === 'number') return { type: 'int', value: a };
  if (typeof a === 'string') return { type: 'string', value: a };
  if (Array.isArray(a)) return { type: 'ints', value: [...(a as number[])] };
  return a as AttrValue;
}

function floatTensor(name: string, dtype: DType, values: readonly number[] | Float32Array, dims: readonly number[]): Tensor {
  if (dtype === 'float64') {
    const f = Float64Array.from(values);
    return new Tensor({ name, dtype, dims, bytes: new Uint8Array(f.buffer) });
  }
  return Tensor.fromFloat32(name, dims, values instanceof Float32Array ? values : Float32Array.from(values));
}

/** The emitter over one graph: forward types from shape inference, emitted nodes typed by the same rules. */
class Emitter implements GradEmitter {
  readonly opset: number;
  emitted = 0;
  /** The forward op whose rule is emitting: it names the backward nodes, so a profile says which rule costs what. */
  origin = 'loss';
  private k = 0;
  private readonly values = new Map<string, number[]>();
  private readonly ctx: InferCtx;
  /** The nodes rules emitted (producer() and readers() see the forward graph only). */
  private readonly backward = new Set<Node>();

  constructor(
    private readonly g: Graph,
    private readonly types: Map<string, TensorType>,
    opset: number,
  ) {
    this.opset = opset;
    this.ctx = {
      type: (v) => (v ? this.typeOf(v) : null),
      value: (v) => (v ? this.valueOf(v) : undefined),
      opset,
      graph: g,
    };
  }

  private typeOf(v: string): TensorType | null {
    return this.types.get(v) ?? this.g.type(v);
  }
  private valueOf(v: string): number[] | undefined {
    const known = this.values.get(v);
    if (known) return known;
    const c = this.constant(v);
    return c && (c.dtype === 'int64' || c.dtype === 'int32') && c.size <= 64 ? c.toNumbers() : undefined;
  }

  shape(value: string): number[] {
    const t = this.typeOf(value);
    if (!t?.shape || t.shape.some((d) => typeof d !== 'number')) {
      throw new EdgefitError(
        'SHAPE',
        `training needs static shapes, and '${value}' has ${t?.shape ? `[${t.shape.join(',')}]` : 'no known shape'}`,
        {
          remedy: { option: 'shapes' },
        },
      );
    }
    return t.shape as number[];
  }
  dtype(value: string): DType {
    return this.typeOf(value)?.dtype ?? 'float32';
  }
  constant(value: string): Tensor | undefined {
    const c = this.g.constant(value);
    if (c) return c;
    const p = this.g.producer(value);
    if (p?.opType === 'Constant') {
      const a = p.attrs.get('value');
      if (a?.type === 'tensor') return a.value;
    }
    return undefined;
  }

  producer(value: string): Node | undefined {
    const p = this.g.producer(value);
    return p && !this.backward.has(p) ? p : undefined;
  }
  readers(value: string): readonly Node[] {
    return this.g.consumers(value).filter((n) => !this.backward.has(n));
  }

  emit(opType: string, inputs: readonly string[], attrs: Record<string, AttrLike> = {}, outputs = 1): string[] {
    const outs = Array.from({ length: outputs }, () => this.g.uniqueName(`grad/${this.origin}/${opType}_${this.k++}`));
    const n = new Node({ opType, name: outs[0]!, inputs: [...inputs], outputs: outs });
    for (const [k, v] of Object.entries(attrs)) n.attrs.set(k, toAttr(v));
    // every edit the emitter makes goes through addNode and setInitializer: indexed in place
    this.g.addNode(n, { indexed: true });
    this.backward.add(n);
    this.emitted++;
    const rule = RULES[opType];
    const out = rule ? rule(n, this.ctx) : null;
    outs.forEach((o, i) => {
      const t = out?.types[i];
      if (t) this.types.set(o, t);
      const v = out?.values?.[i];
      if (v) this.values.set(o, v);
    });
    return outs;
  }
  op(opType: string, inputs: readonly string[], attrs?: Record<string, AttrLike>): string {
    return this.emit(opType, inputs, attrs)[0]!;
  }

  private constName(): string {
    return this.g.uniqueName(`grad/const_${this.k++}`);
  }
  constFloat(values: readonly number[] | Float32Array, dims: readonly number[], like?: string): string {
    const dtype: DType = like && this.dtype(like) === 'float64' ? 'float64' : 'float32';
    const t = floatTensor(this.constName(), dtype, values, dims);
    this.g.setInitializer(t, { indexed: true });
    this.types.set(t.name, { dtype, shape: [...dims] });
    return t.name;
  }
  constInt64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const t = Tensor.fromInt64(this.constName(), dims, values);
    this.g.setInitializer(t, { indexed: true });
    this.types.set(t.name, { dtype: 'int64', shape: [...dims] });
    this.values.set(t.name, [...values]);
    return t.name;
  }
  reduceSum(x: string, axes: readonly number[], keepdims = true): string {
    const kd = keepdims ? 1 : 0;
    if (this.opset >= 13) return this.op('ReduceSum', [x, this.constInt64(axes)], { keepdims: kd });
    return this.op('ReduceSum', [x], { axes: [...axes], keepdims: kd });
  }
  reshape(x: string, shape: readonly number[]): string {
    return this.op('Reshape', [x, this.constInt64(shape)]);
  }
  unbroadcast(grad: string, target: readonly number[]): string {
    const gs = this.shape(grad);
    if (gs.length === target.length && gs.every((d, i) => d === target[i])) return grad;
    const lead = gs.length - target.length;
    const axes: number[] = [];
    for (let i = 0; i < gs.length; i++) {
      const t = i < lead ? undefined : target[i - lead];
      if (t === undefined || (t === 1 && gs[i] !== 1)) axes.push(i);
    }
    const summed = axes.length ? this.reduceSum(grad, axes, true) : grad;
    return this.reshape(summed, target);
  }
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** Build the training graph; see the module comment. The input model is not changed. */
export function buildGradients(model: Model, spec: GradientsSpec): GradientsResult {
  const rules = spec.rules ?? GRAD_RULES;
  const m = cloneModel(model);
  const g = m.graph;
  const { types } = inferShapes(m, { shapes: spec.shapes });
  for (const w of spec.wrt) {
    if (!g.initializer(w) && !g.runtimeInputs().some((i) => i.name === w)) {
      throw new EdgefitError('USAGE', `cannot train '${w}': it is neither a weight nor an input of the model`);
    }
  }
  if (!g.producer(spec.loss) && !g.isGraphInput(spec.loss)) {
    throw new EdgefitError('INTERNAL', `the loss '${spec.loss}' is not computed by the graph`);
  }

  // the weights become inputs: fed (and updated) by the trainer every step
  const initial = new Map<string, Tensor>();
  for (const w of spec.wrt) {
    const t = g.initializer(w);
    if (!t) continue;
    if (!t.dtype.startsWith('float')) throw new EdgefitError('USAGE', `cannot train '${w}': its dtype is ${t.dtype}`);
    initial.set(w, g.initializerToInput(w)!);
    types.set(w, { dtype: t.dtype, shape: [...t.dims] });
  }
  g.touch();

  const e = new Emitter(g, types, opsetVersion(m));
  const order = g.topoOrder();

  // values that depend on a trained value, and values the loss depends on: only nodes on both get a rule
  const dep = new Set<string>(spec.wrt);
  for (const n of order) if (n.inputs.some((i) => i && dep.has(i))) for (const o of n.outputs) if (o) dep.add(o);
  const reach = new Set<string>([spec.loss]);
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (n.outputs.some((o) => reach.has(o))) for (const v of g.nodeReads(n)) reach.add(v);
  }

  const lossShape = e.shape(spec.loss);
  if (numel(lossShape) !== 1)
    throw new EdgefitError('INTERNAL', `the loss '${spec.loss}' must be a scalar, it has shape [${lossShape.join(',')}]`);
  const parts = new Map<string, string[]>();
  parts.set(spec.loss, [e.constFloat([1], lossShape, spec.loss)]);
  const gradOf = (v: string): string | undefined => {
    const p = parts.get(v);
    if (!p?.length) return undefined;
    if (p.length > 1) {
      e.origin = 'fanout';
      // a chain of Adds, not one Sum: onnxruntime's Sum of two ran 1.75x its Add (10 of each on
      // 4x64x96x96: 11.1 against 6.3 ms), and fan-out sums were 4-5 % of det's training step
      parts.set(v, [p.reduce((a, b) => e.op('Add', [a, b]))]);
    }
    return parts.get(v)![0];
  };

  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (!n.outputs.some((o) => o && dep.has(o) && reach.has(o))) continue;
    const dy = n.outputs.map((o) => (o ? gradOf(o) : undefined));
    if (dy.every((d) => d === undefined)) continue;
    const rule = n.domain === '' || n.domain === 'ai.onnx' ? rules[n.opType] : undefined;
    if (!rule) {
      throw new EdgefitError(
        'UNSUPPORTED',
        `${n.label()}: op ${n.kind} has no gradient rule, so this model cannot be trained on the box (ops with rules: ${Object.keys(rules).sort().join(', ')})`,
      );
    }
    const need = n.inputs.map((inp, k) => inp !== '' && rule.diff.includes(k) && dep.has(inp));
    if (!need.some(Boolean)) continue;
    e.origin = n.opType;
    const dx = rule.grad(n, dy, need, e);
    need.forEach((needed, k) => {
      if (!needed) return;
      const d = dx[k];
      const inp = n.inputs[k]!;
      if (!d) throw new EdgefitError('INTERNAL', `the gradient rule of ${n.kind} returned no gradient for input ${k} of ${n.label()}`);
      const want = e.shape(inp);
      const got = e.shape(d);
      if (!sameShape(want, got)) {
        throw new EdgefitError(
          'INTERNAL',
          `the gradient rule of ${n.kind} returned shape [${got.join(',')}] for input ${k} ('${inp}', shape [${want.join(',')}]) of ${n.label()}`,
        );
      }
      const list = parts.get(inp) ?? [];
      list.push(d);
      parts.set(inp, list);
    });
  }

  const grads = new Map<string, string>();
  const unreached: string[] = [];
  const outs = [{ name: spec.loss, type: { dtype: e.dtype(spec.loss), shape: lossShape } }];
  for (const w of spec.wrt) {
    const shape = e.shape(w);
    let d = gradOf(w);
    if (!d) {
      unreached.push(w);
      d = e.constFloat(new Float32Array(numel(shape)), shape, w);
    }
    const name = g.uniqueName(`${w}.grad`);
    g.addNode(new Node({ opType: 'Identity', name, inputs: [d], outputs: [name] }));
    grads.set(w, name);
    outs.push({ name, type: { dtype: e.dtype(w), shape } });
  }
  g.outputs = [...outs, ...g.outputs.filter((o) => o.name !== spec.loss)];
  g.touch();
  return { model: m, grads, initial, unreached, backwardNodes: e.emitted };
}
