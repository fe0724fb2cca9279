// Shape folding (issue 17): run-time shape chains become initializers once input shapes are fixed.
// Outputs must stay identical in onnxruntime, at the given shape and, where the model declares a
// dynamic batch, at another batch too; dynamic dims not given stay computed.
import t from 'tap';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { runPass } from '../../src/passes/pass.js';
import { foldShapesPass } from '../../src/passes/cleanup/fold-shapes.js';
import { cloneModel, modelOf, type Model } from '../../src/ir/model.js';
import { Graph } from '../../src/ir/graph.js';
import { Tensor } from '../../src/ir/tensor.js';
import { inferShapes } from '../../src/ir/shapes.js';
import { knownValues } from '../../src/passes/cleanup/shape-eval.js';
import { ROOT, OCR_MODELS } from '../../devkit/paths.js';

const zoo = (f: string) => join(ROOT, 'test/fixtures/zoo', f);

// Graph optimizations off: with constant shapes onnxruntime may fuse differently (PP-OCRv4 rec
// differs by 7e-7 at level 'all'), which is its choice of kernels, not the fold's doing.
async function run(m: Model, shape: number[]): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(serializeModel(m), { intraOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
  const n = shape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.0137) * 0.8 + Math.cos(i * 0.00071) * 0.5);
  const out = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, shape) });
  return out[s.outputNames[0]!]!.data as Float32Array;
}

/** Index of the first element that differs (bit for bit), or -1: t.same is too slow on big arrays. */
function firstDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const countOps = (m: Model, op: string) => m.graph.nodes.filter((n) => n.opType === op).length;

for (const [file, shape] of [
  ['shufflenetv2-op13.onnx', [1, 3, 64, 64]],
  ['shufflenetv2-op17.onnx', [1, 3, 64, 64]],
  ['transformer-op13.onnx', [1, 16, 32]],
  ['transformer-op17.onnx', [1, 16, 32]],
] as const) {
  t.test(`${file}: shape chains fold, outputs identical`, async (t) => {
    const model = normalize(loadModel(zoo(file)));
    const input = model.graph.runtimeInputs()[0]!;
    t.ok(countOps(model, 'Shape') > 0, 'the export computes shapes at run time');
    const folded = cloneModel(model);
    const r = runPass(foldShapesPass, folded, { shapes: new Map([[input.name, [...shape]]]) });
    t.ok(r.details.folded > 0, `${r.details.folded} values folded`);
    t.equal(countOps(folded, 'Shape'), 0, 'no Shape op left');
    for (const n of folded.graph.nodes.filter((n) => n.opType === 'Reshape'))
      t.ok(folded.graph.constant(n.inputs[1]!), `${n.label()} has a constant shape`);
    t.equal(firstDiff(await run(folded, [...shape]), await run(model, [...shape])), -1, 'identical outputs at the given shape');
    const dynBatch = input.type?.shape?.[0] !== shape[0];
    if (dynBatch) {
      t.same(r.details.leftDynamic, [], 'every batch-dependent shape is expressible with 0 / -1');
      const two = [2, ...shape.slice(1)];
      t.equal(
        firstDiff(await run(folded, two), await run(model, two)),
        -1,
        'the declared dynamic batch still runs, identically, at batch 2',
      );
    }
  });
}

t.test('dynamic dims not given stay computed', async (t) => {
  const model = normalize(loadModel(zoo('shufflenetv2-op13.onnx')));
  const before = countOps(model, 'Shape');
  const r = runPass(foldShapesPass, model, { shapes: new Map() });
  t.equal(countOps(model, 'Shape'), before, 'Shape ops of the unknown input stay');
  t.equal(r.details.folded, 0);
});

t.test('PP-OCRv4 rec: folded outputs identical', async (t) => {
  const model = normalize(loadModel(OCR_MODELS.rec.file));
  const shape = [...OCR_MODELS.rec.shape];
  const folded = cloneModel(model);
  const r = runPass(foldShapesPass, folded, { shapes: new Map([[model.graph.runtimeInputs()[0]!.name, shape]]) });
  t.ok(r.details.folded > 0, `${r.details.folded} values folded, ${r.details.nodesRemoved} nodes removed`);
  t.same(r.details.leftDynamic, [], 'the batch and width dependent shapes are written with 0 / -1');
  t.equal(folded.graph.nodes.filter((n) => n.opType === 'Shape').length, 0, 'no Shape op left');
  t.equal(firstDiff(await run(folded, shape), await run(model, shape)), -1, 'identical outputs at 1x3x48x320');
  const other = [2, 3, 48, 640];
  t.equal(firstDiff(await run(folded, other), await run(model, other)), -1, 'identical outputs at 2x3x48x640 (the dims stay dynamic)');
});

t.test('the shape evaluator agrees with onnxruntime op by op', async (t) => {
  // Shape -> Gather -> integer Div (truncating a negative quotient) / Cast to float, halve, Cast
  // back / Range / ConstantOfShape / Where / Slice / Concat: every value is a graph output, so
  // onnxruntime computes each one for comparison
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: ['N', 6, 4, 5] } });
  const i64 = (name: string, dims: number[], v: number[]) => g.setInitializer(Tensor.fromInt64(name, dims, v));
  i64('one', [], [1]);
  i64('minus4', [], [-4]);
  i64('zero', [], [0]);
  i64('idx', [2], [1, 3]);
  i64('s0', [1], [-3]);
  i64('s1', [1], [100]);
  g.setInitializer(Tensor.fromFloat32('half', [], [0.5]));
  const add = (opType: string, inputs: string[], out: string, attrs = {}) =>
    g.addNode({ name: out, opType, inputs, outputs: [out], attrs });
  add('Shape', ['x'], 'shape');
  add('Gather', ['shape', 'one'], 'c');
  add('Div', ['c', 'minus4'], 'neg');
  add('Cast', ['c'], 'cf', { to: { type: 'int', value: 1 } });
  add('Mul', ['cf', 'half'], 'halfc');
  add('Cast', ['halfc'], 'hc', { to: { type: 'int', value: 7 } });
  add('Range', ['zero', 'hc', 'one'], 'range');
  add('Gather', ['shape', 'idx'], 'hw');
  add('ConstantOfShape', ['hw'], 'zeros', { value: { type: 'tensor', value: Tensor.fromInt64('v', [1], [7]) } });
  add('Equal', ['hw', 'hc'], 'eq');
  add('Where', ['eq', 'hw', 'idx'], 'where');
  add('Slice', ['shape', 's0', 's1'], 'tail');
  add('Unsqueeze', ['neg', 'zero1'], 'negv');
  i64('zero1', [1], [0]);
  add('Concat', ['negv', 'tail', 'range'], 'cat', { axis: { type: 'int', value: 0 } });
  const outs = ['c', 'neg', 'hc', 'range', 'zeros', 'where', 'tail', 'cat'];
  for (const o of outs) g.outputs.push({ name: o, type: null });
  const model = modelOf(g, { producer: 'test' });
  const shape = [2, 6, 4, 5];
  const vals = knownValues(g, inferShapes(model, { shapes: new Map([['x', shape]]) }).types, 13);
  const s = await ort.InferenceSession.create(serializeModel(model), { graphOptimizationLevel: 'disabled' });
  const res = await s.run({ x: new ort.Tensor('float32', new Float32Array(shape.reduce((a, b) => a * b, 1)), shape) });
  for (const o of outs) {
    const want = Array.from(res[o]!.data as ArrayLike<number | bigint>, Number);
    t.same(vals.get(o)?.data, want, `${o} = [${want}]`);
    t.same(vals.get(o)?.dims, [...res[o]!.dims], `${o} dims`);
  }
  t.same(vals.get('neg')?.data, [-1], 'integer Div truncates toward zero (6 / -4 = -1)');
});
