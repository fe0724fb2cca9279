// The micro-benchmark runs real onnxruntime sessions on models built with edgefit's IR and codec.
// Only sanity is asserted (positive, finite, consistent): timings on a shared CI box are noise.
import t from 'tap';
import * as ort from 'onnxruntime-node';
import { convFp32, convInt8, gemmFp32, gemmInt8 } from '../../src/profile/bench-models.js';
import { memoryBandwidthGBps, runBench } from '../../src/profile/bench.js';
import { parseModel } from '../../src/onnx/index.js';

t.test('benchmark models are valid ONNX that onnxruntime accepts and computes correctly', async (t) => {
  // MatMulInteger: check one output element against a JS dot product
  const m = 4,
    k = 32,
    n = 8;
  const bytes = gemmInt8(m, k, n, 'u8');
  const model = parseModel(bytes);
  const B = model.graph.initializer('B')!.toFloat32();
  const A = new Uint8Array(m * k).map((_, i) => (i * 37) % 256);
  const s = await ort.InferenceSession.create(bytes);
  const y = (await s.run({ A: new ort.Tensor('uint8', A, [m, k]) })).Y!;
  t.same(y.dims, [m, n]);
  let want = 0;
  for (let i = 0; i < k; i++) want += (A[k + i]! - 128) * B[i * n + 3]!;
  t.equal((y.data as Int32Array)[n + 3], want, 'Y[1,3] = sum (A - 128) * B');
  await s.release();
  for (const b of [
    gemmFp32(m, k, n),
    gemmInt8(m, k, n, 's8'),
    convFp32({ c: 4, h: 8, w: 8, k: 4, r: 3 }),
    convInt8({ c: 4, h: 8, w: 8, k: 4, r: 3 }, 's8'),
  ]) {
    const sess = await ort.InferenceSession.create(b);
    t.ok(sess.inputNames.length === 1 && sess.outputNames.length === 1);
    await sess.release();
  }
});

t.test('runBench returns positive throughputs for fp32 and both int8 flavours', async (t) => {
  const r = await runBench({ threads: 1, budgetMs: 150 });
  t.equal(r.threads, 1);
  for (const k of [r.gemm, r.conv]) {
    t.ok(k.fp32Gops > 0 && Number.isFinite(k.fp32Gops), `${k.shape} fp32 ${k.fp32Gops}`);
    for (const a of ['u8', 's8'] as const) {
      t.ok(k.int8[a].gops > 0 && Number.isFinite(k.int8[a].gops), `${k.shape} int8 ${a} ${k.int8[a].gops}`);
      t.ok(k.int8[a].speedup > 0);
    }
  }
  t.ok(['u8', 's8'].includes(r.fastestInt8Activation));
  const f = r.fastestInt8Activation;
  t.ok(
    r.int8Speedup >= Math.sqrt(r.gemm.int8[f === 'u8' ? 's8' : 'u8'].speedup * r.conv.int8[f === 'u8' ? 's8' : 'u8'].speedup) - 0.011,
    'reported speed-up is the best flavour',
  );
  t.ok(r.memoryGBps > 0);
  t.ok(r.elapsedMs > 0);
});

t.test('memory bandwidth is positive for a small buffer too', async (t) => {
  t.ok(memoryBandwidthGBps(1 << 20, 3) > 0);
});
