// The shapes a model is fitted and probed at when its inputs are dynamic and the caller gave
// none: the calibration data's (dataShapes). Its own module so that the agent, which keeps the
// codec and onnxruntime out of its process where it can, loads it only when it needs it.
import { readModelBytes, parseModel } from '../onnx/index.js';
import { dataShapes } from '../data/inputs.js';
import { modelInputs } from '../data/model-inputs.js';
import { calibrationParts } from './calibration.js';

/** `given` completed with the calibration data's shapes for the dims the model leaves free. */
export function calibrationShapes(modelPath: string, calibPath: string, given: Record<string, number[]>): Record<string, number[]> {
  const inputs = modelInputs(parseModel(readModelBytes(modelPath)));
  return Object.fromEntries(dataShapes(calibrationParts(calibPath).calibrate, inputs, new Map(Object.entries(given))));
}
