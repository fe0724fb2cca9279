// Synthetic calibration inputs for a Model, for when the caller gives no calibration data: the one
// generator of src/data/ (synthesizeInputs: seeded, standard-normal floats clipped to +-3), so
// pruning, fit and evaluation feed the same distribution. Every figure computed from them must
// say so (`synthetic: true`): noise is not a realistic input, and importance or fidelity measured
// on it is only a proxy.
import type { Model } from '../ir/model.js';
import { resolveShape, synthesizeInputs, type Sample } from '../data/inputs.js';
import { modelInputs } from '../runtime/runner.js';
import { rng as seededUniform } from '../util/rng.js';

export { seededUniform };

/** Resolve every runtime input's static shape, from `shapes` (--shape) or the model (a free batch dim -> 1). */
export function inputShapes(model: Model, shapes: ReadonlyMap<string, number[]> = new Map()): Map<string, number[]> {
  const given = new Map(shapes);
  return new Map(modelInputs(model).map((i) => [i.name, resolveShape(i, given)]));
}

/** `count` seeded synthetic samples for the model's runtime inputs. */
export function syntheticSamples(model: Model, shapes: ReadonlyMap<string, number[]>, count: number, seed = 1234): Sample[] {
  return synthesizeInputs(modelInputs(model), { shapes: new Map(shapes), count, seed }).samples;
}
