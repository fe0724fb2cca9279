// Calibration data for a single-input model named 'x', through src's one loader: the shape
// given wins over a folder's preprocess.json size. Tests and bench-prune load their fixtures so.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeImage, parsePreprocessSpec, preprocessImage } from '../src/data/image.js';
import { loadInputSet, type InputSet } from '../src/data/inputs.js';
import type { NdArray } from '../src/data/ndarray.js';

export function loadCalib(path: string, shape: number[], limit: number): InputSet {
  return loadInputSet(path, [{ name: 'x', dtype: 'float32', shape }], { shapes: new Map([['x', shape]]), limit });
}

/** One image as a model input, preprocessed by the preprocess.json in `preprocessDir` (the serve tests' requests). */
export function imageInput(path: string, preprocessDir: string): NdArray {
  const spec = parsePreprocessSpec(JSON.parse(readFileSync(join(preprocessDir, 'preprocess.json'), 'utf8')), preprocessDir);
  return preprocessImage(decodeImage(path), spec);
}
