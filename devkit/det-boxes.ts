// Text boxes from a PP-OCR det probability map, the way PaddleOCR's DB post-processing finds
// them (threshold 0.3, connected regions, a region kept when its mean probability >= 0.6 and it is
// not tiny): dev-only, to check that the bundled det calibration/judge images hold text the model
// finds (scripts/check-det-set.ts, test/agent/assets.test.ts). The fit's own text-det metric is
// the fidelity module's.
import ort from 'onnxruntime-node';
import { decodeImage, parsePreprocessSpec, preprocessImage } from '../src/data/image.js';
import { OCR_MODELS } from './paths.js';

export const DB_THRESH = 0.3;
export const BOX_THRESH = 0.6;
export const MIN_AREA = 16;

/** Count of text regions in one [1, 1, H, W] map (4-connected components above DB_THRESH). */
export function countBoxes(map: Float32Array, h: number, w: number): number {
  const seen = new Uint8Array(h * w);
  const stack: number[] = [];
  let boxes = 0;
  for (let start = 0; start < h * w; start++) {
    if (seen[start] || map[start]! <= DB_THRESH) continue;
    seen[start] = 1;
    stack.push(start);
    let area = 0;
    let sum = 0;
    while (stack.length) {
      const p = stack.pop()!;
      area++;
      sum += map[p]!;
      const y = Math.floor(p / w);
      const x = p - y * w;
      for (const q of [x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1])
        if (q >= 0 && !seen[q] && map[q]! > DB_THRESH) {
          seen[q] = 1;
          stack.push(q);
        }
    }
    if (area >= MIN_AREA && sum / area >= BOX_THRESH) boxes++;
  }
  return boxes;
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
