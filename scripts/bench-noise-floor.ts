// How far PP-OCRv4 det's own outputs move when its input moves by a grey level or less, on the
// judge images: the floor under which a compressed model's judged figures are no longer separable
// from the original's sensitivity to its input (issue 18 asks int8 QAT for map cosine >= 0.98):
//   node dist/scripts/bench-noise-floor.js [--levels 0.5,1,2] [--repeats 3] [--seed 1] [--model CANDIDATE.onnx]
// Each judge image, as the loader makes it (resized, normalised), gets seeded uniform noise of
// +-k grey levels per pixel and channel (k * scale / std[c] in the model's input space: the same
// as moving every 0..255 value after the resize by up to k) and the original's map on it is judged
// against the original's map on the clean image, as a candidate is: per-image map cosine, box F1
// by PP-OCR's box rule, mask IoU. A quantized model's rounding of its input alone is +-0.53 grey
// level (the int8 step of det's input spans 1.07 grey levels). --model judges a candidate on the
// clean images beside it, per image.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { OCR_FIT_SETS, OCR_MODELS } from '../devkit/paths.js';
import { loadInputSet, type Sample } from '../src/data/inputs.js';
import { parsePreprocessSpec } from '../src/data/image.js';
import { loadModel, serializeModel } from '../src/onnx/index.js';
import { modelInputs } from '../src/runtime/runner.js';
import { firstOutputs, judgeDetMaps, type FirstOutput } from '../devkit/outputs.js';
import { rng } from '../src/util/rng.js';

const { values: a } = parseArgs({
  options: {
    levels: { type: 'string', default: '0.5,1,2' },
    repeats: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    model: { type: 'string' },
  },
});
const levels = a.levels.split(',').map(Number);
const repeats = Number(a.repeats);
if (levels.some((k) => !(k > 0)) || !(repeats >= 1)) throw new Error('--levels must be positive numbers and --repeats >= 1');

const dir = OCR_FIT_SETS.det.judge;
const spec = parsePreprocessSpec(JSON.parse(readFileSync(join(dir, 'preprocess.json'), 'utf8')), dir);
const names = readdirSync(dir)
  .filter((f) => /\.(png|jpe?g)$/i.test(f))
  .sort();
const model = loadModel(OCR_MODELS.det.file);
const samples = loadInputSet(dir, modelInputs(model)).samples;
if (samples.length !== names.length) throw new Error(`judge set: ${samples.length} samples for ${names.length} images`);

/** Per-image cosine and the pooled task figures of `got` against `ref`. */
function judge(ref: readonly FirstOutput[], got: readonly FirstOutput[]): { cos: number[]; boxF1: number; maskIoU: number } {
  const j = judgeDetMaps(ref, got);
  return { cos: j.cos, boxF1: j.figures.boxF1!, maskIoU: j.figures.maskIoU! };
}

function noisy(x: Sample, k: number, next: () => number): Sample {
  const out: Sample = {};
  for (const [name, v] of Object.entries(x)) {
    const [, c, h, w] = v.shape as [number, number, number, number];
    const d = Float32Array.from(v.data as Float32Array);
    for (let ch = 0; ch < c; ch++) {
      const step = (k * spec.scale) / spec.std[ch]!;
      for (let i = ch * h * w; i < (ch + 1) * h * w; i++) d[i]! += (2 * next() - 1) * step;
    }
    out[name] = { ...v, data: d };
  }
  return out;
}

const mean = (v: readonly number[]): number => v.reduce((p, c) => p + c, 0) / v.length;
const bytes = serializeModel(model);
const ref = await firstOutputs(bytes, samples);
console.log(`bench-noise-floor: PP-OCRv4 det on ${names.length} judge images at ${spec.size.join('x')}, ${repeats} draws per level`);
const perImage = (cos: readonly number[]): string => cos.map((c, i) => `${names[i]!.replace(/\.\w+$/, '')} ${c.toFixed(3)}`).join(', ');
for (const k of levels) {
  const next = rng(Number(a.seed));
  const cos = names.map(() => 0);
  let f1 = 0,
    iou = 0;
  for (let r = 0; r < repeats; r++) {
    const j = judge(
      ref,
      await firstOutputs(
        bytes,
        samples.map((x) => noisy(x, k, next)),
      ),
    );
    j.cos.forEach((c, i) => (cos[i]! += c / repeats));
    f1 += j.boxF1 / repeats;
    iou += j.maskIoU / repeats;
  }
  console.log(
    `original, input +-${k} grey level: map cosine ${mean(cos).toFixed(4)} (min ${Math.min(...cos).toFixed(3)}), box F1 ${f1.toFixed(4)}, mask IoU ${iou.toFixed(4)}`,
  );
  console.log(`  per image: ${perImage(cos)}`);
}
if (a.model) {
  const j = judge(ref, await firstOutputs(new Uint8Array(readFileSync(a.model)), samples));
  console.log(
    `${a.model}, clean input: map cosine ${mean(j.cos).toFixed(4)} (min ${Math.min(...j.cos).toFixed(3)}), box F1 ${j.boxF1.toFixed(4)}, mask IoU ${j.maskIoU.toFixed(4)}`,
  );
  console.log(`  per image: ${perImage(j.cos)}`);
}
