// How many text boxes the bundled PP-OCR det finds in image files, decoded by the fidelity
// module's text-det task (PP-OCR's DB post-processing: threshold 0.3, each region's minimum-area
// rectangle kept at mean score >= 0.6, then unclipped): dev-only, to check that the bundled det
// calibration/judge images hold text the model finds (scripts/check-det-set.ts,
// test/agent/assets.test.ts).
import ort from 'onnxruntime-node';
import { decodeImage, parsePreprocessSpec, preprocessImage } from '../src/data/image.js';
import { textBoxes } from '../src/fidelity/task-textdet.js';
import { OCR_MODELS } from './paths.js';

/** Count of text regions in one [1, 1, H, W] map: the fidelity module's text-det decoding (one definition). */
export function countBoxes(map: Float32Array, h: number, w: number): number {
  return textBoxes(map, 0, h, w).length;
}

/** Boxes a PP-OCR det model (default: the bundled PP-OCRv4 det) finds in each image file, preprocessed by the folder's preprocess.json. */
export async function detBoxCounts(files: string[], preprocess: unknown, model: string = OCR_MODELS.det.file): Promise<number[]> {
  const spec = parsePreprocessSpec(preprocess, 'preprocess.json');
  const [h, w] = spec.size;
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 2 });
  const counts: number[] = [];
  for (const f of files) {
    const x = preprocessImage(decodeImage(f), spec);
    const out = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x.data as Float32Array, x.shape) });
    counts.push(countBoxes(out[s.outputNames[0]!]!.data as Float32Array, h, w));
  }
  await s.release();
  return counts;
}
