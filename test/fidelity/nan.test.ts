// A NaN fidelity is a failing one, and so is a candidate that puts out NaN (issue 20: an all-NaN
// calibration set gave "cosine mean NaN" and a fully int8 model with --min-fidelity 0.99, since
// every comparison with NaN is false). Real MNIST outputs, a real candidate poisoned with NaN.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { Tensor } from '../../src/ir/tensor.js';
import { readNpy } from '../../src/data/npy.js';
import { compareSamples, compareTask, finiteOr, FidelityAccumulator, METRICS, type Outputs } from '../../src/fidelity/index.js';
import { floatOutputs, measureFidelity } from '../../src/fit/quantize/fidelity.js';
import { quantizeModel } from '../../src/fit/quantize/plan.js';
import { meets } from '../../src/budgets/index.js';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import { ROOT } from '../../devkit/paths.js';

const MNIST = join(ROOT, 'models/mnist-cnn.onnx');
const dir = mkdtempSync(join(tmpdir(), 'edgefit-nan-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
writeMnistLabelled(join(dir, 'cal'), { split: 'train', limit: 6 });
const cal = readNpy(join(dir, 'cal', 'x.npy'));
const feeds = Array.from({ length: cal.shape[0]! }, (_, i) => ({
  x: new ort.Tensor('float32', (cal.data as Float32Array).slice(i * 784, (i + 1) * 784), [1, 1, 28, 28]),
}));
const outs = (r: Record<string, ort.Tensor>): Outputs =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { dims: v.dims, data: v.data as Float32Array }]));

/** MNIST with its logits plus a constant NaN: a candidate whose every output is NaN. */
function poisoned(): Uint8Array {
  const m = loadModel(MNIST);
  const g = m.graph;
  const out = g.outputs[0]!.name;
  const raw = g.uniqueName('raw_logits');
  const p = g.producer(out)!;
  p.outputs[p.outputs.indexOf(out)] = raw;
  g.setInitializer(Tensor.fromFloat32('poison', [1], [NaN]));
  g.addNode({ name: 'poison_add', opType: 'Add', inputs: [raw, 'poison'], outputs: [out] });
  g.touch();
  return serializeModel(m);
}

t.test('finiteOr: NaN becomes the given worst, numbers pass', async (t) => {
  t.equal(finiteOr(NaN, 0), 0);
  t.equal(finiteOr(0.5, 0), 0.5);
  t.equal(finiteOr(-Infinity, 0), -Infinity, 'infinity is a number a metric may mean');
});

t.test('every metric scores a candidate with NaN outputs at its worst, never NaN', async (t) => {
  const ref = (await floatOutputs(serializeModel(loadModel(MNIST)), feeds, 1)).map(outs);
  const bad = ref.map((o, i) =>
    Object.fromEntries(
      Object.entries(o).map(([k, v]) => {
        const d = Float32Array.from(v.data);
        if (i === 2) d[3] = NaN; // one value of one sample
        return [k, { dims: v.dims, data: d }];
      }),
    ),
  );
  for (const metric of Object.keys(METRICS) as (keyof typeof METRICS)[]) {
    const c = compareSamples(ref, bad, [{ metric }]);
    t.equal(c.broken, 1, `${metric}: the broken sample is counted`);
    t.equal(c.results[0]!.value, METRICS[metric].worst, `${metric}: worst`);
    t.notOk(Number.isNaN(c.results[0]!.value));
  }
  // the same outputs without the NaN: the candidate is the reference itself
  t.equal(compareSamples(ref, ref, [{ metric: 'cosine' }]).results[0]!.value, 1);
  // a NaN the reference has too is no fault of the candidate's
  const other = Object.fromEntries(
    Object.entries(bad[2]!).map(([k, v]) => [k, { dims: v.dims, data: v.data.map((x, i) => (i === 0 ? x + 1 : x)) }]),
  );
  const acc = new FidelityAccumulator([{ metric: 'cosine', over: 'mean' }]);
  acc.add(bad[2]!, other);
  t.equal(acc.result().broken, 0, 'only a NaN where the reference has a number counts');
  // by task: a NaN-poisoned classifier's top-1 agreement is 0, not "agrees"
  t.equal(compareTask('classify', undefined, ref, bad).value, 0);
  t.equal(compareTask('classify', undefined, ref, ref).value, 1);
});

t.test("quantize's judge: a real candidate putting out NaN measures 0, below any floor", async (t) => {
  const reference = await floatOutputs(serializeModel(loadModel(MNIST)), feeds, 1);
  const cos = await measureFidelity(poisoned(), feeds, reference, 'all', 1, 'cosine');
  t.same([cos.mean, cos.min], [METRICS.cosine.worst, METRICS.cosine.worst], 'cosine at its worst, every sample');
  t.notOk(Number.isNaN(cos.loss));
  const top1 = await measureFidelity(poisoned(), feeds, reference, 'all', 1, 'argmax');
  t.same([top1.mean, top1.min], [0, 0], 'top-1 agreement 0, every sample');
  const task = await measureFidelity(poisoned(), feeds, reference, 'all', 1, {
    task: 'classify',
    def: (await import('../../src/fidelity/index.js')).taskDef('classify'),
  });
  t.equal(task.mean, 0);
  t.notOk(meets({ fidelity: cos.mean }, { minFidelity: 0.99 }).ok, 'fails the floor');
  t.notOk(meets({ fidelity: NaN }, { minFidelity: 0.5 }).ok, 'meets: a NaN fidelity fails');
});

t.test('quantizeModel refuses NaN or infinite feeds (the loader refuses them in files)', async (t) => {
  const nan = feeds.map(() => ({ x: new ort.Tensor('float32', new Float32Array(784).fill(NaN), [1, 1, 28, 28]) }));
  await t.rejects(quantizeModel(loadModel(MNIST), { mode: 'static', data: nan, minFidelity: 0.99 }), {
    code: 'DATA',
    message: /calibration sample 0 holds NaN/,
  });
  const inf = [...feeds.slice(0, 2), { x: new ort.Tensor('float32', new Float32Array(784).fill(Infinity), [1, 1, 28, 28]) }];
  await t.rejects(quantizeModel(loadModel(MNIST), { mode: 'static', data: feeds, fidelityData: inf, minFidelity: 0.99 }), {
    code: 'DATA',
    message: /fidelity sample 2/,
  });
});
