// The quantize pass builds the plan it is given and judges nothing; the decision layer
// (src/fit/quantize/plan.ts) chooses the plan and fills in the judgement (issue 15).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../../src/onnx/index.js';
import { readNpy } from '../../src/data/npy.js';
import { floatSet, nodeUnit, quantizeWithPlan, type QuantizeOptions } from '../../src/passes/quantize/index.js';
import type { Model } from '../../src/ir/model.js';
import { quantizeModel } from '../../src/fit/quantize/plan.js';
import { detectPlatform } from '../../src/passes/quantize/platform.js';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import { ROOT } from '../../devkit/paths.js';

const MNIST = join(ROOT, 'models/mnist-cnn.onnx');
const dir = mkdtempSync(join(tmpdir(), 'edgefit-qplan-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
writeMnistLabelled(join(dir, 'cal'), { split: 'train', limit: 8 });
const cal = readNpy(join(dir, 'cal', 'x.npy'));
const data = Array.from({ length: cal.shape[0]! }, (_, i) => ({
  x: new ort.Tensor('float32', cal.data.slice(i * 784, (i + 1) * 784), [1, 1, 28, 28]),
}));
const opts: QuantizeOptions = { mode: 'static', data, weightRounding: 'nearest' };

/** Largest |q| over the int8 weight initializers. */
function int8WeightPeak(m: Model): number {
  let peak = 0;
  for (const w of m.graph.initializers()) {
    if (w.dtype !== 'int8' || w.dims.length < 2) continue;
    const b = w.bytes();
    for (const v of new Int8Array(b.buffer, b.byteOffset, b.byteLength)) peak = Math.max(peak, Math.abs(v));
  }
  return peak;
}

t.test('the pass builds the given plan and measures nothing', async (t) => {
  const all = await quantizeWithPlan(loadModel(MNIST), opts, { reduceRange: false });
  t.equal(all.report.fidelity, null, 'no fidelity: judging is the decision layer');
  t.equal(all.report.fallback, null);
  t.equal(all.report.minFidelity, null);
  const weighted = all.report.layers.details.filter((l) => l.kind === 'weighted' && l.int8);
  t.ok(weighted.length >= 2, `${weighted.length} weighted layers int8`);
  t.equal(int8WeightPeak(all.model), 127, 'full 8-bit weights reach 127');

  const keep = weighted[0]!.node;
  const one = await quantizeWithPlan(loadModel(MNIST), opts, { float: floatSet([nodeUnit(keep)]), reduceRange: true });
  t.equal(one.report.layers.details.find((l) => l.node === keep)?.int8, false, `${keep} stays float as planned`);
  const int8Weighted = (r: typeof one): string[] =>
    r.report.layers.details.filter((l) => l.kind === 'weighted' && l.int8).map((l) => l.node);
  t.same(
    int8Weighted(one),
    int8Weighted(all).filter((n) => n !== keep),
    'the other weighted layers stay int8',
  );
  t.equal(one.report.platform.reduceRange, true);
  t.ok(int8WeightPeak(one.model) <= 63, '7-bit weights as planned');
});

t.test('the decision layer judges the plan it keeps, and the pass rebuilds it byte for byte', async (t) => {
  const detected = detectPlatform();
  // a box that asks for 7-bit weights makes the decision measure both widths
  for (const platform of [
    { ...detected, reduceRange: false },
    { ...detected, reduceRange: true },
  ]) {
    const o = { ...opts, platform };
    const d = await quantizeModel(loadModel(MNIST), o);
    t.ok(d.report.fidelity && d.report.fidelity.mean > 0.99, `fidelity measured: ${d.report.fidelity?.mean}`);
    t.equal(d.report.fidelity!.samples, data.length);
    if (platform.reduceRange) t.match(d.report.platform.why, /reduce-range/, `the bit-width choice is explained: ${d.report.platform.why}`);
    else t.equal(d.report.platform.why, platform.why, 'no bit-width choice to make');
    const p = await quantizeWithPlan(loadModel(MNIST), o, { reduceRange: d.report.platform.reduceRange });
    t.same(p.bytes, d.bytes, 'same model from the same plan');
  }
});
