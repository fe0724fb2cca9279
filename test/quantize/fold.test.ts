// Exact float folds done before quantizing, on the real PP-OCRv4 detector (PP-LCNetV3 backbone:
// conv -> learnable affine -> hardswish -> learnable affine): the graph loses its elementwise
// glue, the outputs stay the same, and the int8 form runs with no float island around hardswish.
import t from 'tap';
import * as ort from 'onnxruntime-node';
import { loadModel, parseModel, serializeModel } from '../../src/onnx/index.js';
import { prepareFloat } from '../../src/passes/quantize/index.js';
import { foldForQuantization } from '../../src/passes/cleanup/fold.js';
import { openSession } from '../../src/runtime/runner.js';
import { cosine } from '../../src/fidelity/index.js';
import { decodeImage, IMAGENET, nchwSpec, preprocessImage } from '../../src/data/image.js';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';
import { join } from 'node:path';

const count = (ops: string[], op: string): number => ops.filter((o) => o === op).length;

t.test('det: conv affines, input affines, hardswish and ConvTranspose+BN fold exactly', async (t) => {
  const orig = loadModel(OCR_MODELS.det.file);
  const origBytes = serializeModel(orig);
  const base = await prepareFloat(loadModel(OCR_MODELS.det.file));
  base.opsets.set('', 14);
  const baseBytes = serializeModel(base);
  const before = base.graph.nodes.map((n) => n.opType);
  const forms: Record<string, Uint8Array> = {};
  for (const form of ['float', 'int8'] as const) {
    const m = parseModel(baseBytes);
    const r = foldForQuantization(m, form);
    const ops = m.graph.nodes.map((n) => n.opType);
    t.ok(r.convAffine >= 50, `${form}: ${r.convAffine} conv -> Mul/Add affines folded`);
    t.equal(r.hardSwish, 24, `${form}: every decomposed hardswish recognised`);
    t.equal(r.convTransposeBn, 1, `${form}: the head's ConvTranspose absorbs its BatchNormalization`);
    t.equal(count(ops, 'BatchNormalization'), 0);
    t.equal(count(ops, 'Div'), 0, `${form}: no Div left`);
    t.ok(ops.length < before.length * 0.7, `${form}: ${before.length} -> ${ops.length} nodes`);
    if (form === 'float') t.equal(count(ops, 'HardSwish'), 24);
    else t.equal(count(ops, 'HardSwish'), 0, 'int8 form keeps hardswish as Add/Clip/Mul');
    forms[form] = serializeModel(m);
  }
  // a real page: on noise the probability map is ~0 everywhere and a cosine says nothing
  const x = preprocessImage(decodeImage(join(ROOT, 'test/fixtures/ocr/det/page-left.png')), nchwSpec(640, 640, 3, IMAGENET))
    .data as Float32Array;
  const feeds = { x: new ort.Tensor('float32', x, [1, 3, 640, 640]) };
  const run = async (b: Uint8Array): Promise<Float32Array> => {
    const s = await openSession(b);
    const r = (await s.run(feeds))[s.outputNames[0]!]!.data as Float32Array;
    await s.release();
    return r;
  };
  const ref = await run(origBytes);
  for (const [form, b] of Object.entries(forms)) {
    const got = await run(b);
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - got[i]!));
    t.ok(cosine(ref, got) > 0.99999, `${form}: same outputs (cosine ${cosine(ref, got)})`);
    t.ok(maxDiff < 1e-3, `${form}: max abs diff ${maxDiff}`);
  }
});
