// Adam inside the training graph (adam-graph.ts) against the TypeScript Adam (adam.ts): on the
// MNIST CNN with an MSE loss to fixed targets, five steps each way from the same weights give the
// same weights (float32 rounding apart), with weight decay and a changing learning rate; the
// gradient outputs are gone from the graph and the flat vector's layout covers every weight.
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import t from 'tap';
import { randn, rng } from '../../devkit/builder.js';
import { ROOT } from '../../devkit/paths.js';
import { cloneModel } from '../../src/ir/model.js';
import { Node } from '../../src/ir/node.js';
import { inferShapes } from '../../src/ir/shapes.js';
import { Tensor } from '../../src/ir/tensor.js';
import { loadModel } from '../../src/onnx/index.js';
import { openSession } from '../../src/runtime/runner.js';
import { Adam } from '../../src/passes/train/adam.js';
import { ADAM_IO, adamScalars, appendAdam } from '../../src/passes/train/adam-graph.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';

t.test('in-graph Adam takes the steps the TypeScript Adam takes', async (t) => {
  const shapes = new Map([['x', [4, 1, 28, 28]]]);
  const m = cloneModel(loadModel(join(ROOT, 'models/mnist-cnn.onnx')));
  const g = m.graph;
  const wrt = [...g.initializers()].filter((w) => w.dtype === 'float32').map((w) => w.name);
  const out = g.outputs[0]!.name;
  const os = inferShapes(m, { shapes }).types.get(out)!.shape as number[];
  const next = rng(5);
  g.setInitializer(
    Tensor.fromFloat32(
      'target',
      os,
      randn(
        next,
        os.reduce((a, b) => a * b, 1),
      ),
    ),
  );
  g.addNode(new Node({ opType: 'Sub', inputs: [out, 'target'], outputs: ['d'] }));
  g.addNode(new Node({ opType: 'Mul', inputs: ['d', 'd'], outputs: ['sq'] }));
  g.addNode(new Node({ opType: 'ReduceMean', inputs: ['sq'], outputs: ['L'], attrs: { keepdims: { type: 'int', value: 0 } } }));
  g.outputs = [{ name: 'L', type: null }];
  g.touch();
  const built = buildGradients(m, { loss: 'L', wrt, shapes });
  const opts = { weightDecay: 0.01 };
  const ag = appendAdam(built.model, built.grads, opts);
  t.equal(ag.layout.size, wrt.length, 'every weight has a place in the flat vector');
  t.equal(
    ag.size,
    [...built.initial.values()].reduce((a, w) => a + w.size, 0),
    'the vector holds every element',
  );
  const outs = ag.model.graph.outputs.map((o) => o.name);
  t.same(outs.slice(0, 4), ['L', ADAM_IO.paramsOut, ADAM_IO.mOut, ADAM_IO.vOut], 'loss first, then the updated vector and moments');
  t.notOk(
    outs.some((o) => [...built.grads.values()].includes(o)),
    'no gradient outputs',
  );

  const x = new ort.Tensor('float32', randn(next, 4 * 28 * 28), [4, 1, 28, 28]);
  // TypeScript Adam over the plain training graph
  const params = new Map(wrt.map((w) => [w, Float32Array.from(built.initial.get(w)!.toFloat32())]));
  const adam = new Adam(params, opts);
  const plain = await openSession(built.model, { threads: 1 });
  const lrs = [1e-3, 2e-3, 5e-3, 2e-3, 1e-3];
  for (const lr of lrs) {
    const feeds: Record<string, ort.Tensor> = { x };
    for (const [w, p] of params) feeds[w] = new ort.Tensor('float32', p, [...built.initial.get(w)!.dims]);
    const r = await plain.run(feeds);
    adam.step(new Map(wrt.map((w) => [w, r[built.grads.get(w)!]!.data as Float32Array])), lr);
  }
  await plain.release();

  // the same five steps in the graph, its outputs fed back as they come
  const flat = new Float32Array(ag.size);
  for (const [w, l] of ag.layout) flat.set(built.initial.get(w)!.toFloat32(), l.offset);
  const s = await openSession(ag.model, { threads: 1 });
  let p: ort.Tensor = new ort.Tensor('float32', flat, [ag.size]);
  let mv: ort.Tensor = new ort.Tensor('float32', new Float32Array(ag.size), [ag.size]);
  let vv: ort.Tensor = new ort.Tensor('float32', new Float32Array(ag.size), [ag.size]);
  const scalar = (v: number): ort.Tensor => new ort.Tensor('float32', new Float32Array([v]), [1]);
  for (let i = 0; i < lrs.length; i++) {
    const sc = adamScalars(i + 1, lrs[i]!, opts);
    const r = await s.run({
      x,
      [ADAM_IO.params]: p,
      [ADAM_IO.m]: mv,
      [ADAM_IO.v]: vv,
      [ADAM_IO.stepSize]: scalar(sc.stepSize),
      [ADAM_IO.eps]: scalar(sc.eps),
      [ADAM_IO.decay]: scalar(sc.decay),
    });
    p = r[ADAM_IO.paramsOut]!;
    mv = r[ADAM_IO.mOut]!;
    vv = r[ADAM_IO.vOut]!;
  }
  await s.release();
  const got = p.data as Float32Array;
  let worst = 0;
  let moved = 0;
  for (const [w, l] of ag.layout) {
    const want = params.get(w)!;
    const init = built.initial.get(w)!.toFloat32();
    for (let i = 0; i < l.size; i++) {
      worst = Math.max(worst, Math.abs(got[l.offset + i]! - want[i]!));
      moved = Math.max(moved, Math.abs(want[i]! - init[i]!));
    }
  }
  t.ok(moved > 5e-3, `the steps moved the weights (up to ${moved.toExponential(2)})`);
  t.ok(worst < 1e-5, `in-graph and TypeScript Adam agree within ${worst.toExponential(2)}`);
});
