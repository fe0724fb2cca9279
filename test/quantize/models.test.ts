// Quantization of real models in onnxruntime: the MNIST CNN (static, accuracy on held-out digits,
// sensitivity fallback), the zoo transformer encoder (dynamic), fp16 storage, and the opset
// upgrade of the opset-9 PP-OCR recogniser.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { quantizeModel } from '../../src/fit/quantize/plan.js';
import { readNpy } from '../../src/data/npy.js';
import { openSession } from '../../src/runtime/runner.js';
import { cosine } from '../../src/fidelity/index.js';
import { applyOpsetPlan, planOpset } from '../../src/passes/quantize/opset.js';
import { normalize } from '../../src/passes/normalize.js';
import { annotateShapes } from '../../src/ir/shapes.js';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import { prune } from '../../src/passes/prune/index.js';
import { ROOT, OCR_MODELS } from '../../devkit/paths.js';

const MNIST = join(ROOT, 'models/mnist-cnn.onnx');
const TRANSFORMER = join(ROOT, 'test/fixtures/zoo/transformer-op13.onnx');
const dir = mkdtempSync(join(tmpdir(), 'edgefit-q-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
writeMnistLabelled(join(dir, 'test'), { split: 'test' });
writeMnistLabelled(join(dir, 'cal'), { split: 'train', limit: 64 });
const test = readNpy(join(dir, 'test', 'x.npy'));
const labels = readFileSync(join(dir, 'test', 'labels.txt'), 'utf8')
  .trim()
  .split('\n')
  .map(Number);
const cal = readNpy(join(dir, 'cal', 'x.npy'));
const calFeeds = Array.from({ length: cal.shape[0]! }, (_, i) => ({
  x: new ort.Tensor('float32', cal.data.slice(i * 784, (i + 1) * 784), [1, 1, 28, 28]),
}));

async function accuracy(model: Uint8Array): Promise<number> {
  const s = await openSession(model);
  const n = test.shape[0]!;
  const out = (await s.run({ x: new ort.Tensor('float32', test.data, [n, 1, 28, 28]) }))[s.outputNames[0]!]!.data as Float32Array;
  await s.release();
  let ok = 0;
  for (let i = 0; i < n; i++) {
    let b = 0;
    for (let k = 1; k < 10; k++) if (out[i * 10 + k]! > out[i * 10 + b]!) b = k;
    if (b === labels[i]) ok++;
  }
  return (100 * ok) / n;
}

t.test('MNIST CNN static int8: int8 kernels, 3.5x smaller, accuracy within 0.3 points', async (t) => {
  const floatBytes = serializeModel(loadModel(MNIST));
  for (const method of ['minmax', 'percentile', 'entropy'] as const) {
    const { bytes, report } = await quantizeModel(loadModel(MNIST), { mode: 'static', method, data: calFeeds });
    t.ok(report.runtimeOps.QLinearConv === 3, `${method}: all 3 convs run as QLinearConv (${JSON.stringify(report.runtimeOps)})`);
    t.ok((report.runtimeOps.QGemm ?? 0) + (report.runtimeOps.MatMulIntegerToFloat ?? 0) >= 1, `${method}: the classifier runs int8`);
    t.notOk('Conv' in report.runtimeOps, `${method}: no float Conv left`);
    t.ok(report.sizes.ratio < 0.32, `${method}: size ratio ${report.sizes.ratio.toFixed(3)}`);
    t.ok(report.fidelity!.mean > 0.99, `${method}: cosine ${report.fidelity!.mean}`);
    const drop = (await accuracy(floatBytes)) - (await accuracy(bytes));
    t.ok(drop <= 0.3, `${method}: accuracy drop ${drop.toFixed(2)} points`);
  }
});

t.test('prune then quantize: the pruned graph quantizes, runs int8 and keeps its accuracy', async (t) => {
  const m = loadModel(MNIST);
  const pr = await prune(m, {
    structured: 0.25,
    importance: 'l1',
    recover: 'bias',
    steps: 1,
    round: 1,
    shapes: new Map([['x', [1, 1, 28, 28]]]),
    samples: calFeeds
      .slice(0, 16)
      .map((f) => ({ x: { dtype: 'float32' as const, shape: [1, 1, 28, 28], data: f.x.data as Float32Array<ArrayBuffer> } })),
    synthetic: false,
    skipFidelity: true,
  });
  t.ok(pr.params.after < pr.params.before, `pruned ${pr.params.before} -> ${pr.params.after} params`);
  const prunedBytes = serializeModel(m);
  const { bytes, report } = await quantizeModel(m, { mode: 'static', data: calFeeds });
  t.equal(report.runtimeOps.QLinearConv, 3, JSON.stringify(report.runtimeOps));
  t.ok(bytes.byteLength < prunedBytes.byteLength * 0.32, `${prunedBytes.byteLength} -> ${bytes.byteLength} bytes`);
  const drop = (await accuracy(prunedBytes)) - (await accuracy(bytes));
  t.ok(drop <= 0.5, `int8 of the pruned model loses ${drop.toFixed(2)} points`);
});

t.test('fidelity floor: the most sensitive layers go back to float until it holds', async (t) => {
  const all = await quantizeModel(loadModel(MNIST), { mode: 'static', data: calFeeds.slice(0, 16) });
  // a floor between the all-int8 fidelity and the float model's 1.0
  const floor = 1 - (1 - all.report.fidelity!.mean) / 4;
  const { report } = await quantizeModel(loadModel(MNIST), { mode: 'static', data: calFeeds.slice(0, 16), minFidelity: floor });
  t.ok(report.fidelity!.mean >= floor, `fidelity ${report.fidelity!.mean} >= floor ${floor}`);
  t.ok(report.layers.float >= 1 && report.layers.quantized >= 1, `${report.layers.float} float, ${report.layers.quantized} int8`);
  t.ok(
    report.layers.details.filter((l) => !l.int8).every((l) => /sensitive/.test(l.why ?? '')),
    'float layers say why',
  );
});

t.test('transformer encoder dynamic int8: DynamicQuantizeMatMul, cosine >= 0.98', async (t) => {
  const data = Array.from({ length: 6 }, (_, k) => ({
    x: new ort.Tensor(
      'float32',
      Float32Array.from({ length: 512 }, (_, i) => Math.sin(i * 0.0137 * (1 + 0.1 * k) + k) * 0.8 + Math.cos(i * 0.00071 * (k + 1)) * 0.5),
      [1, 16, 32],
    ),
  }));
  const { report } = await quantizeModel(loadModel(TRANSFORMER), { mode: 'dynamic', data });
  t.ok((report.runtimeOps.DynamicQuantizeMatMul ?? 0) >= 8, JSON.stringify(report.runtimeOps));
  t.ok(report.fidelity!.min >= 0.98, `cosine min ${report.fidelity!.min}`);
  t.ok(report.sizes.ratio < 0.5, `size ratio ${report.sizes.ratio}`);
  t.ok(
    report.layers.details.some((l) => !l.int8 && /not a constant/.test(l.why ?? '')),
    'attention score MatMuls (two activations) stay float and say why',
  );
});

t.test('fp16 storage halves the file, same outputs to 1e-3', async (t) => {
  const { bytes, report } = await quantizeModel(loadModel(MNIST), { mode: 'fp16', data: calFeeds.slice(0, 8) });
  t.ok(report.sizes.ratio < 0.52 && report.sizes.ratio > 0.45, `size ratio ${report.sizes.ratio}`);
  t.ok(report.fidelity!.min > 0.99999, `cosine ${report.fidelity!.min}`);
  t.notOk('Cast' in report.runtimeOps, 'onnxruntime folds the casts at load');
  t.ok((await accuracy(bytes)) >= 98);
});

t.test('opset 9 recogniser raised to 13 (read as 14) without changing its outputs', async (t) => {
  const m = normalize(loadModel(OCR_MODELS.rec.file));
  const before = serializeModel(m);
  annotateShapes(m, { shapes: new Map([['x', [1, 3, 48, 320]]]) }); // ranks tell whether Softmax is over the last axis
  const plan = planOpset(m);
  t.equal(plan.to, 14, 'raised to 13, then read as 14 (no meaning change at default attributes)');
  t.same(plan.converted, ['Clip', 'Slice', 'Squeeze']);
  applyOpsetPlan(m, plan);
  t.equal(m.opsets.get(''), 14);
  t.notOk(
    m.graph.nodes.some((n) => n.opType === 'Clip' && n.attrs.has('min')),
    'Clip min/max are inputs now',
  );
  const x = new Float32Array(3 * 48 * 320).map((_, i) => Math.sin(i * 0.001) * 0.9);
  const feeds = { x: new ort.Tensor('float32', x, [1, 3, 48, 320]) };
  const a = await openSession(before);
  const b = await openSession(serializeModel(m));
  const ra = (await a.run(feeds))[a.outputNames[0]!]!.data as Float32Array;
  const rb = (await b.run(feeds))[b.outputNames[0]!]!.data as Float32Array;
  t.ok(cosine(ra, rb) > 0.999999, 'same outputs');
  let maxDiff = 0;
  for (let i = 0; i < ra.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ra[i]! - rb[i]!));
  t.ok(maxDiff < 1e-4, `max abs diff ${maxDiff}`);
});
