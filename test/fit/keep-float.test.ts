import t from 'tap';
import * as ort from 'onnxruntime-node';
import { serializeModel } from '../../src/onnx/index.js';
import { decideKeepFloat } from '../../src/fit/keep-float.js';
import type { QuantizeReport } from '../../src/passes/quantize/index.js';
import { FIXTURES, ModelBuilder } from '../../devkit/builder.js';

// Two models reading the same input: a residual conv net, and one Gemm after global pooling,
// which runs far faster whatever the box. As "float" and "quantized" they fix the decision.
const slow = serializeModel(FIXTURES.residual());
const fast = (() => {
  const b = new ModelBuilder({ seed: 9 });
  b.output(b.gemm(b.flatten(b.gap(b.input('x', [1, 3, 32, 32]))), 10));
  return serializeModel(b.build());
})();
const feeds = { x: new ort.Tensor('float32', new Float32Array(3 * 32 * 32).fill(0.5), [1, 3, 32, 32]) };

const made = {
  mode: 'static',
  platform: { feature: 'avx2' },
  latency: null,
  decision: 'quantized',
  note: 'latency not measured (no data)',
} as unknown as QuantizeReport;

t.test('int8 slower than float here: keep float, and say so with the figures', async (t) => {
  const r = await decideKeepFloat(made, { floatBytes: fast, bytes: slow }, feeds, { runs: 3, threads: 1 });
  t.equal(r.decision, 'kept-float');
  t.ok(r.latency && r.latency.ratio >= 1 && r.latency.runs === 3 && r.latency.threads === 1);
  t.match(r.note, /^int8 is not faster than float on this box \(.* ms vs .* ms, avx2\): keep the float model$/);
  t.equal(made.decision, 'quantized', 'the pass report is not edited in place');
});

t.test('int8 faster: quantized, with the ratio in the note', async (t) => {
  const r = await decideKeepFloat(made, { floatBytes: slow, bytes: fast }, feeds, { runs: 3, threads: 1 });
  t.equal(r.decision, 'quantized');
  t.ok(r.latency && r.latency.ratio < 1);
  t.match(r.note, /^int8 runs at 0\.\d\dx the float latency here$/);
  t.same(Object.keys(r), Object.keys(made), 'report fields keep their order');
});

t.test('nothing to decide: size-only modes, no data, or no runs', async (t) => {
  const sizeOnly = { ...made, decision: 'size-only' } as QuantizeReport;
  t.equal(await decideKeepFloat(sizeOnly, { floatBytes: fast, bytes: slow }, feeds), sizeOnly);
  t.equal(await decideKeepFloat(made, { floatBytes: fast, bytes: slow }, undefined), made);
  t.equal(await decideKeepFloat(made, { floatBytes: fast, bytes: slow }, feeds, { runs: 0 }), made);
});
