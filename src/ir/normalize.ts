import type { Model } from './model.js';
import { liftConstants } from '../passes/cleanup/lift-constants.js';

/** What every consumer of a freshly loaded model wants: weights as initializers. */
export function normalize(model: Model): Model {
  liftConstants.run(model);
  return model;
}
