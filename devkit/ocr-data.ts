// PP-OCRv4 det's and rec's realistic calibration / held-out splits, shared by the quantization
// benchmark and its diagnostics (scikit-image's sample photos and scanned text, Debian's
// python3-skimage, and the line crops committed under test/fixtures/ocr).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { decodeImage, IMAGENET, nchwSpec, preprocessImage, type Normalisation, type Rgba } from '../src/data/image.js';
import { argmaxAgreement } from '../src/fidelity/index.js';

export const REC_DIMS = [1, 3, 48, 320];
export const REC_CLASSES = 6625;

export const DET_DIMS = [1, 3, 640, 640];
const SK = '/usr/lib/python3/dist-packages/skimage/data';

type Img = Rgba;
/** The shared loader's resize and normalisation (src/data/image.ts), as a plain NCHW float array. */
function imageToTensor(img: Img, h: number, w: number, channels: 1 | 3, norm: Normalisation): Float32Array {
  return preprocessImage(img, nchwSpec(h, w, channels, norm)).data as Float32Array;
}

function crop(img: Img, x: number, y: number, w: number, h: number): Img {
  const data = new Uint8Array(w * h * 4);
  for (let r = 0; r < h; r++) data.set(img.data.subarray(((y + r) * img.width + x) * 4, ((y + r) * img.width + x + w) * 4), r * w * 4);
  return { width: w, height: h, data };
}

/**
 * det: text detection is judged on images with text, so the held-out set is text (the other
 * halves of page.png and text.png, and bw_text.png) while calibration mixes text halves and photos.
 */
export function detSets(): { calib: Float32Array[]; held: Float32Array[] } {
  const page = decodeImage(join(SK, 'page.png'));
  const text = decodeImage(join(SK, 'text.png'));
  const calib = [
    crop(page, 0, 0, page.width, page.height >> 1),
    crop(text, 0, 0, text.width >> 1, text.height),
    ...['camera.png', 'coffee.png', 'chelsea.png', 'astronaut.png'].map((f) => decodeImage(join(SK, f))),
  ].map((i) => imageToTensor(i, 640, 640, 3, IMAGENET));
  const held = [
    crop(page, 0, page.height >> 1, page.width, page.height - (page.height >> 1)),
    crop(text, text.width >> 1, 0, text.width - (text.width >> 1), text.height),
    decodeImage(join(SK, 'bw_text.png')),
  ].map((i) => imageToTensor(i, 640, 640, 3, IMAGENET));
  return { calib, held };
}

/**
 * rec: calibration is the 22 line crops of test/fixtures/ocr/rec (page.png, text.png) and the
 * rec-bw crops (bw_text.png) of every other line; held out: the rec-bw crops of the remaining
 * lines, lines the calibration never saw. REC_FOLD=even swaps the two halves.
 */
export interface RecSets {
  calib: Float32Array[];
  held: Float32Array[];
  heldLines: number[];
  parity: number;
}

export function recSets(root: string): RecSets {
  const pre = { scale: 1 / 255, mean: [0.5, 0.5, 0.5] as [number, number, number], std: [0.5, 0.5, 0.5] as [number, number, number] };
  const load = (dir: string, files: string[]): Float32Array[] =>
    files.map((f) => imageToTensor(decodeImage(join(dir, f)), 48, 320, 3, pre));
  const pngs = (dir: string): string[] =>
    readdirSync(dir)
      .filter((f) => f.endsWith('.png'))
      .sort();
  const recDir = join(root, 'test/fixtures/ocr/rec');
  const bwDir = join(root, 'test/fixtures/ocr/rec-bw');
  const parity = process.env.REC_FOLD === 'even' ? 0 : 1;
  const bw = pngs(bwDir);
  const lineOf = (f: string): number => Number(/bw-L(\d+)/.exec(f)![1]);
  const calib = [
    ...load(recDir, pngs(recDir)),
    ...load(
      bwDir,
      bw.filter((f) => lineOf(f) % 2 === parity),
    ),
  ];
  const heldNames = bw.filter((f) => lineOf(f) % 2 !== parity);
  return { calib, held: load(bwDir, heldNames), heldLines: heldNames.map(lineOf).filter((v, i, a) => a.indexOf(v) === i), parity };
}

/** Per-step argmax agreement (the decoded character) of rec outputs [1, T, classes], pooled over lines. */
export function stepAgreement(ref: Float32Array[], got: Float32Array[]): { agree: number; steps: number } {
  let agree = 0;
  let steps = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = argmaxAgreement(ref[i]!, got[i]!, REC_CLASSES);
    agree += r.agree;
    steps += r.positions;
  }
  return { agree, steps };
}

/** Agreement of two step counts, as a percentage. */
export const pct = (a: { agree: number; steps: number }): string => `${((100 * a.agree) / a.steps).toFixed(2)}%`;
