// Distillation's data and guides (issue 18): intermediate features at the ends of pruned regions
// (found by shape, matched by MSE, never part of the held-out loss), training rows held as bytes,
// and a training set of its own with the calibration samples held out.
import t from 'tap';
import { FIXTURES, ModelBuilder, randn, rng } from '../../devkit/builder.js';
import type { Sample } from '../../src/data/inputs.js';
import { cloneModel } from '../../src/ir/model.js';
import { prune } from '../../src/passes/prune/index.js';
import { compactSamples } from '../../src/data/compact.js';
import { distill, MAP_LR } from '../../src/passes/train/distill.js';
import { MASK_THRESHOLD } from '../../src/fidelity/metrics.js';
import { boundaryFeatures, featureLosses, headFeatures } from '../../src/passes/train/features.js';
import { appendLoss } from '../../src/passes/train/loss.js';
import { openSession } from '../../src/runtime/runner.js';
import * as ort from 'onnxruntime-node';

const shape = [1, 3, 32, 32];
const shapes = new Map([['x', shape]]);
const next = rng(11);
/** Smooth random images (neighbouring pixels correlate, as in photos), 8-bit levels, normalised. */
const images = (n: number): Sample[] =>
  Array.from({ length: n }, () => {
    const base = randn(next, 3 * 8 * 8);
    const data = new Float32Array(3 * 32 * 32);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          data[c * 1024 + y * 32 + x] = (Math.round(((base[c * 64 + (y >> 2) * 8 + (x >> 2)]! + 3) / 6) * 255) / 255 - 0.5) / 0.25;
    return { x: { dtype: 'float32', shape, data } };
  });
const calib = images(16);
const trainSet = images(24);

async function prunedSe() {
  const teacher = FIXTURES.se();
  const student = cloneModel(teacher);
  await prune(student, {
    structured: 0.5,
    importance: 'l1',
    recover: 'lsq',
    steps: 1,
    round: 1,
    shapes,
    samples: calib,
    synthetic: false,
    skipFidelity: true,
  });
  return { teacher, student };
}

t.test('features: the full-width tensors fed by pruned ones, matched by MSE outside the held-out loss', async (t) => {
  const { teacher, student } = await prunedSe();
  t.same(boundaryFeatures(teacher, teacher, shapes), [], 'nothing pruned: no boundary');
  const found = boundaryFeatures(student, teacher, shapes);
  t.equal(found.length, 1, `one boundary: ${found.join(', ')}`);
  const f = await featureLosses(student, teacher, trainSet, { features: 'auto', weight: 1, loss: undefined, threads: 1 });
  t.same(
    f.chosen.map((c) => c.tensor),
    found,
  );
  t.ok(f.chosen[0]!.weight > 0 && f.chosen[0]!.cosine >= 0.5, JSON.stringify(f.chosen));
  t.same(f.loss[found[0]!], { kind: 'mse', weight: f.chosen[0]!.weight, heldOut: false });
  t.ok(
    f.student.graph.outputs.some((o) => o.name === found[0]) && f.teacher.graph.outputs.some((o) => o.name === found[0]),
    'both copies expose it',
  );
  t.equal(student.graph.outputs.length, 1, 'the given student is untouched');
  t.equal(teacher.graph.outputs.length, 1, 'the given teacher is untouched');
  const off = await featureLosses(student, teacher, trainSet, { features: false, weight: 1, loss: undefined });
  t.equal(off.chosen.length, 0);
  t.equal(off.student, student, 'features off: the student as given');

  // the held-out scalar sums only the held-out terms
  const out = student.graph.outputs[0]!.name;
  const lg = appendLoss(
    f.student,
    new Map([
      [out, { kind: 'mse', temperature: 1, from: 'logits', weight: 1 }],
      [found[0]!, { kind: 'mse', temperature: 1, from: 'logits', weight: 3, heldOut: false }],
    ]),
    new Map([
      [out, 4],
      [found[0]!, 4],
    ]),
  );
  t.not(lg.heldOut, lg.loss);
  const s = await openSession(lg.model, { threads: 1 });
  const x = calib[0]!.x!;
  const sOut = await openSession(f.student, { threads: 1 });
  const own = await sOut.run({ x: new ort.Tensor('float32', x.data as Float32Array, x.shape) });
  // targets: the student's own map (term 0) and its feature + 1 (MSE 1, weight 3)
  const map = own[out]!;
  const feat = own[found[0]!]!;
  const r = await s.run({
    x: new ort.Tensor('float32', x.data as Float32Array, x.shape),
    [lg.targets.get(out)!]: map,
    [lg.targets.get(found[0]!)!]: new ort.Tensor(
      'float32',
      (feat.data as Float32Array).map((v) => v + 1),
      feat.dims,
    ),
  });
  await Promise.all([s.release(), sOut.release()]);
  t.ok(Math.abs(Number(r[lg.heldOut]!.data[0])) < 1e-6, 'held-out loss: the outputs only');
  t.ok(Math.abs(Number(r[lg.loss]!.data[0]) - 3) < 1e-4, `training loss with the feature term: ${r[lg.loss]!.data[0]}`);
});

/** Three scales, the coarser two upsampled, concatenated for a map head; `fineWidth` channels at the finest. */
function threeScales(fineWidth: number) {
  const b = new ModelBuilder({ seed: 5 });
  const x = b.input('x', shape);
  const fine = b.relu(b.conv(x, fineWidth, { k: 3 }));
  const coarse = b.relu(b.conv(fine, 8, { k: 3, stride: 2 }));
  const deeper = b.relu(b.conv(coarse, 4, { k: 3, stride: 2 }));
  const cat = b.concat([fine, b.resize2x(coarse), b.resize2x(b.resize2x(deeper))]);
  b.output(b.node('Sigmoid', [b.conv(b.relu(b.conv(cat, 4, { k: 3 })), 1, { k: 1 })], [1, 1, 32, 32]));
  return { m: b.build(), fine, coarse, deeper };
}

t.test('head features: the maps a Concat hands the head, taken before their Resize; none where no Concat feeds the outputs', async (t) => {
  const { m, fine, coarse, deeper } = threeScales(6);
  t.same(headFeatures(m, m, shapes), [fine, coarse, deeper], 'the three scales, each at its own size');
  t.same(headFeatures(FIXTURES.residual(), FIXTURES.residual(), shapes), [], 'a classifier: its last join is an Add, no head maps');
  // a student whose finest map is narrower (a pruned width) does not match it; the same builder seed names alike
  t.same(headFeatures(threeScales(3).m, m, shapes), [coarse, deeper], 'the narrower map left out');
  const f = await featureLosses(m, m, trainSet, { features: 'head', weight: 1, loss: undefined, threads: 1 });
  t.same(
    f.chosen.map((c) => c.tensor),
    [],
    'a student identical to its teacher has nothing to match (MSE 0)',
  );
});

t.test('compact samples: bytes per channel, decoded within half a level, same sample identity', async (t) => {
  // values off the 8-bit grid (a resize interpolates between pixels), 64x64: above the size kept as float
  const big = [1, 3, 64, 64];
  const a = Float32Array.from(randn(next, 3 * 4096));
  const [c] = compactSamples([{ x: { dtype: 'float32', shape: big, data: a } }]);
  const b = c!.x!.data as Float32Array;
  t.same(c!.x!.shape, big);
  t.equal(b.constructor, Float32Array);
  let worst = 0;
  for (let ch = 0; ch < 3; ch++) {
    const plane = a.subarray(ch * 4096, (ch + 1) * 4096);
    const range = Math.max(...plane) - Math.min(...plane);
    for (let i = ch * 4096; i < (ch + 1) * 4096; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / range);
  }
  t.ok(worst > 0 && worst <= 0.5 / 255 + 1e-6, `worst error ${worst} of the channel range`);
  t.same(Object.keys(c!), ['x'], 'the input stays enumerable');
  t.ok(c!.x!.data !== c!.x!.data, 'each read is a fresh copy');
  const small: Sample = { y: { dtype: 'float32', shape: [1, 4], data: new Float32Array(4) } };
  t.equal(compactSamples([small])[0]!.y, small.y, 'small inputs as they were');
});

t.test('distill on a training set of its own, features guiding, calibration samples held out', async (t) => {
  const { teacher, student } = await prunedSe();
  const r = await distill(student, teacher, {
    minutes: 0.5,
    maxSteps: 40,
    samples: compactSamples(calib),
    trainSamples: compactSamples(trainSet),
    threads: 1,
    lr: 2e-3,
    batch: 4,
  });
  t.equal(r.trainSamples, 24, 'every training image trains');
  t.equal(r.heldOutSamples, 16, 'the calibration samples are the held-out set');
  t.equal(r.features.length, 1, 'one feature matched');
  t.equal(r.lrTrial.length, 0, 'one rate given: no trial');
  t.equal(Object.keys(r.training.losses).length, 2, 'the output and the feature');
  t.ok(
    r.training.improved && r.training.heldOutAfter < r.training.heldOutBefore,
    `${r.training.heldOutBefore} -> ${r.training.heldOutAfter}`,
  );
  t.equal(student.graph.outputs.length, 1, 'the student keeps its outputs');
});

t.test('distill tries several rates and goes on with the best', async (t) => {
  const { teacher, student } = await prunedSe();
  const r = await distill(student, teacher, {
    minutes: 0.6,
    samples: calib,
    trainSamples: trainSet,
    threads: 1,
    lr: [2e-3, 1e-6],
    batch: 4,
  });
  t.same(
    r.lrTrial.map((x) => x.lr),
    [2e-3, 1e-6],
  );
  t.equal(r.training.lr, 2e-3, `the rate with the lower held-out loss: ${JSON.stringify(r.lrTrial)}`);
  t.ok(r.training.heldOutAfter <= Math.min(...r.lrTrial.map((x) => x.heldOut)) + 1e-12, 'never worse than the best trial');
  t.ok(r.training.steps >= r.lrTrial.reduce((a, x) => a + x.steps, 0), 'steps of every run counted');
});

t.test("a probability-map student's defaults: BCE with the threshold hinge, MAP_LR", async (t) => {
  const { teacher, student } = await prunedSe();
  const r = await distill(student, teacher, { minutes: 0.2, maxSteps: 5, samples: calib, trainSamples: trainSet, threads: 1 });
  const out = Object.values(r.training.losses)[0]!;
  t.same([out.kind, out.threshold], ['bce', MASK_THRESHOLD], 'per-pixel BCE and the hinge at the mask threshold');
  t.equal(r.training.lr, MAP_LR);
});
