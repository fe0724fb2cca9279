// Adam inside the training graph (issue 18: "the optimiser runs in TypeScript or in-graph — measure
// which is faster"). appendAdam turns buildGradients' training graph into one whose single run does
// forward, backward and the update: the trained weights enter as one flat vector (split and
// reshaped inside the graph into the tensors the model reads), with Adam's two moment vectors and
// three per-step scalars, and the updated vector and moments come out, to be fed back unchanged
// next step (no copy in JS). The update is the one Adam (adam.ts) computes: bias correction folded
// into the step size and epsilon, decoupled weight decay. One difference: where a gradient element
// is not finite, TypeScript Adam skips the element; here it counts as 0 (the moments still decay).
// Measured against the TypeScript Adam by scripts/bench-train-step.ts --optimizer.
import type * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import { cloneModel, opsetVersion, type Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import type { AttrValue } from '../../ir/types.js';
import { floatTensor } from '../../runtime/runner.js';
import type { AdamOptions } from './adam.js';

/** Names of the in-graph optimiser's inputs and outputs. */
export const ADAM_IO = {
  params: 'adam.params',
  m: 'adam.m',
  v: 'adam.v',
  /** lr * sqrt(1 - b2^t) / (1 - b1^t) */
  stepSize: 'adam.step_size',
  /** eps * sqrt(1 - b2^t) */
  eps: 'adam.eps',
  /** 1 - lr * weightDecay */
  decay: 'adam.decay',
  paramsOut: 'adam.params.next',
  mOut: 'adam.m.next',
  vOut: 'adam.v.next',
} as const;

export interface AdamGraph {
  model: Model;
  /** Each trained weight's place in the flat vector: offset and length (weights in `wrt` order). */
  layout: Map<string, { offset: number; size: number; dims: number[] }>;
  /** Elements of the flat vector. */
  size: number;
}

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/**
 * The training graph `model` (from buildGradients: weights `grads.keys()` are float32 graph inputs,
 * `grads` names each one's gradient output) with Adam appended; see the module comment. Its
 * outputs: the loss (first, as before), the updated vector and moments, then the model's own.
 */
export function appendAdam(model: Model, grads: ReadonlyMap<string, string>, o: AdamOptions = {}): AdamGraph {
  const b1 = o.beta1 ?? 0.9;
  const b2 = o.beta2 ?? 0.999;
  const m = cloneModel(model);
  const g = m.graph;
  const opset = opsetVersion(m);
  let k = 0;
  const name = (base: string): string => g.uniqueName(`adam/${base}_${k++}`);
  const op = (opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string => {
    const out = name(opType);
    const n = new Node({ opType, name: out, inputs, outputs: [out] });
    for (const [a, v] of Object.entries(attrs)) n.attrs.set(a, v);
    g.addNode(n);
    return out;
  };
  const constF = (v: number): string => {
    const t = Tensor.fromFloat32(name('c'), [1], [v]);
    g.setInitializer(t);
    return t.name;
  };
  const constI = (v: readonly number[]): string => {
    const t = Tensor.fromInt64(name('shape'), [v.length], v);
    g.setInitializer(t);
    return t.name;
  };

  const layout = new Map<string, { offset: number; size: number; dims: number[] }>();
  let size = 0;
  for (const w of grads.keys()) {
    const info = g.inputs.find((i) => i.name === w);
    const dims = info?.type?.shape;
    if (!info || info.type?.dtype !== 'float32' || !dims?.every((d): d is number => typeof d === 'number')) {
      throw new EdgefitError('INTERNAL', `in-graph Adam: '${w}' is not a float32 graph input of static shape`);
    }
    layout.set(w, { offset: size, size: numel(dims), dims: [...dims] });
    size += numel(dims);
  }
  const names = [...layout.keys()];
  const sizes = names.map((w) => layout.get(w)!.size);

  // the flat vector in; each weight a reshaped piece of it (the forward reads the weights' names unchanged)
  g.inputs = g.inputs.filter((i) => !layout.has(i.name));
  const vec = (n: string) => ({ name: n, type: { dtype: 'float32' as const, shape: [size] } });
  const scalarIn = (n: string) => ({ name: n, type: { dtype: 'float32' as const, shape: [1] } });
  g.inputs.push(
    vec(ADAM_IO.params),
    vec(ADAM_IO.m),
    vec(ADAM_IO.v),
    scalarIn(ADAM_IO.stepSize),
    scalarIn(ADAM_IO.eps),
    scalarIn(ADAM_IO.decay),
  );
  const pieces = names.map(() => name('piece'));
  const split = new Node({ opType: 'Split', name: name('Split'), inputs: [ADAM_IO.params], outputs: pieces });
  split.attrs.set('axis', { type: 'int', value: 0 });
  if (opset >= 13) split.inputs.push(constI(sizes));
  else split.attrs.set('split', { type: 'ints', value: sizes });
  if (names.length === 1) {
    // one piece: the vector itself
    g.addNode(new Node({ opType: 'Identity', name: name('Identity'), inputs: [ADAM_IO.params], outputs: [pieces[0]!] }));
  } else g.addNode(split);
  names.forEach((w, i) =>
    g.addNode(new Node({ opType: 'Reshape', name: name('Reshape'), inputs: [pieces[i]!, constI(layout.get(w)!.dims)], outputs: [w] })),
  );

  // the gradients flat, in the same order; a non-finite element counts as 0 (g - g is 0 only when finite)
  const flat = names.map((w) => op('Reshape', [grads.get(w)!, constI([layout.get(w)!.size])]));
  const g0 = flat.length === 1 ? flat[0]! : op('Concat', flat, { axis: { type: 'int', value: 0 } });
  const finite = op('Equal', [op('Sub', [g0, g0]), constF(0)]);
  const grad = op('Where', [finite, g0, constF(0)]);

  const mNext = op('Add', [op('Mul', [ADAM_IO.m, constF(b1)]), op('Mul', [grad, constF(1 - b1)])]);
  const vNext = op('Add', [op('Mul', [ADAM_IO.v, constF(b2)]), op('Mul', [op('Mul', [grad, grad]), constF(1 - b2)])]);
  const update = op('Div', [op('Mul', [mNext, ADAM_IO.stepSize]), op('Add', [op('Sqrt', [vNext]), ADAM_IO.eps])]);
  const pNext = op('Sub', [op('Mul', [ADAM_IO.params, ADAM_IO.decay]), update]);
  const outIdentity = (from: string, to: string): void => {
    g.addNode(new Node({ opType: 'Identity', name: to, inputs: [from], outputs: [to] }));
  };
  outIdentity(pNext, ADAM_IO.paramsOut);
  outIdentity(mNext, ADAM_IO.mOut);
  outIdentity(vNext, ADAM_IO.vOut);

  const gradOuts = new Set(grads.values());
  const [loss, ...rest] = g.outputs;
  g.outputs = [loss!, vec(ADAM_IO.paramsOut), vec(ADAM_IO.mOut), vec(ADAM_IO.vOut), ...rest.filter((v) => !gradOuts.has(v.name))];
  g.touch();
  return { model: m, layout, size };
}

/** The three per-step scalars at step `t` (1-based) and learning rate `lr`, as Adam (adam.ts) computes them. */
export function adamScalars(t: number, lr: number, o: AdamOptions = {}): { stepSize: number; eps: number; decay: number } {
  const c1 = 1 - Math.pow(o.beta1 ?? 0.9, t);
  const c2 = 1 - Math.pow(o.beta2 ?? 0.999, t);
  return { stepSize: (lr * Math.sqrt(c2)) / c1, eps: (o.eps ?? 1e-8) * Math.sqrt(c2), decay: 1 - lr * (o.weightDecay ?? 0) };
}

/**
 * The in-graph optimiser's state between runs: the flat weight vector and moments fed to each run
 * and taken from its outputs as they come (no copy), and the step count for the scalars.
 */
export class GraphAdamState {
  private state: Record<string, ort.Tensor>;
  private t = 0;

  constructor(
    private readonly graph: AdamGraph,
    initial: ReadonlyMap<string, Float32Array>,
    private readonly o: AdamOptions = {},
  ) {
    const flat = new Float32Array(graph.size);
    for (const [w, l] of graph.layout) flat.set(initial.get(w)!, l.offset);
    this.state = {
      [ADAM_IO.params]: floatTensor(flat, [graph.size]),
      [ADAM_IO.m]: floatTensor(new Float32Array(graph.size), [graph.size]),
      [ADAM_IO.v]: floatTensor(new Float32Array(graph.size), [graph.size]),
    };
  }

  /** Feeds for the next run, an update at learning rate `lr`. */
  feeds(lr: number): Record<string, ort.Tensor> {
    const s = adamScalars(this.t + 1, lr, this.o);
    return {
      ...this.state,
      [ADAM_IO.stepSize]: floatTensor(new Float32Array([s.stepSize]), [1]),
      [ADAM_IO.eps]: floatTensor(new Float32Array([s.eps]), [1]),
      [ADAM_IO.decay]: floatTensor(new Float32Array([s.decay]), [1]),
    };
  }

  /** Take a run's updated vector and moments. */
  take(out: Readonly<Record<string, ort.Tensor>>): void {
    this.t++;
    this.state = { [ADAM_IO.params]: out[ADAM_IO.paramsOut]!, [ADAM_IO.m]: out[ADAM_IO.mOut]!, [ADAM_IO.v]: out[ADAM_IO.vOut]! };
  }

  /** Copy the current weights into `params` (by name). */
  copyInto(params: ReadonlyMap<string, Float32Array>): void {
    const flat = this.state[ADAM_IO.params]!.data as Float32Array;
    for (const [w, l] of this.graph.layout) params.get(w)?.set(flat.subarray(l.offset, l.offset + l.size));
  }
}
