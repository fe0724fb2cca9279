// A model's runtime inputs as the data layer sees them, and the synthetic samples that stand in
// when the caller gives no data: the one generator of this folder (synthesizeInputs: seeded,
// standard-normal floats clipped to +-3), so pruning, fit and evaluation feed the same
// distribution. Every figure computed from synthetic samples must say so (`synthetic: true`):
// noise is not a realistic input, and importance or fidelity measured on it is only a proxy.
import type { Model } from '../ir/model.js';
import { resolveShape, synthesizeInputs, type ModelInput, type Sample } from './inputs.js';

/** The inputs a caller must feed (initializers that double as inputs excluded). */
export function modelInputs(model: Model): ModelInput[] {
  return model.graph.runtimeInputs().map((v) => ({ name: v.name, dtype: v.type?.dtype ?? 'float32', shape: v.type?.shape ?? null }));
}

/** Resolve every runtime input's static shape, from `shapes` (given by the caller) or the model (a free batch dim -> 1). */
export function inputShapes(model: Model, shapes: ReadonlyMap<string, number[]> = new Map()): Map<string, number[]> {
  const given = new Map(shapes);
  return new Map(modelInputs(model).map((i) => [i.name, resolveShape(i, given)]));
}

/** `count` seeded synthetic samples for the model's runtime inputs. */
export function syntheticSamples(model: Model, shapes: ReadonlyMap<string, number[]>, count: number, seed = 1234): Sample[] {
  return synthesizeInputs(modelInputs(model), { shapes: new Map(shapes), count, seed }).samples;
}
