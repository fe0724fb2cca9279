// Gradient checks: the training graph's gradients (buildGradients, run by onnxruntime) against
// central finite differences of the same graph's loss. The loss is a fixed random projection of
// every output (sum(out_i * R_i)), so every output element's gradient path is exercised. Where
// onnxruntime has float64 kernels for every op the check runs in float64 (relative error 1e-3 is
// then a loose bound); else in float32 with a larger step, and the caller states its tolerance.
import * as ort from 'onnxruntime-node';
import { Graph } from '../src/ir/graph.js';
import { cloneModel, type Model } from '../src/ir/model.js';
import { Node } from '../src/ir/node.js';
import { inferShapes } from '../src/ir/shapes.js';
import { Tensor } from '../src/ir/tensor.js';
import { openSession } from '../src/runtime/runner.js';
import { buildGradients } from '../src/passes/train/grad/backward.js';
import { randn, rng } from './builder.js';

export type CheckDType = 'float64' | 'float32';

export interface GradCheckOptions {
  /** Values to check gradients of: weights and/or runtime inputs. */
  wrt: readonly string[];
  /** Runtime input values (random N(0,1) from `seed` where absent). */
  feeds?: Record<string, Float32Array>;
  /** Static input shapes where the model leaves dims open. */
  shapes?: Map<string, number[]>;
  /** 'auto' (default): float64 when onnxruntime runs the model in float64, else float32. */
  dtype?: CheckDType | 'auto';
  seed?: number;
  /** Elements checked per value (default 24, picked at random; all when fewer). */
  samples?: number;
  /** Finite-difference step (default 1e-6 in float64, 1e-2 in float32). */
  eps?: number;
}

export interface ValueCheck {
  name: string;
  /** ||g - fd|| / max(||fd||, ||g||) over the checked elements. */
  relErr: number;
  checked: number;
  /** Largest |g| and |fd| seen, to tell a vanishing gradient from a matching one. */
  maxAbsGrad: number;
  maxAbsFd: number;
}

export interface GradCheckResult {
  dtype: CheckDType;
  /** The worst relErr over the values. */
  worst: number;
  values: ValueCheck[];
  /** Gradient outputs that were all zero although the loss depends on the value (a dead rule). */
  zero: string[];
}

/** A copy of `model` computing in float64: float32 weights, inputs, outputs and recorded types widened. */
export function toFloat64(model: Model): Model {
  const m = cloneModel(model);
  const g = m.graph;
  for (const t of [...g.initializers()]) {
    if (t.dtype !== 'float32') continue;
    const d = Float64Array.from(t.toFloat32());
    g.setInitializer(new Tensor({ name: t.name, dtype: 'float64', dims: t.dims, bytes: new Uint8Array(d.buffer) }));
  }
  for (const v of [...g.inputs, ...g.outputs]) if (v.type?.dtype === 'float32') v.type = { ...v.type, dtype: 'float64' };
  for (const [k, t] of g.valueTypes) if (t.dtype === 'float32') g.valueTypes.set(k, { ...t, dtype: 'float64' });
  for (const n of g.nodes) {
    const a = n.attrs.get('value');
    if (n.opType === 'Constant' && a?.type === 'tensor' && a.value.dtype === 'float32') {
      const d = Float64Array.from(a.value.toFloat32());
      n.attrs.set('value', {
        type: 'tensor',
        value: new Tensor({ name: a.value.name, dtype: 'float64', dims: a.value.dims, bytes: new Uint8Array(d.buffer) }),
      });
    }
  }
  return m;
}

/** `model` with its outputs replaced by one scalar: sum over outputs of sum(out * R), R fixed random. */
function projectionLoss(
  model: Model,
  shapes: Map<string, number[]> | undefined,
  dtype: CheckDType,
  seed: number,
): { model: Model; loss: string } {
  const m = cloneModel(model);
  const g: Graph = m.graph;
  const { types } = inferShapes(m, { shapes });
  const next = rng(seed + 17);
  const parts: string[] = [];
  for (const o of g.outputs) {
    const shape = types.get(o.name)?.shape as number[] | null | undefined;
    if (!shape || shape.some((d) => typeof d !== 'number')) throw new Error(`gradcheck: output ${o.name} has no static shape`);
    const r = randn(
      next,
      shape.reduce((a, b) => a * b, 1),
    );
    const rName = g.uniqueName(`${o.name}.R`);
    g.setInitializer(
      dtype === 'float64'
        ? new Tensor({ name: rName, dtype, dims: shape, bytes: new Uint8Array(Float64Array.from(r).buffer) })
        : Tensor.fromFloat32(rName, shape, r),
    );
    const p = g.uniqueName(`${o.name}.proj`);
    g.addNode(new Node({ opType: 'Mul', inputs: [o.name, rName], outputs: [p] }));
    const s = g.uniqueName(`${o.name}.sum`);
    // no axes: every axis, at any opset
    g.addNode(new Node({ opType: 'ReduceSum', inputs: [p], outputs: [s], attrs: { keepdims: { type: 'int', value: 0 } } }));
    parts.push(s);
  }
  let loss = parts[0]!;
  if (parts.length > 1) {
    loss = g.uniqueName('gradcheck.loss');
    g.addNode(new Node({ opType: 'Sum', inputs: parts, outputs: [loss] }));
  }
  g.outputs = [{ name: loss, type: { dtype, shape: [] } }];
  g.touch();
  return { model: m, loss };
}

async function tryCheck(model: Model, o: GradCheckOptions, dtype: CheckDType): Promise<GradCheckResult> {
  const seed = o.seed ?? 1;
  const base = dtype === 'float64' ? toFloat64(model) : cloneModel(model);
  const { model: lossModel, loss } = projectionLoss(base, o.shapes, dtype, seed);
  const built = buildGradients(lossModel, { loss, wrt: o.wrt, shapes: o.shapes });
  const session = await openSession(built.model, { threads: 1, level: 'disabled' });
  const Arr = dtype === 'float64' ? Float64Array : Float32Array;
  const next = rng(seed);
  const { types } = inferShapes(lossModel, { shapes: o.shapes });
  const values = new Map<string, { data: Float64Array | Float32Array; dims: number[] }>();
  for (const inp of built.model.graph.runtimeInputs()) {
    const init = built.initial.get(inp.name);
    if (init) {
      values.set(inp.name, { data: Arr.from(init.toFloat32()), dims: [...init.dims] });
      continue;
    }
    const dims = (o.shapes?.get(inp.name) ?? (types.get(inp.name)?.shape as number[])).slice();
    const given = o.feeds?.[inp.name];
    const n = dims.reduce((a, b) => a * b, 1);
    values.set(inp.name, { data: Arr.from(given ?? randn(next, n)), dims });
  }
  const feeds = (): Record<string, ort.Tensor> => {
    const f: Record<string, ort.Tensor> = {};
    for (const [k, v] of values) f[k] = new ort.Tensor(dtype, v.data, v.dims);
    return f;
  };
  const out = await session.run(feeds());
  const lossAt = async (): Promise<number> => Number((await session.run(feeds()))[loss]!.data[0]);
  const eps = o.eps ?? (dtype === 'float64' ? 1e-6 : 1e-2);
  const result: GradCheckResult = { dtype, worst: 0, values: [], zero: [] };
  for (const w of o.wrt) {
    const g = out[built.grads.get(w)!]!.data as Float32Array | Float64Array;
    const v = values.get(w)!;
    const count = Math.min(o.samples ?? 24, v.data.length);
    const idx = count === v.data.length ? [...v.data.keys()] : Array.from({ length: count }, () => Math.floor(next() * v.data.length));
    let num = 0,
      dg = 0,
      df = 0,
      maxG = 0,
      maxF = 0;
    for (const i of idx) {
      const keep = v.data[i]!;
      v.data[i] = keep + eps;
      const up = await lossAt();
      v.data[i] = keep - eps;
      const down = await lossAt();
      v.data[i] = keep;
      const fd = (up - down) / (2 * eps);
      const an = Number(g[i]);
      num += (an - fd) ** 2;
      dg += an * an;
      df += fd * fd;
      maxG = Math.max(maxG, Math.abs(an));
      maxF = Math.max(maxF, Math.abs(fd));
    }
    const relErr = Math.sqrt(num) / Math.max(Math.sqrt(df), Math.sqrt(dg), 1e-30);
    if (!built.unreached.includes(w) && g.every((x) => x === 0)) result.zero.push(w);
    result.values.push({ name: w, relErr, checked: idx.length, maxAbsGrad: maxG, maxAbsFd: maxF });
    result.worst = Math.max(result.worst, relErr);
  }
  await session.release();
  return result;
}

/** Check `model`'s gradients; see the module comment. */
export async function gradCheck(model: Model, o: GradCheckOptions): Promise<GradCheckResult> {
  const want = o.dtype ?? 'auto';
  if (want !== 'auto') return tryCheck(model, o, want);
  try {
    return await tryCheck(model, o, 'float64');
  } catch (e) {
    // onnxruntime's CPU kernels for Conv, pools and Resize are float32 only
    if (/NOT_IMPLEMENTED|Could not find an implementation|type.*double|refused/i.test(String(e))) return tryCheck(model, o, 'float32');
    throw e;
  }
}

/** A one-node model: inputs (name -> shape) feeding `opType`, one output per `outputs`. */
export function singleOp(
  opType: string,
  inputs: readonly { name: string; shape: number[]; init?: Float32Array | readonly number[]; int64?: readonly number[] }[],
  attrs: Node['attrs'] extends Map<string, infer V> ? Record<string, V> : never = {},
  o: { outputs?: number; opset?: number } = {},
): Model {
  const g = new Graph();
  const names: string[] = [];
  for (const inp of inputs) {
    names.push(inp.name);
    if (inp.name === '') continue;
    if (inp.int64) g.setInitializer(Tensor.fromInt64(inp.name, inp.shape, inp.int64));
    else if (inp.init) g.setInitializer(Tensor.fromFloat32(inp.name, inp.shape, Float32Array.from(inp.init)));
    else g.inputs.push({ name: inp.name, type: { dtype: 'float32', shape: inp.shape } });
  }
  const outs = Array.from({ length: o.outputs ?? 1 }, (_, i) => `y${i}`);
  g.addNode(new Node({ opType, inputs: names, outputs: outs, attrs }));
  g.outputs = outs.map((name) => ({ name, type: null }));
  return {
    irVersion: 8,
    opsets: new Map([['', o.opset ?? 17]]),
    producerName: 'gradcheck',
    producerVersion: '1',
    domain: '',
    modelVersion: 1,
    docString: '',
    metadata: new Map(),
    graph: g,
    extra: undefined,
  };
}
