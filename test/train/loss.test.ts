// The loss nodes: their values (run by onnxruntime) equal the same losses computed in JS, their
// gradients (buildGradients with the loss rules) equal the closed forms, and 'auto' picks the loss
// the outputs call for.
import t from 'tap';
import * as ort from 'onnxruntime-node';
import { randn, rng } from '../../devkit/builder.js';
import { Graph } from '../../src/ir/graph.js';
import { modelOf, type Model } from '../../src/ir/model.js';
import { Node } from '../../src/ir/node.js';
import { openSession } from '../../src/runtime/runner.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';
import { GRAD_RULES } from '../../src/passes/train/grad/rules/index.js';
import { appendLoss, HINGE_MARGIN, LOG_EPS, LOSS_GRADS, resolveLoss, teacherTarget } from '../../src/passes/train/loss.js';
import type { ResolvedLoss } from '../../src/passes/train/types.js';

const N = 3,
  C = 5;

/** A student whose output y is its input x (so the loss sees exactly the values fed). */
function identity(opset: number): Model {
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [N, C] } });
  g.addNode(new Node({ opType: 'Identity', inputs: ['x'], outputs: ['y'] }));
  g.outputs = [{ name: 'y', type: { dtype: 'float32', shape: [N, C] } }];
  return modelOf(g, { producer: 'test', opset });
}

const softmax = (z: number[]): number[] => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const rowsOf = (a: Float32Array): number[][] => Array.from({ length: N }, (_, r) => [...a.subarray(r * C, r * C + C)]);

/** JS value and gradient w.r.t. the student's output, per loss, with the threshold hinge when it has one. */
function reference(l: ResolvedLoss, s: Float32Array, tv: Float32Array): { value: number; grad: number[] } {
  const r = base(l, s, tv);
  if (l.threshold === undefined) return r;
  const th = l.threshold;
  const n = s.length / (l.hingeWeight ?? 1);
  [...s].forEach((v, i) => {
    const d = tv[i]! - th;
    const sign = Math.sign(d);
    const h = Math.min(Math.abs(d), HINGE_MARGIN) - sign * (v - th);
    if (h > 0) {
      r.value += h / n;
      r.grad[i]! -= sign / n;
    }
  });
  return r;
}

function base(l: ResolvedLoss, s: Float32Array, tv: Float32Array): { value: number; grad: number[] } {
  const n = s.length;
  if (l.kind === 'mse')
    return { value: s.reduce((a, v, i) => a + (v - tv[i]!) ** 2, 0) / n, grad: [...s].map((v, i) => (2 * (v - tv[i]!)) / n) };
  if (l.kind === 'bce') {
    const value = -[...s].reduce((a, p, i) => a + tv[i]! * Math.log(p + LOG_EPS) + (1 - tv[i]!) * Math.log(1 - p + LOG_EPS), 0) / n;
    const grad = [...s].map((p, i) => (-tv[i]! / (p + LOG_EPS) + (1 - tv[i]!) / (1 - p + LOG_EPS)) / n);
    return { value, grad };
  }
  const T = l.temperature;
  let value = 0;
  const grad: number[] = [];
  rowsOf(s).forEach((z, r) => {
    const pt = l.from === 'logits' ? softmax(rowsOf(tv)[r]!.map((v) => v / T)) : rowsOf(tv)[r]!;
    if (l.from === 'logits') {
      const q = softmax(z.map((v) => v / T));
      value += (T * T * pt.reduce((a, p, i) => a + (p > 0 ? p * Math.log(p / q[i]!) : 0), 0)) / N;
      grad.push(...q.map((qi, i) => (T * (qi - pt[i]!)) / N));
    } else {
      const lt = pt.map((p) => Math.log(p + LOG_EPS));
      value += pt.reduce((a, _p, i) => a + Math.exp(lt[i]!) * (lt[i]! - Math.log(z[i]! + LOG_EPS)), 0) / N;
      grad.push(...z.map((zi, i) => -Math.exp(lt[i]!) / (zi + LOG_EPS) / N));
    }
  });
  return { value, grad };
}

const probs = (next: () => number): Float32Array => Float32Array.from(rowsOf(randn(next, N * C)).flatMap((r) => softmax(r)));
const unit = (next: () => number): Float32Array => Float32Array.from({ length: N * C }, () => 0.02 + 0.96 * next());

const CASES: { name: string; loss: ResolvedLoss; gen: (next: () => number) => Float32Array }[] = [
  { name: 'mse', loss: { kind: 'mse', temperature: 1, from: 'logits', weight: 1 }, gen: (next) => randn(next, N * C) },
  { name: 'kl on logits, T=4', loss: { kind: 'kl', temperature: 4, from: 'logits', weight: 1 }, gen: (next) => randn(next, N * C, 3) },
  { name: 'kl on logits, T=1', loss: { kind: 'kl', temperature: 1, from: 'logits', weight: 1 }, gen: (next) => randn(next, N * C, 2) },
  { name: 'kl on probabilities', loss: { kind: 'kl', temperature: 1, from: 'probs', weight: 1 }, gen: probs },
  { name: 'bce', loss: { kind: 'bce', temperature: 1, from: 'logits', weight: 1 }, gen: unit },
  // values spread over [0.02, 0.98] against a threshold of 0.5: pixels on both sides of it, and across
  { name: 'bce + hinge at 0.5', loss: { kind: 'bce', temperature: 1, from: 'logits', weight: 1, threshold: 0.5 }, gen: unit },
  { name: 'mse + hinge at 0.3', loss: { kind: 'mse', temperature: 1, from: 'logits', weight: 2, threshold: 0.3 }, gen: unit },
  {
    name: 'bce + hinge at 0.3 weighted 10',
    loss: { kind: 'bce', temperature: 1, from: 'logits', weight: 1, threshold: 0.3, hingeWeight: 10 },
    gen: unit,
  },
  { name: 'weighted mse', loss: { kind: 'mse', temperature: 1, from: 'logits', weight: 2.5 }, gen: (next) => randn(next, N * C) },
];

for (const opset of [11, 17]) {
  t.test(`loss values and gradients match JS (opset ${opset})`, async (t) => {
    for (const c of CASES) {
      const next = rng(7);
      const s = c.gen(next);
      const teacher = c.gen(next);
      const lg = appendLoss(identity(opset), new Map([['y', c.loss]]), new Map([['y', 2]]));
      const target = lg.targets.get('y')!;
      const built = buildGradients(lg.model, {
        loss: lg.loss,
        wrt: ['x'],
        shapes: new Map([[target, [N, C]]]),
        rules: { ...LOSS_GRADS, ...GRAD_RULES },
      });
      const session = await openSession(built.model, { threads: 1 });
      const out = await session.run({
        x: new ort.Tensor('float32', s, [N, C]),
        [target]: new ort.Tensor(
          'float32',
          teacherTarget(c.loss, { dtype: 'float32', shape: [N, C], data: teacher as Float32Array<ArrayBuffer> }),
          [N, C],
        ),
      });
      await session.release();
      const ref = reference(c.loss, s, teacher);
      const value = Number(out[lg.loss]!.data[0]);
      const w = c.loss.weight;
      t.ok(Math.abs(value - w * ref.value) <= 1e-4 * Math.max(1, Math.abs(ref.value)), `${c.name}: ${value} vs JS ${w * ref.value}`);
      const g = out[built.grads.get('x')!]!.data as Float32Array;
      const err = Math.max(...ref.grad.map((r, i) => Math.abs(g[i]! - w * r) / Math.max(1e-3, Math.abs(w * r))));
      t.ok(err < 2e-3, `${c.name}: gradient relative error ${err.toExponential(2)}`);
    }
  });
}

t.test("'auto' chooses by the teacher's values", async (t) => {
  const next = rng(3);
  const arr = (data: Float32Array, shape: number[]) => ({ dtype: 'float32' as const, shape, data: data as Float32Array<ArrayBuffer> });
  const logits = resolveLoss({ kind: 'auto' }, [arr(randn(next, 20, 3), [2, 10])]);
  t.same([logits.kind, logits.from, logits.temperature], ['kl', 'logits', 4], 'classifier logits: KL at T=4');
  const p = resolveLoss({ kind: 'auto' }, [arr(probs(next), [N, C])]);
  t.same([p.kind, p.from, p.temperature], ['kl', 'probs', 1], 'softmax rows: KL at T=1');
  t.equal(resolveLoss({ kind: 'auto' }, [arr(unit(next), [1, 1, 3, 5])]).kind, 'mse', 'a probability map: MSE');
  t.equal(resolveLoss({ kind: 'auto' }, [arr(randn(next, 24), [1, 2, 3, 4])]).kind, 'mse', 'features: MSE');
  t.throws(() => resolveLoss({ kind: 'bce' }, [arr(randn(next, 10), [1, 10])]), /BCE loss needs outputs in \[0, 1\]/);
  t.equal(resolveLoss({ kind: 'bce', threshold: 0.3 }, [arr(unit(next), [1, 1, 3, 5])]).threshold, 0.3, 'a hinge on a map');
  t.throws(() => resolveLoss({ kind: 'kl', threshold: 0.3 }, [arr(probs(next), [N, C])]), /threshold hinge is for probability maps/);
  t.equal(resolveLoss({ kind: 'bce', threshold: 0.3, hingeWeight: 10 }, [arr(unit(next), [1, 1, 3, 5])]).hingeWeight, 10);
  t.throws(() => resolveLoss({ kind: 'bce', hingeWeight: 10 }, [arr(unit(next), [1, 1, 3, 5])]), /a hinge weight needs a threshold/);
  t.throws(() => resolveLoss({ kind: 'bce', threshold: 0.3, hingeWeight: 0 }, [arr(unit(next), [1, 1, 3, 5])]), /must be positive/);
});
