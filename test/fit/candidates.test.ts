// The fit's folded candidate is the original with the exact folds (cleanup/fold.ts): on PP-OCRv4
// det it loses its elementwise glue and keeps its outputs, so the fit's least-compressed candidate
// after the file as shipped is also its fastest exact one.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseModel } from '../../src/onnx/index.js';
import { buildCandidate, contentSha, trainingSummary } from '../../src/fit/candidates.js';
import { renderReport } from '../../src/fit/report.js';
import type { FrontierEntry } from '../../src/fit/types.js';
import type { TrainReport } from '../../src/passes/train/types.js';
import { serializeModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { Tensor } from '../../src/ir/tensor.js';
import { openSession } from '../../src/runtime/runner.js';
import { OCR_MODELS } from '../../devkit/paths.js';
import * as ort from 'onnxruntime-node';

t.test('det: the folded candidate has the same outputs, fewer ops and no weights the folds replaced', async (t) => {
  const original = new Uint8Array(readFileSync(OCR_MODELS.det.file));
  const built = await buildCandidate(
    { structured: 0, unstructured: 0, quant: 'none', threads: 2, folded: true },
    { original, shapes: new Map([['x', [1, 3, 640, 640]]]), samples: [], synthetic: true, threads: 2 },
  );
  const ops = (b: Uint8Array): string[] => parseModel(b).graph.nodes.map((n) => n.opType);
  const before = ops(original).filter((o) => o !== 'Constant');
  const after = ops(built.bytes);
  t.ok(after.length < before.length * 0.7, `${before.length} -> ${after.length} nodes`);
  t.equal(after.filter((o) => o === 'Div').length, 0, 'no decomposed hardswish left');
  // the folded weights replace the originals: not both saved (10.4 MB before the fold dropped them)
  t.ok(built.bytes.byteLength <= original.byteLength, `${original.byteLength} -> ${built.bytes.byteLength} bytes`);
  // a smooth non-constant input: the map must agree value for value
  const x = Float32Array.from({ length: 3 * 640 * 640 }, (_, i) => Math.sin(i * 0.0137) * 0.8 + Math.cos(i * 0.00071) * 0.5);
  const run = async (b: Uint8Array): Promise<Float32Array> => {
    const s = await openSession(b);
    const r = (await s.run({ x: new ort.Tensor('float32', x, [1, 3, 640, 640]) }))[s.outputNames[0]!]!.data as Float32Array;
    await s.release();
    return r;
  };
  const ref = await run(original);
  const got = await run(built.bytes);
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - got[i]!));
  t.ok(maxDiff < 1e-4, `max abs diff ${maxDiff}`);
});

t.test('the folded flag names only the unpruned float candidate', async (t) => {
  const original = new Uint8Array(readFileSync(OCR_MODELS.det.file));
  const ctx = { original, shapes: new Map([['x', [1, 3, 640, 640]]]), samples: [], synthetic: true, threads: 2 };
  await t.rejects(buildCandidate({ structured: 0.2, unstructured: 0, quant: 'none', threads: 2, folded: true }, ctx), {
    code: 'INTERNAL',
  });
  await t.rejects(buildCandidate({ structured: 0, unstructured: 0, quant: 'int8-static', threads: 2, folded: true }, ctx), {
    code: 'INTERNAL',
  });
});

t.test('contentSha: equal for builds that differ only in their reports, not for other weights', async (t) => {
  const original = new Uint8Array(readFileSync(OCR_MODELS.det.file));
  // (det ships its weights as Constant nodes: normalized, they are initializers)
  const m = normalize(parseModel(original));
  const reported = (target: string) => serializeModel({ ...m, metadata: new Map([['edgefit.prune', `{"targetMs":${target}}`]]) });
  const [a, b] = [reported('22.044'), reported('22.886')];
  t.not(Buffer.compare(a, b), 0, 'the files differ');
  t.equal(contentSha(a), contentSha(b), 'the model does not');
  // one weight changed: another model
  const w = [...m.graph.initializers()].find((x) => x.dtype === 'float32' && x.dims.length === 4)!;
  const data = w.toFloat32().slice();
  data[0] = data[0]! + 1;
  m.graph.setInitializer(Tensor.fromFloat32(w.name, w.dims, data));
  t.not(contentSha(serializeModel(m)), contentSha(a));
});

t.test("a training's record keeps the stem it left frozen, and the report says so", async (t) => {
  const report = {
    steps: 2169,
    seconds: 720,
    curve: [
      { step: 0, loss: NaN, heldOut: 0.0197 },
      { step: 1000, loss: 0.014 },
      { step: 2169, loss: 0.012, heldOut: 0.0115 },
    ],
    heldOutBefore: 0.0197,
    heldOutAfter: 0.0115,
    improved: true,
    frozen: { weights: 24, layers: Array.from({ length: 12 }, (_, i) => `Conv.${i}`), stride: 16 },
  } as unknown as TrainReport;
  const s = trainingSummary('distill', 12, report);
  t.same(s.frozen, { layers: 12, stride: 16 }, 'the count of layers and the stride, not their names');
  t.equal(
    trainingSummary('distill', 12, { ...report, frozen: undefined } as TrainReport).frozen,
    undefined,
    'none when every layer trained',
  );
  const entry: FrontierEntry = {
    id: 'l0.125-d12',
    config: { structured: 0.125, unstructured: 0, quant: 'none', threads: 2, train: 12 },
    modelPath: 'x.onnx',
    sha256: '0'.repeat(64),
    sizeBytes: 1,
    latencyP50Ms: 37,
    latencyP95Ms: 39,
    modelRssMb: 80,
    fidelity: 0.99,
    meets: { latency: true, ram: true, fidelity: true },
    training: s,
  };
  const html = renderReport({
    model: 'm.onnx',
    budgets: { latencyMs: 40 },
    candidates: [entry],
    frontier: [entry],
    chosenId: entry.id,
    feasible: true,
    hardware: {},
    profile: 'generic',
    notes: [],
    elapsedMs: 1,
  });
  t.match(html, /2169 steps in 12\.0 of 12 min; held-out loss 0\.0197 &rarr; 0\.0115; the stem \(12 layers, before stride 16\) frozen/);
  // the loss plot's held-out line starts from the loss before training, at step 0 (the curve kept only step 2169's)
  t.equal((html.match(/<circle [^>]*fill="#d9822b"/g) ?? []).length, 2, 'two held-out dots: before training and step 2169');
  t.match(html, /<text [^>]*>step 0<\/text>/);
});
