// Calibration data for a single-input model named 'x', through src's one loader: the shape
// given wins over a folder's preprocess.json size. Tests and bench-prune load their fixtures so.
import { loadInputSet, type InputSet } from '../src/data/inputs.js';

export function loadCalib(path: string, shape: number[], limit: number): InputSet {
  return loadInputSet(path, [{ name: 'x', dtype: 'float32', shape }], { shapes: new Map([['x', shape]]), limit });
}
