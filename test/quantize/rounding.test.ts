// Data-aware weight rounding (rounding.ts) on real PP-OCRv4 rec layers: the im2col statistics
// agree with what onnxruntime's Conv computes, and AdaRound-style rounding and bias correction
// lower each layer's output error against round-to-nearest on crops the rounding never saw.
import t from 'tap';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../../src/onnx/index.js';
import { prepareFloat } from '../../src/passes/quantize/index.js';
import { decodeImage, nchwSpec, preprocessImage } from '../../src/data/image.js';
import { collectStats } from '../../src/passes/quantize/collect.js';
import { findCandidates } from '../../src/passes/quantize/qdq.js';
import {
  adaroundRow,
  Gram,
  layerGeometry,
  LayerInputStats,
  quadratic,
  roundWeight,
  type RoundedWeight,
} from '../../src/passes/quantize/rounding.js';
import { ROOT, OCR_MODELS } from '../../devkit/paths.js';

t.test('adaroundRow: never worse than nearest on its quadratic, better when inputs correlate', async (t) => {
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const k = 24;
  // M = A^T A / rows with strongly correlated columns (a shared component in every column)
  const rows = 200;
  const a = Array.from({ length: rows }, () => {
    const common = rnd();
    return Float64Array.from({ length: k }, () => common + 0.3 * rnd());
  });
  const m = new Float64Array(k * k);
  for (const r of a) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) m[i * k + j]! += (r[i]! * r[j]!) / rows;
  let better = 0;
  for (let trial = 0; trial < 20; trial++) {
    const w = Float64Array.from({ length: k }, () => rnd());
    const s = 1 / 63;
    const near = Float64Array.from(w, (v) => v - s * Math.round(v / s));
    const r = adaroundRow(w, s, 63, m, k);
    const q = r.q;
    const e = Float64Array.from(w, (v, i) => v - s * q[i]!);
    for (let i = 0; i < k; i++) t.ok(Math.abs(q[i]! - w[i]! / s) < 1, 'each weight rounds to floor or ceil');
    const en = quadratic(m, near, k);
    const ea = quadratic(m, e, k);
    t.ok(ea <= en + 1e-15, `trial ${trial}: ${ea} <= nearest ${en}`);
    t.ok(
      Math.abs(r.err - ea) <= 1e-9 * en + 1e-15 && Math.abs(r.errNearest - en) <= 1e-9 * en + 1e-15,
      'the errors it reports are the quadratic recomputed',
    );
    if (ea < 0.5 * en) better++;
  }
  t.ok(better >= 15, `correlated inputs: error at least halved in ${better}/20 rows`);
});

const pre = { scale: 1 / 255, mean: [0.5, 0.5, 0.5] as [number, number, number], std: [0.5, 0.5, 0.5] as [number, number, number] };
const feeds = (dir: string, files: string[]): Record<string, ort.Tensor>[] =>
  files.map((f) => ({
    x: new ort.Tensor(
      'float32',
      preprocessImage(decodeImage(join(dir, f)), nchwSpec(48, 320, 3, pre)).data as Float32Array,
      [1, 3, 48, 320],
    ),
  }));
const REC = join(ROOT, 'test/fixtures/ocr/rec');
const BW = join(ROOT, 'test/fixtures/ocr/rec-bw');
const png = (d: string): string[] =>
  readdirSync(d)
    .filter((f) => f.endsWith('.png'))
    .sort();

/** Mean squared output error per row, E[(e.x - shift)^2], from second moments of held-out rows. */
function outputMse(st: LayerInputStats, w: Float32Array, r: RoundedWeight): number {
  const geo = st.geo;
  const k = geo.k;
  const per = geo.outChannels / geo.groups;
  const n = st.rows;
  let total = 0;
  for (let gi = 0; gi < geo.groups; gi++) {
    const m = new Float64Array(k * k);
    const h = st.h[gi]!;
    for (let i = 0; i < k; i++) for (let j = i; j < k; j++) m[i * k + j] = m[j * k + i] = h[i * k + j]! / n;
    const mean = Float64Array.from(st.sum[gi]!, (v) => v / n);
    for (let c = gi * per; c < (gi + 1) * per; c++) {
      const s = r.scales[r.axis === undefined ? 0 : c]!;
      // output error of channel c: (W_q - W) x + shift, i.e. -(e.x) + shift with e = w - w_q
      const e = Float64Array.from({ length: k }, (_, i) => w[geo.index(c, i)]! - s * r.q[geo.index(c, i)]!);
      const shift = r.biasShift?.[c] ?? 0;
      let em = 0;
      for (let i = 0; i < k; i++) em += e[i]! * mean[i]!;
      total += quadratic(m, e, k) - 2 * shift * em + shift * shift;
    }
  }
  return total / geo.outChannels;
}

t.test('rec layers: statistics match onnxruntime, rounding lowers the held-out output error', async (t) => {
  const model = await prepareFloat(loadModel(OCR_MODELS.rec.file));
  const g = model.graph;
  const cands = findCandidates(model).filter((c) => c.kind === 'weighted' && !c.blocked);
  // a strided 3x3 stem, a padded depthwise 5x5, a 1x3 neck conv over 480 channels, a 1x1 and the 6625-class head
  const pick = ['p2o.Conv.0', 'p2o.Conv.13', 'p2o.Conv.33', 'p2o.Conv.28', 'p2o.MatMul.24'];
  const layers = pick.map((k) => cands.find((c) => c.key === k)!);
  t.equal(layers.filter(Boolean).length, pick.length, 'layers found');
  const statsOn = async (
    batches: Record<string, ort.Tensor>[],
  ): Promise<{ st: Map<string, LayerInputStats>; outMean: Map<string, Float64Array> }> => {
    // every output position (no sampling), so the mean below must match exactly
    const st = new Map(layers.map((c) => [c.key, new LayerInputStats(layerGeometry(g, c.node)!, Infinity)]));
    // per-channel means of each Conv's own output (before its activation), from onnxruntime
    const outMean = new Map<string, Float64Array>();
    const outs = layers.filter((c) => c.node.opType === 'Conv').map((c) => c.node.outputs[0]!);
    const gram = await Gram.open();
    await collectStats(model, [...layers.map((c) => c.node.inputs[0]!), ...outs], batches, {
      histograms: false,
      visit: async (res) => {
        for (const c of layers) {
          const x = res[c.node.inputs[0]!]!;
          await st.get(c.key)!.add(x.data as Float32Array, x.dims, gram);
          if (c.node.opType !== 'Conv') continue;
          const y = res[c.node.outputs[0]!]!;
          const [, ch, hh, ww] = y.dims as [number, number, number, number];
          const m = outMean.get(c.key) ?? new Float64Array(ch);
          const d = y.data as Float32Array;
          for (let o = 0; o < ch; o++) for (let p = 0; p < hh * ww; p++) m[o]! += d[o * hh * ww + p]! / (hh * ww * batches.length);
          outMean.set(c.key, m);
        }
      },
    });
    for (const x of st.values()) await x.flush(gram);
    await gram.release();
    return { st, outMean };
  };
  const bw = png(BW);
  const calib = await statsOn([
    ...feeds(REC, png(REC).slice(0, 8)),
    ...feeds(
      BW,
      bw.filter((f) => /L0[13]/.test(f)),
    ),
  ]);
  const held = await statsOn(
    feeds(
      BW,
      bw.filter((f) => /L0[24]/.test(f)),
    ),
  );
  for (const c of layers) {
    const w = g.constant(c.node.inputs[1]!)!;
    const wf = w.toFloat32();
    const geo = layerGeometry(g, c.node)!;
    const st = calib.st.get(c.key)!;
    const hasBias = c.node.opType === 'Conv';
    if (hasBias) {
      // W E[x] + b from the im2col statistics is onnxruntime's mean output: pads, strides and groups right
      const b = g.constant(c.node.inputs[2]!)!.toFloat32();
      const per = geo.outChannels / geo.groups;
      let worst = 0;
      let scale = 0;
      for (let o = 0; o < geo.outChannels; o++) {
        const gi = Math.floor(o / per);
        let y = b[o]!;
        for (let i = 0; i < geo.k; i++) y += wf[geo.index(o, i)]! * (st.sum[gi]![i]! / st.rows);
        worst = Math.max(worst, Math.abs(y - calib.outMean.get(c.key)![o]!));
        scale = Math.max(scale, Math.abs(y));
      }
      t.ok(
        worst <= 1e-3 * scale + 1e-5,
        `${c.key}: mean output from statistics matches onnxruntime (worst diff ${worst.toExponential(2)} of ${scale.toFixed(3)})`,
      );
    }
    const axis = c.node.opType === 'Conv' ? 0 : 1;
    const opts = { reduceRange: false, axis, hasBias };
    const near = roundWeight(w, st, { ...opts, method: 'nearest' });
    const bias = roundWeight(w, st, { ...opts, method: 'bias' });
    const ada = roundWeight(w, st, { ...opts, method: 'adaround' });
    t.ok(ada.err < near.errNearest, `${c.key}: adaround calibration error ${(ada.err / ada.errNearest).toFixed(3)}x nearest's`);
    const hst = held.st.get(c.key)!;
    const [en, eb, ea] = [near, bias, ada].map((r) => outputMse(hst, wf, r));
    t.ok(
      ea < en,
      `${c.key}: HELD-OUT output MSE adaround ${ea.toExponential(3)} < nearest ${en.toExponential(3)} (${(ea / en).toFixed(3)}x)`,
    );
    if (hasBias) t.ok(eb <= en, `${c.key}: HELD-OUT output MSE bias-corrected ${eb.toExponential(3)} <= nearest ${en.toExponential(3)}`);
  }
});
