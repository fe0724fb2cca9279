// The pass contract: every transform states what it requires of its input and what it
// guarantees of its output, and reports whether it changed anything. Passes run on the IR only.
import type { Model } from '../ir/model.js';

export interface PassResult<D = Record<string, unknown>> {
  changed: boolean;
  /** Pass-specific figures and decisions (what was pruned, quantized, skipped and why). */
  details: D;
}

export interface Pass<O = void, D = Record<string, unknown>> {
  readonly name: string;
  /** Human-readable pre-conditions, checked by `check` where they are checkable. */
  readonly requires: readonly string[];
  /** Human-readable post-conditions; tests assert them. */
  readonly guarantees: readonly string[];
  run(model: Model, options: O): PassResult<D> | Promise<PassResult<D>>;
}
