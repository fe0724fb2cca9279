// train() with Adam in the graph (TrainSpec.optimizer 'graph', adam-graph.ts) takes the steps the
// TypeScript Adam takes: the same student, rows and seed give the same weights and losses.
import t from 'tap';
import { FIXTURES, randn, rng } from '../../devkit/builder.js';
import type { Sample } from '../../src/data/inputs.js';
import { cloneModel, type Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { train } from '../../src/passes/train/train.js';

const rows = (n: number, seed: number): Sample[] => {
  const next = rng(seed);
  return Array.from({ length: n }, () => ({
    x: { dtype: 'float32' as const, shape: [1, 1, 8, 8], data: randn(next, 64) as Float32Array<ArrayBuffer> },
  }));
};

function perturbed(m: Model, scale: number, seed: number): Model {
  const c = cloneModel(m);
  const next = rng(seed);
  for (const w of [...c.graph.initializers()]) {
    if (w.dtype !== 'float32') continue;
    const v = w.toFloat32();
    const noise = randn(next, v.length);
    c.graph.setInitializer(
      Tensor.fromFloat32(
        w.name,
        w.dims,
        v.map((x, i) => x * (1 + scale * noise[i]!)),
      ),
    );
  }
  return c;
}

t.test('in-graph Adam trains as the TypeScript Adam does', async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.3, 5);
  const trainable = [...student.graph.initializers()].filter((w) => w.dtype === 'float32').map((w) => w.name);
  // batch 1: one run per step, so 'graph' applies (with accumulation the TypeScript Adam runs)
  const spec = { student, trainable, teacher, loss: 'mse' as const, train: rows(24, 1), heldOut: rows(8, 2) };
  // a budget so long that the schedule follows the steps alone (the first step's warm-up learning rate then matches)
  const common = { minutes: 1e5, maxSteps: 30, batch: 1, lr: 3e-3, threads: 1, evaluations: 3, weightDecay: 0.01, seed: 4 };
  const ts = await train({ ...spec, ...common });
  const graph = await train({ ...spec, ...common, optimizer: 'graph' });
  t.equal(graph.report.steps, 30);
  t.ok(graph.report.improved, 'training helped');
  const rel = Math.abs(graph.report.heldOutAfter - ts.report.heldOutAfter) / ts.report.heldOutAfter;
  t.ok(
    rel < 1e-3,
    `held-out loss ${graph.report.heldOutAfter.toExponential(4)} vs ${ts.report.heldOutAfter.toExponential(4)} (TypeScript Adam)`,
  );
  let worst = 0;
  for (const w of trainable) {
    const a = ts.model.graph.initializer(w)!.toFloat32();
    const b = graph.model.graph.initializer(w)!.toFloat32();
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  t.ok(worst < 1e-4, `weights agree within ${worst.toExponential(2)}`);
});
