// Distillation losses as ordinary ONNX nodes appended to the student: each student output is
// compared with a target that is an extra graph input (the teacher's output for the same batch,
// fed per step), the terms are summed into one scalar, and buildGradients differentiates that
// graph like any other. Targets are prepared in TypeScript where that keeps the teacher's side off
// the gradient path (KL's log-softmax of the teacher's logits), so only the student's side needs
// gradient rules.
import { EdgefitError } from '../../errors.js';
import type { NdArray } from '../../data/ndarray.js';
import { cloneModel, opsetVersion, type Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import type { Dim } from '../../ir/types.js';
import type { GradRules } from './grad/types.js';
import type { LossKind, LossSpec, ResolvedLoss } from './types.js';

/** Hinton's temperature for logits. */
export const DEFAULT_TEMPERATURE = 4;
/** Added inside logs of probabilities (a student probability of exactly 0 would give -inf). */
export const LOG_EPS = 1e-6;
/** The threshold hinge asks the student to be this far past the threshold at most (as far as the teacher is, up to this). */
export const HINGE_MARGIN = 0.1;

const asSpec = (s: LossSpec | LossKind | undefined): LossSpec =>
  s === undefined ? { kind: 'auto' } : typeof s === 'string' ? { kind: s } : s;

/** The spec of one output from TrainSpec.loss. */
export function specFor(loss: LossSpec | LossKind | Record<string, LossSpec | LossKind> | undefined, output: string): LossSpec {
  if (loss === undefined || typeof loss === 'string' || 'kind' in loss) return asSpec(loss as LossSpec | LossKind | undefined);
  return asSpec((loss as Record<string, LossSpec | LossKind>)[output]);
}

interface Range {
  min: number;
  max: number;
  /** Largest |Σ over the last axis − 1| of any row. */
  rowSumErr: number;
  rank: number;
  last: number;
}

function rangeOf(values: readonly NdArray[]): Range {
  let min = Infinity,
    max = -Infinity,
    rowSumErr = 0;
  const shape = values[0]!.shape;
  const last = shape[shape.length - 1] ?? 1;
  for (const v of values) {
    const d = v.data as Float32Array;
    for (let r = 0; r < d.length; r += last) {
      let s = 0;
      for (let i = r; i < r + last; i++) {
        const x = d[i]!;
        if (x < min) min = x;
        if (x > max) max = x;
        s += x;
      }
      rowSumErr = Math.max(rowSumErr, Math.abs(s - 1));
    }
  }
  return { min, max, rowSumErr, rank: shape.length, last };
}

/**
 * Every choice of a loss made, 'auto' by the teacher's values of this output on a few samples:
 * rows over the last axis that are distributions (in [0,1], summing to 1: a softmax output such as
 * PP-OCR rec's per-step classes) -> KL at T = 1; other values in [0,1] (a DB probability map, a
 * sigmoid) -> MSE per element, which on det measured no worse than BCE and needs no log; a
 * [N, C] output with values outside [0,1] (classifier logits) -> KL at T = 4; anything else
 * (features, regression) -> MSE.
 */
export function resolveLoss(spec: LossSpec, teacherValues: readonly NdArray[]): ResolvedLoss {
  const r = teacherValues.length ? rangeOf(teacherValues) : undefined;
  const isProbRows = !!r && r.min >= 0 && r.max <= 1 && r.last > 1 && r.rowSumErr < 1e-3;
  const inUnit = !!r && r.min >= 0 && r.max <= 1;
  let kind = spec.kind;
  if (kind === 'auto') kind = isProbRows ? 'kl' : inUnit ? 'mse' : r && r.rank === 2 && r.last > 1 ? 'kl' : 'mse';
  const from = spec.from ?? (isProbRows ? 'probs' : 'logits');
  if (kind === 'bce' && r && !inUnit)
    throw new EdgefitError(
      'USAGE',
      `a BCE loss needs outputs in [0, 1]; the teacher's range is [${r.min.toFixed(3)}, ${r.max.toFixed(3)}]`,
    );
  const temperature = kind === 'kl' && from === 'logits' ? (spec.temperature ?? DEFAULT_TEMPERATURE) : 1;
  if (!(temperature > 0)) throw new EdgefitError('USAGE', `a KL temperature must be positive, got ${temperature}`);
  if (spec.threshold !== undefined && (kind === 'kl' || !(spec.threshold > 0 && spec.threshold < 1)))
    throw new EdgefitError(
      'USAGE',
      `a threshold hinge is for probability maps (MSE or BCE), at a threshold in (0, 1); got ${kind} at ${spec.threshold}`,
    );
  if (spec.hingeWeight !== undefined && (spec.threshold === undefined || !(spec.hingeWeight > 0)))
    throw new EdgefitError('USAGE', `a hinge weight needs a threshold and must be positive; got ${spec.hingeWeight}`);
  return {
    kind,
    temperature,
    from,
    weight: spec.weight ?? 1,
    heldOut: spec.heldOut ?? true,
    ...(spec.threshold !== undefined ? { threshold: spec.threshold, hingeWeight: spec.hingeWeight ?? 1 } : {}),
  };
}

/**
 * What the target input of an output is fed from the teacher's value: the value itself (MSE,
 * BCE), or for KL the teacher's log-distribution over the last axis (log-softmax of logits / T,
 * or the log of probabilities, clamped like the student's side).
 */
export function teacherTarget(loss: ResolvedLoss, value: NdArray): Float32Array {
  const src = value.data as Float32Array;
  if (loss.kind !== 'kl') return src instanceof Float32Array ? src : Float32Array.from(src);
  const last = value.shape[value.shape.length - 1] ?? 1;
  const out = new Float32Array(src.length);
  for (let r = 0; r < src.length; r += last) {
    if (loss.from === 'probs') {
      for (let i = r; i < r + last; i++) out[i] = Math.log(Math.max(0, src[i]!) + LOG_EPS);
      continue;
    }
    let m = -Infinity;
    for (let i = r; i < r + last; i++) m = Math.max(m, src[i]! / loss.temperature);
    let s = 0;
    for (let i = r; i < r + last; i++) s += Math.exp(src[i]! / loss.temperature - m);
    const lse = m + Math.log(s);
    for (let i = r; i < r + last; i++) out[i] = src[i]! / loss.temperature - lse;
  }
  return out;
}

export interface LossGraph {
  /** The student with the loss appended; its outputs are the scalar loss (and the held-out one when it differs). */
  model: Model;
  loss: string;
  /** The scalar the held-out evaluation reads: the terms with `heldOut` (the loss itself when that is all of them). */
  heldOut: string;
  /** Student output -> the graph input its target is fed to. */
  targets: Map<string, string>;
}

/**
 * Append the losses to a copy of `student`. `ranks` gives each output's rank (targets are declared
 * with open dims: the trainer fixes them through buildGradients' shapes, the evaluator feeds any).
 */
export function appendLoss(student: Model, losses: ReadonlyMap<string, ResolvedLoss>, ranks: ReadonlyMap<string, number>): LossGraph {
  const m = cloneModel(student);
  const g = m.graph;
  const opset = opsetVersion(m);
  let k = 0;
  const fresh = (base: string): string => g.uniqueName(`loss/${base}_${k++}`);
  const op = (
    opType: string,
    inputs: string[],
    attrs: Record<string, Node['attrs'] extends Map<string, infer V> ? V : never> = {},
  ): string => {
    const out = fresh(opType);
    g.addNode(new Node({ opType, name: out, inputs, outputs: [out], attrs }));
    return out;
  };
  const scalar = (v: number): string => {
    const name = fresh('c');
    g.setInitializer(Tensor.fromFloat32(name, [], [v]));
    return name;
  };
  const kd = (v: number) => ({ keepdims: { type: 'int' as const, value: v } });
  // no axes: every axis, at every opset
  const meanAll = (x: string): string => op('ReduceMean', [x], kd(0));
  const sumLast = (x: string): string =>
    opset >= 13
      ? op(
          'ReduceSum',
          [
            x,
            (() => {
              const a = fresh('axes');
              g.setInitializer(Tensor.fromInt64(a, [1], [-1]));
              return a;
            })(),
          ],
          kd(0),
        )
      : op('ReduceSum', [x], { ...kd(0), axes: { type: 'ints', value: [-1] } });

  const targets = new Map<string, string>();
  const terms: string[] = [];
  const judged: string[] = [];
  for (const [out, loss] of losses) {
    if (!g.outputs.some((o) => o.name === out)) throw new EdgefitError('INTERNAL', `the student has no output '${out}'`);
    const rank = ranks.get(out);
    if (rank === undefined) throw new EdgefitError('SHAPE', `the rank of output '${out}' is unknown, so its loss cannot be built`);
    const t = g.uniqueName(`${out}.target`);
    const dims: Dim[] = Array.from({ length: rank }, (_, i) => `${t}_d${i}`);
    g.inputs.push({ name: t, type: { dtype: 'float32', shape: dims } });
    targets.set(out, t);
    let term: string;
    if (loss.kind === 'mse') {
      const d = op('Sub', [out, t]);
      term = meanAll(op('Mul', [d, d]));
    } else if (loss.kind === 'bce') {
      // −mean(t·log(p) + (1−t)·log(1−p)), eps inside the logs
      const lp = op('Log', [op('Add', [out, scalar(LOG_EPS)])]);
      const lq = op('Log', [op('Sub', [scalar(1 + LOG_EPS), out])]);
      const pos = op('Mul', [t, lp]);
      const neg = op('Mul', [op('Sub', [scalar(1), t]), lq]);
      term = op('Neg', [meanAll(op('Add', [pos, neg]))]);
    } else {
      // T² · mean over rows of Σ p_t (log p_t − log q_s): zero when the student matches
      const logq =
        loss.from === 'probs'
          ? op('Log', [op('Add', [out, scalar(LOG_EPS)])])
          : op('LogSoftmax', [loss.temperature === 1 ? out : op('Mul', [out, scalar(1 / loss.temperature)])], {
              axis: { type: 'int', value: -1 },
            });
      const p = op('Exp', [t]);
      const kl = sumLast(op('Mul', [p, op('Sub', [t, logq])]));
      term = meanAll(kl);
      if (loss.temperature !== 1) term = op('Mul', [term, scalar(loss.temperature * loss.temperature)]);
    }
    if (loss.threshold !== undefined) {
      // mean of relu(min(|t − θ|, margin) − sign(t − θ)·(s − θ)): zero where the student is on the
      // teacher's side of θ by as much as the teacher (up to the margin); the target side needs no rule
      const th = scalar(loss.threshold);
      const dt = op('Sub', [t, th]);
      const want = op('Min', [op('Abs', [dt]), scalar(HINGE_MARGIN)]);
      const got = op('Mul', [op('Sub', [out, th]), op('Sign', [dt])]);
      const hinge = meanAll(op('Relu', [op('Sub', [want, got])]));
      term = op('Add', [term, (loss.hingeWeight ?? 1) === 1 ? hinge : op('Mul', [hinge, scalar(loss.hingeWeight!)])]);
    }
    if (loss.weight !== 1) term = op('Mul', [term, scalar(loss.weight)]);
    terms.push(term);
    if (loss.heldOut !== false) judged.push(term);
  }
  if (!terms.length) throw new EdgefitError('USAGE', 'training needs at least one output to match');
  if (!judged.length) throw new EdgefitError('USAGE', 'at least one output must count in the held-out loss');
  const sum = (name: string, xs: string[]): string => {
    const v = g.uniqueName(name);
    g.addNode(new Node({ opType: xs.length > 1 ? 'Sum' : 'Identity', name: v, inputs: xs, outputs: [v] }));
    return v;
  };
  const loss = sum('train.loss', terms);
  const heldOut = judged.length === terms.length ? loss : sum('train.heldOutLoss', judged);
  g.outputs = [...new Set([loss, heldOut])].map((name) => ({ name, type: { dtype: 'float32' as const, shape: [] } }));
  g.touch();
  return { model: m, loss, heldOut, targets };
}

/** The axes a (Log)Softmax normalises over: its axis alone from opset 13, axis..rank-1 (2-D coercion) before. */
function softmaxAxes(axis: number, rank: number, opset: number): number[] {
  const a = axis < 0 ? axis + rank : axis;
  if (opset >= 13) return [a];
  return Array.from({ length: rank - a }, (_, i) => a + i);
}

/**
 * Rules for the ops the losses put on the student's side, for use where the rule table lacks them
 * (the table's own rules win: train.ts spreads GRAD_RULES after these). Log: dy / x. LogSoftmax:
 * dy − softmax · Σ dy over its axes, with softmax = exp(output) (reading the output frees the input).
 */
export const LOSS_GRADS: GradRules = {
  Log: { diff: [0], grad: (n, [dy], _need, e) => [e.op('Div', [dy!, n.inputs[0]!])] },
  LogSoftmax: {
    diff: [0],
    grad: (n, [dy], _need, e) => {
      const rank = e.shape(n.inputs[0]!).length;
      const axes = softmaxAxes(n.attrInt('axis', e.opset >= 13 ? -1 : 1), rank, e.opset);
      const s = e.reduceSum(dy!, axes, true);
      return [e.op('Sub', [dy!, e.op('Mul', [e.op('Exp', [n.outputs[0]!]), s])])];
    },
  },
};
