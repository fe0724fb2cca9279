// The pass contract: every transform states what it requires of its input and what it
// guarantees of its output, as names from the CONDITIONS table (conditions.ts), and reports
// whether it changed anything. runPass checks both sides, so the contract is not just a comment.
// Passes run on the IR only, transform and report: they do not measure or decide.
import { EdgefitError } from '../errors.js';
import type { Model } from '../ir/model.js';
import { CONDITIONS, type AnyCondition, type ConditionName } from './conditions.js';

export interface PassResult<D = Record<string, unknown>> {
  changed: boolean;
  /** Pass-specific figures and decisions (what was pruned, quantized, skipped and why). */
  details: D;
}

interface PassContract {
  readonly name: string;
  /** Conditions on the input, checked by runPass before the pass runs. */
  readonly requires: readonly ConditionName[];
  /** Conditions on the output, checked by runPass after the pass ran. */
  readonly guarantees: readonly ConditionName[];
}

export interface Pass<O = void, D = Record<string, unknown>> extends PassContract {
  run(model: Model, options: O): PassResult<D>;
}

/** A pass that needs onnxruntime to compute its rewrite (equalize reads channel ranges). */
export interface AsyncPass<O = void, D = Record<string, unknown>> extends PassContract {
  run(model: Model, options: O): Promise<PassResult<D>>;
}

type Checked = { name: ConditionName; state: unknown }[];

function checkBefore(pass: PassContract, model: Model): Checked {
  for (const name of pass.requires) {
    const c: AnyCondition = CONDITIONS[name];
    const why = c.pre?.(model);
    if (why !== undefined) throw new EdgefitError(c.code ?? 'INVALID_GRAPH', `${pass.name} requires '${name}' (${c.text}): ${why}`);
  }
  return pass.guarantees.map((name) => ({ name, state: (CONDITIONS[name] as AnyCondition).capture?.(model) }));
}

function checkAfter(pass: PassContract, model: Model, captured: Checked, details: unknown): void {
  for (const { name, state } of captured) {
    const why = (CONDITIONS[name] as AnyCondition).post?.(model, state, details);
    if (why !== undefined)
      throw new EdgefitError('INTERNAL', `${pass.name} broke its guarantee '${name}' (${CONDITIONS[name].text}): ${why}`);
  }
}

/** Run a pass with its contract checked: pre-conditions on the input, guarantees on the output. */
export function runPass<O, D>(pass: Pass<O, D>, model: Model, options: O): PassResult<D> {
  const captured = checkBefore(pass, model);
  const r = pass.run(model, options);
  checkAfter(pass, model, captured, r.details);
  return r;
}

export async function runAsyncPass<O, D>(pass: AsyncPass<O, D>, model: Model, options: O): Promise<PassResult<D>> {
  const captured = checkBefore(pass, model);
  const r = await pass.run(model, options);
  checkAfter(pass, model, captured, r.details);
  return r;
}
