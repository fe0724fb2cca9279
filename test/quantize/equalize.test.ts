// Cross-layer range equalization on the real PP-OCRv4 detector: the rewrite must leave the float
// outputs unchanged on real page images (any wrong axis, group or sign shows up as a different
// map), and the per-channel ranges of the equalized tensors must really come closer together.
import t from 'tap';
import * as ort from 'onnxruntime-node';
import { join } from 'node:path';
import { loadModel, parseModel, serializeModel } from '../../src/onnx/index.js';
import { prepareFloat } from '../../src/passes/quantize/index.js';
import { foldForQuantization } from '../../src/passes/cleanup/fold.js';
import { applyOpsetPlan, planOpset } from '../../src/passes/quantize/opset.js';
import {
  collectChannelRanges,
  equalizeSites,
  findEqualizeSites,
  inputChannelAbs,
  rangeSpread,
} from '../../src/passes/quantize/equalize.js';
import { findSplitSite, splitWideChannels } from '../../src/passes/quantize/split.js';
import { openSession } from '../../src/runtime/runner.js';
import { decodeImage, IMAGENET, nchwSpec, preprocessImage } from '../../src/data/image.js';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';

const DIMS = [1, 3, 640, 640];
const feed = (file: string): Record<string, ort.Tensor> => ({
  x: new ort.Tensor(
    'float32',
    preprocessImage(decodeImage(join(ROOT, 'test/fixtures/ocr/det', file)), nchwSpec(640, 640, 3, IMAGENET)).data as Float32Array,
    DIMS,
  ),
});

async function outputs(bytes: Uint8Array, feeds: Record<string, ort.Tensor>[]): Promise<Float32Array[]> {
  const s = await openSession(bytes);
  const r: Float32Array[] = [];
  for (const f of feeds) r.push((await s.run(f))[s.outputNames[0]!]!.data as Float32Array);
  await s.release();
  return r;
}

const absOf = (lo: Float64Array, hi: Float64Array): number[] => Array.from(lo, (l, c) => Math.max(Math.abs(l), Math.abs(hi[c]!)));

t.test('det: equalization is exact in float and evens out channel ranges', async (t) => {
  const m = await prepareFloat(loadModel(OCR_MODELS.det.file));
  applyOpsetPlan(m, planOpset(m));
  foldForQuantization(m, 'int8');
  const before = serializeModel(m);
  const sites = findEqualizeSites(m);
  // dw conv -> 1x1 conv in the backbone, the neck's 1x1 -> 1x1 pairs, SE squeeze -> Relu -> excite,
  // the head's conv -> Relu -> ConvTranspose -> Relu -> ConvTranspose
  t.ok(sites.length >= 15, `${sites.length} sites`);
  t.ok(
    sites.some((s) => s.relu && s.readers.some((r) => r.opType === 'ConvTranspose')),
    'a Relu -> ConvTranspose site is found',
  );
  t.ok(
    sites.some((s) => !s.relu && s.producer.attrInt('group', 1)! > 1),
    'a depthwise producer site is found',
  );
  // no site may pass through hardswish (Add 3 -> Clip -> Mul): it is not positively homogeneous
  for (const s of sites)
    t.ok(
      m.graph.consumers(s.value).every((r) => r.opType === 'Conv' || r.opType === 'ConvTranspose'),
      `${s.value} read by convs only`,
    );

  const calib = ['page-left.png', 'text-left.png', 'astronaut.png', 'rocket.png'].map(feed);
  const ranges = await collectChannelRanges(
    m,
    sites.map((s) => s.value),
    calib,
  );
  const rep = equalizeSites(m, sites, ranges);
  t.ok(rep.sites >= 10, `${rep.sites} sites equalized`);
  const after = serializeModel(m);

  // held-out pages: float outputs agree to float rounding
  const held = ['page-right.png', 'text-right.png', 'page-code.png', 'document-on-table.png'].map(feed);
  const ref = await outputs(before, held);
  const got = await outputs(after, held);
  for (let i = 0; i < ref.length; i++) {
    let maxDiff = 0;
    let maxRef = 0;
    for (let k = 0; k < ref[i]!.length; k++) {
      maxDiff = Math.max(maxDiff, Math.abs(ref[i]![k]! - got[i]![k]!));
      maxRef = Math.max(maxRef, Math.abs(ref[i]![k]!));
    }
    t.ok(maxRef > 0.5, `held-out ${i}: the map has text (max ${maxRef.toFixed(3)})`);
    // float32 rounding through ~60 layers gives ~3e-5 here; a wrong axis, group or bias gives > 1e-2
    t.ok(maxDiff / maxRef < 1e-4, `held-out ${i}: max |diff| / max |map| = ${(maxDiff / maxRef).toExponential(2)}`);
  }

  // the equalized tensors, re-measured on the rewritten model. With int8 readers (alpha 0.5)
  // every channel's activation range now equals its largest reader weight (times one common
  // factor): range / weight is the same for all channels. With float readers only (the head's
  // ConvTranspose, alpha 1) every channel spans the same range.
  const m2 = parseModel(after);
  const g2 = m2.graph;
  const again = await collectChannelRanges(
    m2,
    rep.details.map((d) => d.value),
    calib,
  );
  let wide = 0;
  let dwSites = 0;
  for (const d of rep.details) {
    const r0 = ranges.get(d.value)!;
    const r1 = again.get(d.value)!;
    const a0 = absOf(r0.lo, r0.hi);
    const a1 = absOf(r1.lo, r1.hi);
    const s0 = rangeSpread(a0);
    const s1 = rangeSpread(a1);
    t.ok(
      Math.abs(s1 - d.spreadAfter) < 1e-3 * d.spreadAfter,
      `${d.value}: predicted spread ${d.spreadAfter.toFixed(3)} is the measured ${s1.toFixed(3)}`,
    );
    const readers = d.readers.map((n) => g2.nodes.find((x) => x.name === n)!);
    // depthwise readers quantize their weights per channel on the scaled axis: they take it all
    const depthwise = readers.every(
      (n) => n.opType === 'Conv' && n.attrInt('group', 1) === a1.length && g2.constant(n.inputs[1]!)!.dims[1] === 1,
    );
    const floatOnly = readers.every((n) => n.opType === 'ConvTranspose');
    t.equal(
      d.alpha,
      depthwise || floatOnly ? 1 : 0.5,
      `${d.value}: alpha for ${readers.map((n) => n.opType).join(', ')} readers${depthwise ? ' (depthwise)' : ''}`,
    );
    if (depthwise) dwSites++;
    const w = new Array<number>(a1.length).fill(0);
    for (const n of readers) inputChannelAbs(g2, n, a1.length).forEach((x, c) => (w[c] = Math.max(w[c]!, x)));
    const live = a1.map((x, c) => [x, w[c]!, a0[c]!] as const).filter(([x, wc, x0]) => x > 0 && wc > 0 && x0 > 0);
    const ratio = d.alpha === 1 ? live.map(([x]) => x) : live.map(([x, wc]) => x / wc);
    const even = Math.max(...ratio) / Math.min(...ratio);
    t.ok(
      even < 1.01,
      `${d.value} (alpha ${d.alpha}): ${d.alpha === 1 ? 'channel range' : 'channel range / reader weight'} max/min ${even.toFixed(4)} over ${live.length} channels`,
    );
    t.ok(s1 <= s0 + 1e-6, `${d.value}: channel spread ${s0.toFixed(2)} -> ${s1.toFixed(2)}`);
    if (s0 >= 3) wide++;
  }
  t.ok(wide >= 4, `${wide} sites had a channel spread >= 3`);
  t.ok(dwSites >= 1, `${dwSites} sites read only by depthwise convs, fully equalized`);
});

t.test('det: splitting the stem conv before hardswish is exact and gives each copy a narrower range', async (t) => {
  const m = await prepareFloat(loadModel(OCR_MODELS.det.file));
  applyOpsetPlan(m, planOpset(m));
  foldForQuantization(m, 'int8');
  const before = serializeModel(m);
  const g = m.graph;
  const producers = g.nodes.filter((n) => findSplitSite(g, n));
  t.ok(producers.length >= 20, `${producers.length} convs whose channel-wise path ends at group-1 convs`);
  const stem = findSplitSite(
    g,
    g.nodes.find((n) => n.outputs[0] === 'conv2d_451.tmp_0')!,
  )!;
  // conv -> hardswish (Add, Clip, Mul) -> learnable shift (Add) -> depthwise conv -> 1x1 conv
  t.same(
    stem.region.map((n) => n.opType),
    ['Add', 'Clip', 'Mul', 'Add', 'Conv'],
    'the stem region runs through hardswish to the depthwise conv',
  );
  t.same(
    stem.boundary.map((n) => n.attrInt('group', 1)),
    [1],
  );

  const calib = ['page-left.png', 'text-left.png', 'astronaut.png', 'rocket.png'].map(feed);
  const ranges = await collectChannelRanges(
    m,
    producers.map((n) => n.outputs[0]!),
    calib,
  );
  // the default threshold (7) is tuned on bench images; these fixtures put the stem conv near 6
  const rep = splitWideChannels(m, ranges, { minSpread: 5 });
  const d = rep.details.find((x) => x.value === 'conv2d_451.tmp_0');
  t.ok(d, `the stem conv is split (${rep.sites} sites: ${rep.details.map((x) => `${x.value} ${x.groups.join('+')}`).join(', ')})`);
  t.equal(
    d!.groups.reduce((a, b) => a + b, 0),
    32,
    'every channel in exactly one group',
  );
  t.ok(d!.groups.length >= 2);
  t.equal(m.graph.nodes.filter((n) => n.opType === 'Concat').length, 1 + rep.sites, 'one Concat per split site (plus the neck one)');
  const after = serializeModel(m);

  const held = ['page-right.png', 'text-right.png', 'page-code.png'].map(feed);
  const ref = await outputs(before, held);
  const got = await outputs(after, held);
  for (let i = 0; i < ref.length; i++) {
    let maxDiff = 0;
    for (let k = 0; k < ref[i]!.length; k++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]![k]! - got[i]![k]!));
    t.ok(maxDiff < 1e-4, `held-out ${i}: max |diff| ${maxDiff.toExponential(2)} on a [0, 1] map`);
  }

  // each copy of the stem conv, measured on the split model, spans only its group's range
  const m2 = parseModel(after);
  const copies = m2.graph.nodes
    .filter((n) => n.opType === 'Conv' && n.name.startsWith(`${stem.producer.name}_g`))
    .map((n) => n.outputs[0]!);
  t.equal(copies.length, d!.groups.length);
  const r2 = await collectChannelRanges(m2, copies, calib);
  const whole = Math.max(...absOf(ranges.get('conv2d_451.tmp_0')!.lo, ranges.get('conv2d_451.tmp_0')!.hi));
  const per = copies.map((v) => Math.max(...absOf(r2.get(v)!.lo, r2.get(v)!.hi)));
  t.same(
    per.map((x) => x.toFixed(3)),
    d!.rangesAfter.map((x) => x.toFixed(3)),
    `copy ranges ${per.map((x) => x.toFixed(1)).join(', ')} as predicted`,
  );
  t.ok(Math.min(...per) < whole / 4, `the narrow copy spans ${Math.min(...per).toFixed(1)} instead of ${whole.toFixed(1)}`);
});
