// Validation at the dashboard's edges, with the agent's own schemas (src/telemetry): every
// device payload before it touches the fleet state, every browser action before it becomes an
// MQTT request.
import { EdgefitError, oneLine } from '../errors.js';
import type { PayloadKind, PayloadTypes } from '../telemetry/payloads.js';
import { checkArgs, checkPayload } from '../telemetry/validate.js';
import { ACTIONS, type ActionVerb } from './model.js';

/** The payload typed, or a short reason why it was refused (the message is dropped and counted). */
export function validatePayload<K extends Exclude<PayloadKind, 'request'>>(
  kind: K,
  body: unknown,
): { ok: PayloadTypes[K] } | { err: string } {
  try {
    return { ok: checkPayload(kind, body) };
  } catch (e) {
    return { err: oneLine(e).slice(0, 300) };
  }
}

function isAction(v: string): v is ActionVerb {
  return Object.prototype.hasOwnProperty.call(ACTIONS, v);
}

/** Validate what a browser asked for; returns the request arguments to publish. */
export function validateAction(verb: string, body: unknown): { verb: ActionVerb; args: Record<string, unknown> } {
  if (!isAction(verb)) throw new EdgefitError('USAGE', `unknown action '${verb}'`);
  if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) {
    throw new EdgefitError('USAGE', 'action body must be a JSON object');
  }
  const args = { ...((body ?? {}) as Record<string, unknown>) };
  // empty form fields mean "leave this budget alone"
  for (const [k, v] of Object.entries(args)) if (v === null || v === '') delete args[k];
  try {
    return { verb, args: checkArgs(verb, args) };
  } catch (e) {
    // the agent's message lists every problem with its path; it is the user's input, so USAGE
    throw new EdgefitError('USAGE', oneLine(e), { cause: e });
  }
}
