// Lives with the passes, not in src/ir: it runs a pass, and the IR never imports the passes.
import type { Model } from '../ir/model.js';
import { liftConstants } from './cleanup/lift-constants.js';
import { runPass } from './pass.js';

/** What every consumer of a freshly loaded model wants: weights as initializers. */
export function normalize(model: Model): Model {
  runPass(liftConstants, model, undefined);
  return model;
}
