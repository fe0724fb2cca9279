// The stem distillation leaves frozen (freeze.ts): which weights freeze on generated image models
// and on the real PP-OCR det, rec and MNIST models, and that distillation leaves them as they were
// while the rest trains (train() alone, as QAT calls it, and freezeStride 0 train them too).
import t from 'tap';
import { join } from 'node:path';
import { FIXTURES, fixtureInputShape, ModelBuilder, randn, rng } from '../../devkit/builder.js';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';
import type { Sample } from '../../src/data/inputs.js';
import { cloneModel, type Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { loadModel } from '../../src/onnx/index.js';
import { foldPass } from '../../src/passes/cleanup/fold.js';
import { normalize } from '../../src/passes/normalize.js';
import { runPass } from '../../src/passes/pass.js';
import { distill, distillTrainable } from '../../src/passes/train/distill.js';
import { FREEZE_STRIDE, freezeStem, frozenNote } from '../../src/passes/train/freeze.js';
import { train } from '../../src/passes/train/train.js';

/**
 * An image model at 32x32: two stem convs (to 16x16 and 8x8, stride 4), a stride-2 conv to 4x4
 * (stride 8, the first map the default keeps trained), then `tail` 1x1 convs.
 */
function stemmed(tail: number, seed = 3): { model: Model; stem: string[]; rest: string[] } {
  const b = new ModelBuilder({ seed });
  let x = b.input('x', [1, 3, 32, 32]);
  x = b.relu(b.conv(x, 8, { k: 3, stride: 2 }));
  x = b.relu(b.conv(x, 8, { k: 3, stride: 2 }));
  const stemWeights = [...b.graph.initializers()].map((w) => w.name);
  x = b.relu(b.conv(x, 8, { k: 3, stride: 2 }));
  for (let i = 0; i < tail; i++) x = b.relu(b.conv(x, 8));
  b.output(x);
  const model = b.build();
  const all = [...model.graph.initializers()].map((w) => w.name);
  return { model, stem: stemWeights, rest: all.filter((w) => !stemWeights.includes(w)) };
}

const shapesOf = (m: Model, shape: number[]): Map<string, number[]> => new Map([[m.graph.runtimeInputs()[0]!.name, shape]]);

t.test('the layers before the first map at 1/8 of the input side freeze, the rest train', async (t) => {
  const { model, stem, rest } = stemmed(6);
  const all = [...stem, ...rest];
  const f = freezeStem(model, all, shapesOf(model, [1, 3, 32, 32]), 8);
  t.same(f.frozen, stem, 'the two stem convs freeze (weights and biases)');
  t.same(f.trainable, rest, 'the stride-8 conv and the tail train');
  t.equal(f.layers.length, 2, 'the frozen weights feed two layers');
  t.equal(f.stride, 8);
  t.match(frozenNote(f), /the stem \(2 layers, before stride 8\) frozen/);
  // the default, 16: no map gets to 1/16 of 32x32 (4x4 is the smallest), so it falls back to 8
  t.equal(FREEZE_STRIDE, 16);
  t.same(freezeStem(model, all, shapesOf(model, [1, 3, 32, 32])), f);
  t.equal(frozenNote(undefined), '');
  // at stride 4 only the first conv is the stem: the second already makes a 1/4 map
  t.same(freezeStem(model, all, shapesOf(model, [1, 3, 32, 32]), 4).frozen, stem.slice(0, 2));
  // at 64x64: maps of 1/2 and 1/4, a 1/8 map, four more convs on it, then a 1/16 map and a tail
  const net = (tail: number): { m: Model; weights: string[]; early: string[]; before16: string[] } => {
    const b = new ModelBuilder({ seed: 4 });
    let x = b.input('x', [1, 3, 64, 64]);
    x = b.relu(b.conv(x, 8, { k: 3, stride: 2 }));
    x = b.relu(b.conv(x, 8, { k: 3, stride: 2 }));
    const early = [...b.graph.initializers()].map((w) => w.name);
    x = b.relu(b.conv(x, 8, { k: 3, stride: 2 }));
    for (let i = 0; i < 4; i++) x = b.relu(b.conv(x, 8, { k: 3 }));
    const before16 = [...b.graph.initializers()].map((w) => w.name);
    x = b.relu(b.conv(x, 8, { k: 3, stride: 2 }));
    for (let i = 0; i < tail; i++) x = b.relu(b.conv(x, 8));
    b.output(x);
    const m = b.build();
    return { m, weights: [...m.graph.initializers()].map((w) => w.name), early, before16 };
  };
  // 7 of 12 layers before 1/16 is too long a stem: it falls back to the 2 before 1/8
  const short = net(4);
  const fs = freezeStem(short.m, short.weights, shapesOf(short.m, [1, 3, 64, 64]));
  t.same(fs.frozen, short.early);
  t.equal(fs.stride, 8);
  // 7 of 28 is a quarter: the stem is all 7
  const long = net(20);
  const fl = freezeStem(long.m, long.weights, shapesOf(long.m, [1, 3, 64, 64]));
  t.same(fl.frozen, long.before16);
  t.equal(fl.stride, 16);
  // asked for 16 with a stride that does not fall back below 8: 4 gives only the first conv
  t.same(freezeStem(short.m, short.weights, shapesOf(short.m, [1, 3, 64, 64]), 4).frozen, short.early.slice(0, 2));
  // a weight not asked to train is not reported frozen
  t.same(freezeStem(model, rest, shapesOf(model, [1, 3, 32, 32])).frozen, []);
});

t.test('nothing freezes at stride 0, in a shallow net, or without a map that small', async (t) => {
  const deep = stemmed(6);
  const all = [...deep.stem, ...deep.rest];
  t.same(freezeStem(deep.model, all, shapesOf(deep.model, [1, 3, 32, 32]), 0).frozen, [], 'stride 0 trains every layer');
  // 2 stem layers of 4: more than a quarter of the trained layers
  const shallow = stemmed(1);
  t.same(freezeStem(shallow.model, [...shallow.stem, ...shallow.rest], shapesOf(shallow.model, [1, 3, 32, 32])).frozen, []);
  // every conv at stride 1: no map gets to 1/8 of the input
  const flat = new ModelBuilder({ seed: 2 });
  let x = flat.input('x', [1, 3, 32, 32]);
  for (let i = 0; i < 6; i++) x = flat.relu(flat.conv(x, 8, { k: 3 }));
  flat.output(x);
  const fm = flat.build();
  t.same(
    freezeStem(
      fm,
      [...fm.graph.initializers()].map((w) => w.name),
      shapesOf(fm, [1, 3, 32, 32]),
    ).frozen,
    [],
  );
  // no 4-d input: an MLP
  const mlp = FIXTURES.mlp();
  t.same(
    freezeStem(
      mlp,
      [...mlp.graph.initializers()].map((w) => w.name),
      shapesOf(mlp, fixtureInputShape(mlp)),
    ).frozen,
    [],
  );
});

t.test('a weight reaching its layer through weight-only nodes (a fake-quant chain) freezes with it', async (t) => {
  const { model, stem, rest } = stemmed(6);
  const g = model.graph;
  // the first conv's weight as QAT trains it: w -> QuantizeLinear -> DequantizeLinear -> Conv
  const conv = g.nodes.find((n) => n.opType === 'Conv')!;
  const w = conv.inputs[1]!;
  g.setInitializer(Tensor.fromFloat32('w.scale', [], [0.01]));
  g.addNode({ opType: 'QuantizeLinear', name: 'wq', inputs: [w, 'w.scale'], outputs: ['w.q'] }, { before: conv });
  g.addNode({ opType: 'DequantizeLinear', name: 'wdq', inputs: ['w.q', 'w.scale'], outputs: ['w.dq'] }, { before: conv });
  conv.inputs[1] = 'w.dq';
  g.touch();
  const f = freezeStem(model, [w, ...stem.slice(1), ...rest], shapesOf(model, [1, 3, 32, 32]));
  t.ok(f.frozen.includes(w), 'the fake-quantized weight freezes with its conv');
  t.same(f.frozen, stem);
  t.same(f.trainable, rest);
});

t.test('PP-OCRv4 det freezes its stem (12 layers before its 20x20 maps), rec and MNIST nothing', async (t) => {
  const load = (file: string): Model => {
    const m = normalize(loadModel(file));
    runPass(foldPass, m, 'float');
    return m;
  };
  const det = load(OCR_MODELS.det.file);
  const dt = distillTrainable(det);
  const f = freezeStem(det, dt, shapesOf(det, [4, 3, 320, 320]));
  t.same(
    f.layers,
    ['p2o.Conv.0', 'p2o.BatchNormalization.0', ...Array.from({ length: 10 }, (_, i) => `p2o.Conv.${i + 1}`)],
    "det's stem: the 160x160, 80x80 and 40x40 layers",
  );
  t.equal(f.stride, 16);
  t.equal(freezeStem(det, dt, shapesOf(det, [4, 3, 320, 320]), 8).layers.length, 8, 'at 8: the 160x160 and 80x80 layers');
  t.equal(f.frozen.length + f.trainable.length, dt.length);
  t.ok(f.trainable.length > 4 * f.frozen.length, `${f.trainable.length} weights train, ${f.frozen.length} freeze`);
  // the same layers on a crop: the rule is of the ratio
  t.same(freezeStem(det, dt, shapesOf(det, [4, 3, 192, 192])).layers, f.layers);
  // rec narrows its height to 1/8 only after 22 of its layers (to 1/16 after 30), more than a quarter: all train
  const rec = load(OCR_MODELS.rec.file);
  t.same(freezeStem(rec, distillTrainable(rec), shapesOf(rec, [8, 3, 48, 320])).frozen, []);
  const mnist = load(join(ROOT, 'models/mnist-cnn.onnx'));
  t.same(freezeStem(mnist, distillTrainable(mnist), shapesOf(mnist, [32, 1, 28, 28])).frozen, [], "MNIST's three convs all train");
});

t.test('distill() leaves the stem as it was and trains the rest; train() and freezeStride 0 train the stem too', async (t) => {
  const { model: teacher, stem, rest } = stemmed(6);
  // a student off its teacher in every weight
  const student = cloneModel(teacher);
  const next = rng(9);
  for (const w of [...student.graph.initializers()]) {
    const v = w.toFloat32();
    const noise = randn(next, v.length);
    student.graph.setInitializer(
      Tensor.fromFloat32(
        w.name,
        w.dims,
        v.map((x, i) => x * (1 + 0.2 * noise[i]!)),
      ),
    );
  }
  const rows = (n: number, seed: number): Sample[] => {
    const r = rng(seed);
    return Array.from({ length: n }, () => ({
      x: { dtype: 'float32' as const, shape: [1, 3, 32, 32], data: randn(r, 3 * 32 * 32) as Float32Array<ArrayBuffer> },
    }));
  };
  const same = (a: Model, b: Model, w: string): boolean => {
    const x = a.graph.initializer(w)!.toFloat32();
    const y = b.graph.initializer(w)!.toFloat32();
    return x.every((v, i) => v === y[i]);
  };
  const paramsOf = (m: Model, ws: string[]): number => ws.reduce((a, w) => a + m.graph.initializer(w)!.toFloat32().length, 0);

  // distillation's default: the stem frozen
  const distilled = cloneModel(student);
  const d = await distill(distilled, teacher, { minutes: 1, maxSteps: 12, samples: rows(8, 1), threads: 1, lr: 2e-3 });
  t.ok(d.training.improved, 'distillation helped');
  t.same(
    d.training.frozen,
    { weights: stem.length, layers: d.training.frozen!.layers, stride: 8 },
    'FREEZE_STRIDE falls back to 8 (no 1/16 map)',
  );
  t.equal(d.training.frozen!.layers.length, 2);
  for (const w of stem) t.ok(same(distilled, student, w), `${w} (stem) is unchanged`);
  t.ok(
    rest.some((w) => !same(distilled, student, w)),
    'the layers after the stem trained',
  );
  t.equal(d.training.trainedParams, paramsOf(student, rest), 'only the rest is counted trained');

  // train() on its own (QAT's way): every layer; freezeStride 0 in distill() too
  const base = { teacher, trainable: [...stem, ...rest], train: rows(6, 1), heldOut: rows(2, 2), minutes: 1, maxSteps: 12, threads: 1 };
  const all = await train({ ...base, student: cloneModel(student) });
  t.equal(all.report.frozen, undefined);
  t.equal(all.report.trainedParams, paramsOf(student, [...stem, ...rest]));
  t.ok(
    stem.some((w) => !same(all.model, student, w)),
    'train() trains the stem',
  );
  const unfrozen = cloneModel(student);
  const u = await distill(unfrozen, teacher, { minutes: 1, maxSteps: 12, samples: rows(8, 1), threads: 1, lr: 2e-3, freezeStride: 0 });
  t.equal(u.training.frozen, undefined);
  t.ok(
    stem.some((w) => !same(unfrozen, student, w)),
    'distill() at freezeStride 0 trains the stem',
  );
  const frozen = await train({ ...base, student: cloneModel(student), freezeStride: 8 });
  t.equal(frozen.report.frozen?.layers.length, 2, 'train() freezes when asked');
  await t.rejects(
    train({ ...base, student, freezeStride: 1 }),
    /a freeze stride must be 0 \(train every layer\) or an integer from 2, got 1/,
  );
});
