// Quantization-aware training, the graph half (issue 18): the static int8 model (QDQ, built by
// qdq.ts from calibration, with every rule of what stays float already applied) rewritten as a
// float model that computes the same thing and can be differentiated (src/passes/train/grad/) and
// trained; qat-export.ts turns the trained model back into QDQ.
//
// Starting from the static model rather than re-deciding what to quantize keeps one source of
// truth: the fake-quant model quantizes exactly the tensors, with exactly the scales, zero points
// and rounded weights, the static path chose, and its outputs equal the static model's (test).
//
// Each activation QuantizeLinear -> DequantizeLinear pair stays one pair, on a step s = scale x
// factor that can be trained,
//     DequantizeLinear(QuantizeLinear(x, s, z), s, z) = (Clip(Round(x / s) + z, qmin, qmax) - z) * s
// (its gradients: the pair's rules, grad/rules/quantize.ts), and each weight DequantizeLinear becomes a float weight V in units of its step (initialised to
// the static path's int8 values, so the rounding it chose is the starting point) behind
//     Clip(Round(V), -qmax, qmax) * s            (symmetric, s per output channel).
// With the straight-through gradient, d/ds of the activation quantizer is exactly LSQ's (learned
// step size), so scales can be trained beside the weights. Int32 biases
// become float biases in units of s_in * s_w (trainable); export stores their rounded values.
import { EdgefitError } from '../../errors.js';
import type { Graph } from '../../ir/graph.js';
import { cloneModel, opsetVersion, type Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { int8Range } from '../../ir/dtype.js';
import { Tensor } from '../../ir/tensor.js';
import { deadCodeElimination } from '../cleanup/dce.js';
import { runPass } from '../pass.js';
import { PASSTHROUGH_OPS, STATIC_OPS, type StaticOp } from './qdq.js';

/** One activation tensor quantized per tensor. */
export interface ActivationQuantizer {
  kind: 'activation';
  /** The float value quantized, and the value its readers see (the static model's DequantizeLinear output). */
  input: string;
  output: string;
  /** Scalar float initializer: the static path's step size (fixed). */
  scale: string;
  /**
   * Scalar float initializer, 1 at the start: the factor the step is trained through (LSQ). A
   * relative factor, so one learning rate means the same fraction of every step; trained in
   * absolute units, steps of 1e-3 and of 1 took the same Adam steps and MNIST's loss went from
   * 2.9e-4 to 29.
   */
  factor: string;
  /** The step used: scale x factor (a node's output). */
  step: string;
  /** The static path's zero point, in its integer type (uint8 or int8): fixed. */
  zeroPoint: Tensor;
  /** The QDQ ops' domain in the static model ('' or 'com.microsoft'). */
  domain: string;
  /** Nodes of the fake quantizer (removed by export). */
  nodes: string[];
  /**
   * The step size is not trained: the output of a Clip(0, 6) whose range the static path took
   * from the Clip. onnxruntime drops such a Clip only while the quantized range stays inside it,
   * and a larger learned step would leave the Clip (and the int8 Add before it) in float.
   */
  fixed: boolean;
}

/** One weight quantized symmetrically, per output channel (or per tensor). */
export interface WeightQuantizer {
  kind: 'weight';
  /** Float weight initializer in units of its channel's step (trainable). */
  weight: string;
  /** Float step sizes, shaped to broadcast over the weight ([O,1,1,1] for Conv, [1,O] for MatMul; [] per tensor). */
  scale: string;
  /** Their trainable factors (ones at the start, same shape) and the steps used (scale x factor). */
  factor: string;
  step: string;
  output: string;
  /** The static DequantizeLinear's axis (undefined per tensor). */
  axis: number | undefined;
  qmax: number;
  domain: string;
  nodes: string[];
  /** Output name of the node reading the weight (its input 0 is the activation whose scale the bias uses). */
  reader: string;
}

/**
 * An int32 bias, quantized as the int8 kernels hold it: Round(B) * s_in * s_w (B in units of that step), so
 * the fake-quant model computes exactly what the exported one does (on PP-OCR cls a bias left
 * float moved the 2-class output by up to 0.03 from the int8 model's after a training step).
 */
export interface BiasSlot {
  kind: 'bias';
  /** Float bias initializer in units of s_in * s_w * unit (trainable). */
  value: string;
  /**
   * Per-channel constant (>= 1): the bias's int32 value is Round(value x unit). With BiasUnits
   * 'output', the step of the reader's quantized output over s_in * s_w, so one learning rate moves
   * a bias the same fraction of an output step as it moves a weight a fraction of its own step; in
   * units of s_in * s_w alone (thousands per output step on det) Adam's steps of lr each left every
   * bias where static int8 put it. 1 with 'int32'.
   */
  unit: string;
  /** The value the reader reads (the static model's DequantizeLinear output). */
  output: string;
  nodes: string[];
  /** The weight quantizer of the same node (its scale, by channel). */
  weight: string;
  reader: string;
  domain: string;
}

export interface FakeQuantModel {
  model: Model;
  activations: ActivationQuantizer[];
  weights: WeightQuantizer[];
  biases: BiasSlot[];
}

/** The step factors LSQ trains: every weight's, and each activation's whose step is not fixed (shared ones once). */
export function qatStepFactors(fq: FakeQuantModel): string[] {
  return [...fq.weights.map((w) => w.factor), ...new Set(fq.activations.filter((a) => !a.fixed).map((a) => a.factor))];
}

/** The values a QAT run may train: weights and biases always; step sizes when LSQ is on. */
export function qatTrainables(fq: FakeQuantModel, o: { scales: boolean }): string[] {
  const out = [...fq.weights.map((w) => w.weight), ...fq.biases.map((b) => b.value)];
  if (o.scales) out.push(...qatStepFactors(fq));
  return out;
}

const isDq = (n: Node): boolean => n.opType === 'DequantizeLinear';
const isQ = (n: Node): boolean => n.opType === 'QuantizeLinear';

/** The integer range of an activation zero point's type. */
function intRange(zp: Tensor): readonly [number, number] {
  const r = int8Range(zp.dtype);
  if (r) return r;
  throw new EdgefitError('UNSUPPORTED', `quantized activation '${zp.name}' has zero point type ${zp.dtype}; QAT handles uint8 and int8`);
}

/** Scalar (or per-channel) integer values as numbers. */
const numbers = (t: Tensor): number[] => t.toNumbers();

/** Build `op(inputs)` before `before` with a fresh output; returns the output name. */
function add(g: Graph, made: string[], before: Node, opType: string, inputs: string[], base: string): string {
  const out = g.uniqueName(base);
  g.addNode(new Node({ opType, name: out, inputs, outputs: [out] }), { before });
  made.push(out);
  return out;
}

/** A float constant initializer with a fresh name. */
function constF(g: Graph, base: string, dims: number[], values: number[] | Float32Array): string {
  const name = g.uniqueName(base);
  g.setInitializer(Tensor.fromFloat32(name, dims, values instanceof Float32Array ? values : Float32Array.from(values)));
  return name;
}

function constI(g: Graph, base: string, values: number[]): string {
  const name = g.uniqueName(base);
  g.setInitializer(Tensor.fromInt64(name, [values.length], values));
  return name;
}

/**
 * The static step of the first quantized tensor at or after `v` along single readers (a Conv's
 * output is quantized itself, or after the Add / Clip / Mul of an activation): the resolution a
 * bias change shows at. undefined when none is within reach.
 */
function outputStep(g: Graph, v: string, byInput: ReadonlyMap<string, ActivationQuantizer>): number | undefined {
  let cur = v;
  for (let depth = 0; depth < 4; depth++) {
    const a = byInput.get(cur);
    if (a) return g.constant(a.scale)!.toFloat32()[0]!;
    const readers = g.consumers(cur);
    if (readers.length !== 1 || readers[0]!.outputs.length !== 1) return undefined;
    cur = readers[0]!.outputs[0]!;
  }
  return undefined;
}

/**
 * What a bias's latent value counts (BiasSlot.unit): 'int32' its int32 steps (s_in x s_w; unit 1),
 * 'output' its reader's output step. 'output' lets biases move (an output step is thousands of
 * int32 steps on det) but judged worse: on rec at lr 0.01 the held-out loss jumped (no step after
 * the first beat static int8); on det it reached a lower held-out loss (1.60e-3 vs 1.90e-3) and a
 * lower judge-set map cosine (0.963 vs 0.981, the latter with twice the steps on a quieter box).
 */
export type BiasUnits = 'int32' | 'output';

/**
 * The largest bias unit: a channel whose weights are all zero has a step near 0 (rec has such
 * channels; the ratio was Infinity and the fake-quant model computed NaN), and a unit that large
 * would turn one Adam step into an enormous bias.
 */
const MAX_BIAS_UNIT = 65536;

/** BiasSlot.unit of one channel: the output step over the int32 step, within [1, MAX_BIAS_UNIT]. */
function biasUnit(outStep: number | undefined, int32Step: number): number {
  const r = outStep === undefined ? 1 : outStep / int32Step;
  return Number.isFinite(r) ? Math.min(MAX_BIAS_UNIT, Math.max(1, r)) : 1;
}

/**
 * Where each latent weight starts: on its int8 value q, moved towards the float weight it rounds
 * (w / s) but never across a rounding boundary (|offset| <= LATENT_REACH), so the fake-quant model
 * still computes the static one. Weights whose rounding was a close call then sit near their
 * boundary and flip first; started on the integers, every weight sat 0.5 from both boundaries
 * and Adam's per-weight steps (about lr each, whatever the gradient's size) carried whole
 * layers across together after a few steps: on MNIST the loss on the training rows themselves
 * went from 2.9e-4 to 6.3e-3.
 */
export const LATENT_REACH = 0.49;

/**
 * The fake-quant float model of a static QDQ model (see the module comment). `reduceRange`: the
 * static model's weights are 7-bit (|q| <= 63), as the plan it was built to said. `floatWeights`:
 * the float model's weights by name (the static path names its int8 weight after the float one),
 * to place each latent weight (LATENT_REACH); without them latent weights start on q.
 */
export function fakeQuantize(
  qdq: Model,
  o: { reduceRange: boolean; floatWeights?: (name: string) => Tensor | undefined; biasUnits?: BiasUnits },
): FakeQuantModel {
  if (opsetVersion(qdq) < 11)
    throw new EdgefitError('UNSUPPORTED', `QAT needs opset >= 11 (Round, Clip with inputs); the model has ${opsetVersion(qdq)}`);
  const model = cloneModel(qdq);
  const g = model.graph;
  const activations: ActivationQuantizer[] = [];
  const weights: WeightQuantizer[] = [];
  const biases: BiasSlot[] = [];
  const qmaxW = o.reduceRange ? 63 : 127;

  // activations: every QuantizeLinear of a computed value and the DequantizeLinear(s) reading it
  const byOutput = new Map<string, ActivationQuantizer>();
  for (const q of g.topoOrder().filter(isQ)) {
    const [x, ownScale, zName] = q.inputs as [string, string, string | undefined];
    if (g.constant(x)) continue;
    const dqs = g.consumers(q.outputs[0]!);
    if (!dqs.length || !dqs.every(isDq))
      throw new EdgefitError('INTERNAL', `QuantizeLinear of '${x}' is read by something other than DequantizeLinear`);
    const scale = g.constant(ownScale);
    const zp = zName ? g.constant(zName) : Tensor.fromUint8(`${x}_z0`, [], Uint8Array.of(0));
    if (!scale || scale.size !== 1 || !zp)
      throw new EdgefitError('UNSUPPORTED', `activation '${x}' is not quantized per tensor with constant parameters`);
    intRange(zp); // uint8 or int8, else refused here
    const z = numbers(zp)[0]!;
    // data movement (MaxPool, Reshape, ...) keeps its input's parameters (qdq.ts): one shared step
    // size, so they stay equal after training and onnxruntime still drops the Q/DQ around it
    const prod = g.producer(x);
    const src = prod && PASSTHROUGH_OPS.has(prod.opType) ? byOutput.get(prod.inputs[0]!) : undefined;
    const shared =
      src && g.constant(src.scale)!.toFloat32()[0] === scale.toFloat32()[0] && numbers(src.zeroPoint)[0] === z ? src : undefined;
    const made: string[] = [];
    const base = `${x.replace(/[^A-Za-z0-9_.]/g, '_')}_fq`;
    const factor = shared?.factor ?? constF(g, `${base}_k`, [], [1]);
    const s = shared?.step ?? add(g, made, q, 'Mul', [ownScale, factor], `${base}_s`);
    // onnxruntime's own pair on the step: two kernels, where the same value in float ops took six
    // passes over the activation (the pair's gradients: train/grad/rules/quantize.ts)
    const zpName = zName ?? g.uniqueName(`${base}_zp`);
    if (!zName) g.setInitializer(new Tensor({ name: zpName, dtype: zp.dtype, dims: [], bytes: zp.bytes() }));
    const qv = add(g, made, q, 'QuantizeLinear', [x, s, zpName], `${base}_q`);
    // the DequantizeLinear writes the static one's output name: its readers stay as they are
    const out = dqs[0]!.outputs[0]!;
    for (const dq of dqs) g.removeNode(dq);
    g.removeNode(q);
    g.addNode(new Node({ opType: 'DequantizeLinear', name: g.uniqueName(`${base}_dq`), inputs: [qv, s, zpName], outputs: [out] }), {
      after: g.producer(qv)!,
    });
    for (const dq of dqs.slice(1)) g.replaceAllUses(dq.outputs[0]!, out);
    made.push(out);
    const a: ActivationQuantizer = {
      kind: 'activation',
      input: x,
      output: out,
      scale: shared?.scale ?? ownScale,
      factor,
      step: s,
      zeroPoint: zp,
      domain: q.domain,
      nodes: made,
      fixed: prod?.opType === 'Clip',
    };
    activations.push(a);
    byOutput.set(out, a);
  }

  const byInput = new Map(activations.map((a) => [a.input, a]));

  // weights (int8 constants read as a weighted node's weight) and int32 biases
  const weightOfReader = new Map<string, WeightQuantizer>();
  const dqConsts = [...g.nodes].filter((n) => isDq(n) && g.initializer(n.inputs[0]!));
  for (const dq of dqConsts) {
    const qt = g.initializer(dq.inputs[0]!)!;
    const out = dq.outputs[0]!;
    const readers = g.consumers(out);
    const reader = readers.length === 1 ? readers[0]! : undefined;
    const spec = reader && reader.opType in STATIC_OPS ? STATIC_OPS[reader.opType as StaticOp] : undefined;
    if (qt.dtype !== 'int8' || !reader || !spec || reader.inputs[spec.weight] !== out) continue;
    const sT = g.constant(dq.inputs[1]!)!;
    const zT = dq.inputs[2] ? g.constant(dq.inputs[2]) : undefined;
    if (zT && numbers(zT).some((v) => v !== 0)) throw new EdgefitError('UNSUPPORTED', `weight '${qt.name}' is not symmetric`);
    const perChannel = sT.size > 1;
    const rank = qt.dims.length;
    const axisAttr = dq.attrInt('axis', 1);
    const axis = perChannel ? (axisAttr < 0 ? axisAttr + rank : axisAttr) : undefined;
    const scales = sT.toFloat32();
    const q = qt.toNumbers();
    // the weight in units of its channel's step, starting at the static path's int8 values (so
    // training starts where static int8 is): one learning rate then means the same fraction of a
    // step in every channel, where weights in real units would flip the rounding of channels with
    // small steps many times per Adam step and leave those with large ones untouched
    const w = Float32Array.from(q);
    // qdq.ts names it uniqueName(<float name>) + '_q8': '<name>_q8' or '<name>_<k>_q8'
    const fName = qt.name.replace(/_q8$/, '');
    const f = o.floatWeights?.(fName) ?? o.floatWeights?.(fName.replace(/_\d+$/, ''));
    if (f && f.dtype === 'float32' && f.size === w.length) {
      const fw = f.toFloat32();
      const inner = axis === undefined ? 1 : qt.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
      const chans = axis === undefined ? 1 : qt.dims[axis]!;
      for (let i = 0; i < w.length; i++) {
        const off = fw[i]! / scales[axis === undefined ? 0 : Math.floor(i / inner) % chans]! - q[i]!;
        // a clipped weight (|w / s| > qmax) stays on q: its latent value beyond qmax only saturates;
        // so does one the data-aware rounding (adaround) sent the other way (|off| > 0.5): placed
        // at the boundary, the first step towards its float value would undo that choice
        w[i] = q[i]! + (Math.abs(q[i]!) === qmaxW || Math.abs(off) > 0.5 ? 0 : Math.max(-LATENT_REACH, Math.min(LATENT_REACH, off)));
      }
    }
    const base = qt.name.replace(/_q8$/, '').replace(/[^A-Za-z0-9_.]/g, '_');
    const wName = constF(g, `${base}_w`, [...qt.dims], w);
    const sDims = axis === undefined ? [] : qt.dims.map((d, i) => (i === axis ? d : 1));
    const sName = constF(g, `${base}_ws`, sDims, scales);
    const made: string[] = [];
    const kName = constF(g, `${base}_wk`, sDims, new Float32Array(scales.length).fill(1));
    const step = add(g, made, dq, 'Mul', [sName, kName], `${base}_wstep`);
    const lo = constF(g, `${base}_wlo`, [], [-qmaxW]);
    const hi = constF(g, `${base}_whi`, [], [qmaxW]);
    const r = add(g, made, dq, 'Round', [wName], `${base}_wround`);
    const c = add(g, made, dq, 'Clip', [r, lo, hi], `${base}_wclip`);
    const mul = new Node({ opType: 'Mul', name: g.uniqueName(`${base}_wmul`), inputs: [c, step], outputs: [out] });
    g.removeNode(dq);
    g.addNode(mul, { before: reader });
    made.push(out);
    const wq: WeightQuantizer = {
      kind: 'weight',
      weight: wName,
      scale: sName,
      factor: kName,
      step,
      output: out,
      axis,
      qmax: qmaxW,
      domain: dq.domain,
      nodes: made,
      reader: reader.outputs[0]!,
    };
    weights.push(wq);
    weightOfReader.set(reader.outputs[0]!, wq);
  }
  for (const dq of dqConsts) {
    if (!g.nodes.includes(dq)) continue;
    const qt = g.initializer(dq.inputs[0]!)!;
    const out = dq.outputs[0]!;
    const readers = g.consumers(out);
    const reader = readers.length === 1 ? readers[0]! : undefined;
    const spec = reader && reader.opType in STATIC_OPS ? STATIC_OPS[reader.opType as StaticOp] : undefined;
    if (qt.dtype !== 'int32' || !reader || !spec || spec.bias < 0 || reader.inputs[spec.bias] !== out) continue;
    const wq = weightOfReader.get(reader.outputs[0]!);
    const act = byOutput.get(reader.inputs[0]!);
    if (!wq || !act) continue;
    // in units of the reader's output step (BiasSlot.unit): Round(value x unit) is the int32 bias
    const qb = qt.toNumbers();
    const sIn = g.constant(act.scale)!.toFloat32()[0]!;
    const sW = g.constant(wq.scale)!.toFloat32();
    const sOut = o.biasUnits === 'output' ? outputStep(g, reader.outputs[0]!, byInput) : undefined;
    const unit = Float32Array.from(qb, (_, c) => biasUnit(sOut, sIn * sW[sW.length === 1 ? 0 : c]!));
    const b = Float32Array.from(qb, (v, c) => v / unit[c]!);
    const base = out.replace(/[^A-Za-z0-9_.]/g, '_');
    const value = constF(g, `${base}_b`, [qb.length], b);
    const unitName = constF(g, `${base}_bu`, [qb.length], unit);
    const made: string[] = [];
    const sw =
      wq.axis === undefined ? wq.step : add(g, made, dq, 'Reshape', [wq.step, constI(g, `${base}_shape`, [qb.length])], `${base}_sw`);
    const sb = add(g, made, dq, 'Mul', [act.step, sw], `${base}_sb`);
    const scaled = add(g, made, dq, 'Mul', [value, unitName], `${base}_bscaled`);
    const r = add(g, made, dq, 'Round', [scaled], `${base}_bround`);
    const mul = new Node({ opType: 'Mul', name: g.uniqueName(`${base}_bmul`), inputs: [r, sb], outputs: [out] });
    g.addNode(mul, { before: dq });
    g.removeNode(dq);
    made.push(out);
    biases.push({
      kind: 'bias',
      value,
      unit: unitName,
      output: out,
      nodes: made,
      weight: wq.weight,
      reader: reader.outputs[0]!,
      domain: dq.domain,
    });
  }
  g.touch();
  runPass(deadCodeElimination, model, undefined); // the int8 weights and int32 biases now unread
  return { model, activations, weights, biases };
}
