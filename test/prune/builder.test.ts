// The fixture builder must give models onnxruntime accepts, with the shapes the builder claims.
import t from 'tap';
import { FIXTURES, fixtureInputShape } from '../../devkit/builder.js';
import { ModelRunner } from '../../src/runtime/runner.js';
import { syntheticSamples } from '../../src/data/model-inputs.js';
import { parseModel, serializeModel } from '../../src/onnx/index.js';

for (const [name, make] of Object.entries(FIXTURES)) {
  t.test(`fixture ${name} runs in onnxruntime`, async (t) => {
    const m = parseModel(serializeModel(make()));
    const [sample] = syntheticSamples(m, new Map([['x', fixtureInputShape(m)]]), 1);
    const inner = m.graph.nodes[1]!.outputs[0]!;
    const r = await ModelRunner.create(m, { extraOutputs: [inner] });
    const out = await r.run(sample!);
    const o = m.graph.outputs[0]!;
    t.same(out.get(o.name)!.shape, o.type!.shape, 'output shape as built');
    t.ok(out.has(inner), 'intermediate value exposed');
    t.ok(out.get(o.name)!.data.every(Number.isFinite), 'finite outputs');
    const distinct = new Set(out.get(o.name)!.data).size;
    t.ok(distinct > 1, 'output is not constant');
    await r.release();
  });
}
