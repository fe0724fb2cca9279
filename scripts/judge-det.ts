// Judges PP-OCRv4 det models (a fit's candidates, an agent's deployed model) against the bundled
// original on the 16 judge images at 640x640, as bench-qat.ts judges its QAT runs: the mean of the
// per-image map cosines (issue 18 asks >= 0.98 of QAT det), each image's, and text-box F1.
// `edgefit eval --reference` reports box F1 too, but its cosine is over every image's map at once.
//   node dist/scripts/judge-det.js <model.onnx> [more.onnx ...]
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { loadModel } from '../src/onnx/index.js';
import { loadInputSet } from '../src/data/inputs.js';
import { modelInputs } from '../src/runtime/runner.js';
import { OCR_FIT_SETS, OCR_MODELS } from '../devkit/paths.js';
import { firstOutputs, judgeDetMaps } from '../devkit/outputs.js';

const paths = process.argv.slice(2);
if (!paths.length) {
  console.error('usage: node dist/scripts/judge-det.js <model.onnx> [more.onnx ...]');
  process.exit(2);
}
const judge = loadInputSet(OCR_FIT_SETS.det.judge, modelInputs(loadModel(OCR_MODELS.det.file))).samples;
const ref = await firstOutputs(new Uint8Array(readFileSync(OCR_MODELS.det.file)), judge);
for (const p of paths) {
  const got = await firstOutputs(new Uint8Array(readFileSync(p)), judge);
  const { cos, meanCos, figures: f } = judgeDetMaps(ref, got);
  console.log(
    `${basename(p)}: map cosine mean ${meanCos.toFixed(4)} min ${Math.min(...cos).toFixed(4)}, ` +
      `box F1 ${f.boxF1!.toFixed(4)} (precision ${f.precision!.toFixed(3)}, recall ${f.recall!.toFixed(3)}, ${f.refBoxes} reference boxes)`,
  );
  console.log(`  per image (${judge.length}, in file order): ${cos.map((c) => c.toFixed(3)).join(' ')}`);
}
