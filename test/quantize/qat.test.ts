// Quantization-aware training, the graph half (issue 18): the fake-quant float model built from
// the static QDQ model computes what the static model computes (so training it trains the int8
// model), and export turns it back into the same QDQ form, running on int8 kernels.
import t from 'tap';
import { loadModel, parseModel, serializeModel } from '../../src/onnx/index.js';
import { quantizeWithPlan } from '../../src/passes/quantize/index.js';
import { fakeQuantize } from '../../src/passes/quantize/qat.js';
import { loadInputSet } from '../../src/data/inputs.js';
import { modelInputs, openSession, toFeeds, type Feeds } from '../../src/runtime/runner.js';
import { cosine } from '../../src/fidelity/metrics.js';
import { OCR_FIT_SETS, OCR_MODELS } from '../../devkit/paths.js';

const cls = loadModel(OCR_MODELS.cls.file);
const calib = loadInputSet(OCR_FIT_SETS.cls.calibrate, modelInputs(cls), { limit: 8 }).samples.map(toFeeds);
const judge = loadInputSet(OCR_FIT_SETS.cls.judge, modelInputs(cls), { limit: 8 }).samples.map(toFeeds);

async function outputs(bytes: Uint8Array, feeds: Feeds[], level: 'disabled' | 'all'): Promise<Float32Array[]> {
  const s = await openSession(bytes, { level, threads: 2 });
  const out: Float32Array[] = [];
  for (const f of feeds) out.push(Float32Array.from((await s.run(f))[s.outputNames[0]!]!.data as Float32Array));
  await s.release();
  return out;
}
const maxAbs = (a: Float32Array[], b: Float32Array[]): number =>
  a.reduce((m, x, i) => x.reduce((mm, v, j) => Math.max(mm, Math.abs(v - b[i]![j]!)), m), 0);

t.test('cls: the fake-quant float model computes the static QDQ model on held-out images', async (t) => {
  const st = await quantizeWithPlan(cls, { mode: 'static', data: calib });
  const fq = fakeQuantize(st.model, { reduceRange: st.report.platform.reduceRange });
  const ops = new Set(fq.model.graph.nodes.map((n) => n.opType));
  t.notOk(ops.has('QuantizeLinear'), 'no QuantizeLinear left');
  // the constants of Add/Mul (HardSwish's 3 and 1/6) stay int8 behind their DequantizeLinear: fixed, not trained
  t.ok(
    fq.model.graph.nodes.filter((n) => n.opType === 'DequantizeLinear').every((n) => fq.model.graph.constant(n.inputs[0]!)),
    'every DequantizeLinear left reads a constant',
  );
  t.equal(
    fq.activations.length,
    st.model.graph.nodes.filter((n) => n.opType === 'QuantizeLinear').length,
    'one fake quantizer per activation quantized',
  );
  t.equal(fq.weights.length, st.report.layers.details.filter((l) => l.int8 && l.kind === 'weighted').length, 'one per int8 weight');
  t.ok(fq.biases.length > 0, `${fq.biases.length} biases float while training`);
  const bytes = serializeModel(fq.model);
  const fake = await outputs(bytes, judge, 'disabled');
  // the static model run op by op (QuantizeLinear, DequantizeLinear, float Conv): the same arithmetic
  const exact = await outputs(st.bytes, judge, 'disabled');
  const d = maxAbs(fake, exact);
  t.ok(d < 1e-4, `fake-quant vs static QDQ unfused: max |diff| ${d.toExponential(2)}`);
  // and on onnxruntime's int8 kernels (requantization rounds in its own order)
  const int8 = await outputs(st.bytes, judge, 'all');
  const cos = Math.min(...fake.map((f, i) => cosine(f, int8[i]!)));
  const dk = maxAbs(fake, int8);
  t.ok(cos > 0.999, `fake-quant vs static int8 kernels: min cosine ${cos.toFixed(6)}, max |diff| ${dk.toExponential(2)}`);
  // and it is not the float model: quantization is really simulated
  const float = await outputs(st.floatBytes, judge, 'disabled');
  t.ok(maxAbs(fake, float) > 10 * d, `differs from float (${maxAbs(fake, float).toExponential(2)})`);
  t.ok(
    parseModel(bytes).graph.nodes.some((n) => n.opType === 'Round'),
    'Round in the written model',
  );
});
