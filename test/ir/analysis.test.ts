import t from 'tap';
import ort from 'onnxruntime-node';
import { loadModel, parseModel, serializeModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { inferShapes } from '../../src/ir/shapes.js';
import { analyzeModel } from '../../src/analyze/index.js';
import { validateGraph } from '../../src/ir/validate.js';
import { deadCodeElimination } from '../../src/passes/cleanup/dce.js';
import { Node } from '../../src/ir/node.js';
import { Graph } from '../../src/ir/graph.js';
import type { Model } from '../../src/ir/model.js';
import { OCR_MODELS } from '../../devkit/paths.js';

// Independent counts of float elements (initializers + Constant tensors), from the issue and
// scripts/count-params.py (python onnx package).
const EXPECTED_PARAMS = { det: 1_171_841, rec: 2_690_296, cls: 133_664 } as const;

for (const [name, m] of Object.entries(OCR_MODELS)) {
  t.test(`PP-OCR ${name}: static shapes agree with onnxruntime on every intermediate value`, async (t) => {
    const model = normalize(loadModel(m.file));
    const shapes = new Map([['x', [...m.shape]]]);
    const recorded = JSON.stringify([...model.graph.valueTypes]);
    const r = inferShapes(model, { shapes });
    t.equal(JSON.stringify([...model.graph.valueTypes]), recorded, 'inference returns the types and leaves the graph as it was');
    t.same(r.unresolved, [], 'every value resolved statically');
    // Ask onnxruntime for every node output and compare dims.
    const probe = parseModel(serializeModel(model));
    const names = probe.graph.nodes.flatMap((n) => n.outputs).filter((o) => o && !probe.graph.isGraphOutput(o));
    for (const v of names) probe.graph.outputs.push({ name: v, type: null });
    const s = await ort.InferenceSession.create(serializeModel(probe), { graphOptimizationLevel: 'disabled' as const });
    const n = (m.shape as readonly number[]).reduce((a, b) => a * b, 1);
    const out = await s.run({ x: new ort.Tensor('float32', new Float32Array(n).fill(0.1), [...m.shape]) });
    let mismatched = 0;
    for (const v of Object.keys(out)) {
      const ours = r.types.get(v)?.shape;
      if (JSON.stringify(ours) !== JSON.stringify(out[v]!.dims)) mismatched++;
    }
    t.equal(mismatched, 0, `all ${Object.keys(out).length} shapes match`);
    await s.release();
  });

  t.test(`PP-OCR ${name}: params match the independent count; MACs and memory known`, async (t) => {
    const model = loadModel(m.file);
    const a = await analyzeModel(model, new Map([['x', [...m.shape]]]));
    t.equal(a.params, EXPECTED_PARAMS[name as keyof typeof EXPECTED_PARAMS]);
    t.ok(a.macs !== null && a.macs > 1e6, `MACs ${a.macs}`);
    t.ok(a.peakActivationBytes !== null && a.peakActivationBytes > 0);
    t.same(a.issues, []);
  });
}

t.test('dynamic dims without --shape: figures say unknown and name the --shape', async (t) => {
  const a = await analyzeModel(normalize(loadModel(OCR_MODELS.det.file)));
  t.equal(a.macs, null);
  t.match(a.unresolved[0], /give its shape \(x=Nx3xNxN/);
  t.equal(a.params, EXPECTED_PARAMS.det, 'params need no shapes');
});

t.test('validator names the node for dangling inputs, duplicate outputs and cycles', async (t) => {
  const model = normalize(loadModel(OCR_MODELS.cls.file));
  t.same(validateGraph(model), []);
  const conv = model.graph.nodes.find((n) => n.opType === 'Conv')!;
  conv.inputs[0] = 'nowhere';
  model.graph.touch();
  const issues = validateGraph(model);
  t.ok(issues.some((i) => i.kind === 'dangling-input' && i.value === 'nowhere' && /Conv/.test(i.node ?? '')));
  const m2 = normalize(loadModel(OCR_MODELS.cls.file));
  const [a, b] = m2.graph.nodes.filter((n) => n.opType === 'Relu');
  b!.outputs[0] = a!.outputs[0]!;
  m2.graph.touch();
  t.ok(validateGraph(m2).some((i) => i.kind === 'duplicate-name'));
  const m3 = normalize(loadModel(OCR_MODELS.cls.file));
  const relus = m3.graph.nodes.filter((n) => n.opType === 'Relu');
  relus[0]!.inputs[0] = relus[1]!.outputs[0]!; // feed a later value back to an earlier node
  m3.graph.touch();
  t.ok(validateGraph(m3).some((i) => i.kind === 'cycle'));
});

t.test('dead-code elimination removes an unused branch and keeps the outputs', async (t) => {
  const model = normalize(loadModel(OCR_MODELS.cls.file));
  const before = model.graph.nodes.length;
  const relu = model.graph.nodes.find((n) => n.opType === 'Relu')!;
  model.graph.addNode(new Node({ opType: 'Sigmoid', inputs: [relu.outputs[0]!], outputs: ['dead_end'] }));
  const r = await deadCodeElimination.run(model);
  t.ok(r.changed);
  t.equal(model.graph.nodes.length, before);
  const again = await deadCodeElimination.run(model);
  t.notOk(again.changed, 'idempotent');
});

t.test('shapes the rules cannot infer come from onnxruntime and annotate the model', async (t) => {
  const g = new Graph();
  g.inputs = [{ name: 'x', type: { dtype: 'float32', shape: [2, 3] } }];
  g.addNode({ opType: 'Einsum', inputs: ['x'], outputs: ['xt'], attrs: { equation: { type: 'string', value: 'ij->ji' } } }); // no static rule
  g.addNode({ opType: 'Relu', inputs: ['xt'], outputs: ['y'] });
  g.outputs = [{ name: 'y', type: { dtype: 'float32', shape: null } }];
  const model: Model = {
    irVersion: 8,
    opsets: new Map([['', 13]]),
    producerName: '',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    docString: '',
    metadata: new Map(),
    graph: g,
    extra: undefined,
  };
  t.same(inferShapes(model).types.get('xt') ?? null, null, 'the static rules leave the Einsum output unknown');
  const a = await analyzeModel(model);
  t.equal(a.shapesFromRuntime, 2, 'both values the rules left unknown');
  t.same(model.graph.type('xt')?.shape, [3, 2], 'the runtime shape is recorded');
  t.same(model.graph.type('y')?.shape, [3, 2], 'for the Relu after it too');
});
