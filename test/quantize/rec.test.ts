// PP-OCRv4 rec static int8 judged by per-step argmax agreement (the decoded character): the
// metric quantize reports against an independent count on the written model's outputs, and the
// --min-fidelity fallback (float nodes and activations) raising the agreement to a floor the
// all-int8 model misses. (The metric on hand-made rows: test/fidelity/metrics.test.ts.)
import t from 'tap';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { quantizeModel } from '../../src/fit/quantize/plan.js';
import { decodeImage, nchwSpec, preprocessImage } from '../../src/data/image.js';
import { openSession, type Feeds } from '../../src/runtime/runner.js';
import { measureFidelity } from '../../src/fit/quantize/fidelity.js';
import { floatSet } from '../../src/fit/quantize/sensitivity.js';
import { ROOT, OCR_MODELS } from '../../devkit/paths.js';

const pre = { scale: 1 / 255, mean: [0.5, 0.5, 0.5] as [number, number, number], std: [0.5, 0.5, 0.5] as [number, number, number] };
const REC_DIR = join(ROOT, 'test/fixtures/ocr/rec');
const crops = readdirSync(REC_DIR)
  .filter((f) => f.endsWith('.png'))
  .sort();
const feedsOf = (names: string[]): Feeds[] =>
  names.map((f) => ({
    x: new ort.Tensor(
      'float32',
      preprocessImage(decodeImage(join(REC_DIR, f)), nchwSpec(48, 320, 3, pre)).data as Float32Array,
      [1, 3, 48, 320],
    ),
  }));

/** Per-step argmax agreement counted here, apart from fidelity.ts: rec outputs [1, T, 6625]. */
async function agreement(a: Uint8Array, b: Uint8Array, feeds: Feeds[]): Promise<number> {
  const sa = await openSession(a);
  const sb = await openSession(b);
  let agree = 0;
  let steps = 0;
  for (const f of feeds) {
    const ta = (await sa.run(f))[sa.outputNames[0]!]!;
    const pa = ta.data as Float32Array;
    const pb = (await sb.run(f))[sb.outputNames[0]!]!.data as Float32Array;
    const C = ta.dims[2]!;
    t.equal(C, 6625, 'class axis is last');
    for (let s = 0; s < pa.length / C; s++) {
      const row = (p: Float32Array): number => p.subarray(s * C, (s + 1) * C).reduce((best, v, i, r) => (v > r[best]! ? i : best), 0);
      steps++;
      if (row(pa) === row(pb)) agree++;
    }
  }
  await sa.release();
  await sb.release();
  return agree / steps;
}

t.test('rec static int8: reported argmax agreement matches an independent count, and the fallback raises it to the floor', async (t) => {
  // calibration and fidelity on 4 line crops (two page lines, two lines of the text sample)
  const data = feedsOf([crops[0]!, crops[5]!, crops[18]!, crops[20]!]);
  const original = serializeModel(loadModel(OCR_MODELS.rec.file));
  const self = await measureFidelity(
    original,
    data,
    await (async () => {
      const s = await openSession(original);
      const r: Record<string, ort.Tensor>[] = [];
      for (const f of data) r.push((await s.run(f)) as Record<string, ort.Tensor>);
      await s.release();
      return r;
    })(),
    'all',
    2,
    'argmax',
  );
  t.same([self.mean, self.min, self.loss < 1e-9], [1, 1, true], 'float against itself: full agreement, no divergence');

  // round-to-nearest weights: this test is about the metric and the fallback, and the data-aware
  // rounding (rounding.test.ts) would add its statistics pass to a file already near tap's timeout
  const all = await quantizeModel(loadModel(OCR_MODELS.rec.file), {
    mode: 'static',
    method: 'percentile',
    data,
    fidelityMetric: 'argmax',
    weightRounding: 'nearest',
  });
  const base = all.report.fidelity!;
  t.equal(base.metric, 'argmax');
  t.ok(
    Math.abs(base.mean - (await agreement(original, all.bytes, data))) < 1e-9,
    `reported ${base.mean} is the agreement counted on the written model`,
  );
  t.ok(base.mean < 0.99, `all-int8 rec flips characters (${base.mean}): the fallback has something to do`);
  t.equal(all.report.floatTensors.length, 0);

  // a floor above what all-int8 reaches: a third of the way to full agreement
  const floor = base.mean + (1 - base.mean) / 3;
  const fb = await quantizeModel(loadModel(OCR_MODELS.rec.file), {
    mode: 'static',
    method: 'percentile',
    data,
    fidelityMetric: 'argmax',
    minFidelity: floor,
    maxProbes: 8,
    weightRounding: 'nearest',
  });
  const f = fb.report.fidelity!;
  t.ok(f.mean >= floor && f.mean > base.mean, `fallback: ${f.mean} >= floor ${floor} > all-int8 ${base.mean}`);
  t.ok(Math.abs(f.mean - (await agreement(original, fb.bytes, data))) < 1e-9, 'the fallback model written is the one measured');
  const kept = fb.report.floatTensors.length + fb.report.layers.details.filter((l) => /sensitive/.test(l.why ?? '')).length;
  t.ok(kept >= 1, `${fb.report.floatTensors.length} activations and ${kept - fb.report.floatTensors.length} nodes left float`);
  // the search keeps the fewest units it tried that meet the floor
  const tried = fb.report.fallback!.tried;
  const chosen = tried.filter((x) => x.mean >= floor).sort((p, q) => p.k - q.k)[0]!;
  t.equal(chosen.mean, f.mean, 'the set reported is the smallest tried set that met the floor');
  t.ok(
    tried.filter((x) => x.k < chosen.k).every((x) => x.mean < floor),
    `every smaller set tried missed it: ${JSON.stringify(tried.map((x) => [x.k, x.mean]))}`,
  );
  t.equal(fb.report.fallback!.probed, 8, 'the ranking stayed within its probe budget');
  t.same([...floatSet(['node:a', 'tensor:b', 'tensor:c']).tensors], ['b', 'c']);
});
