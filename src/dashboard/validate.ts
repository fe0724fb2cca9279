// Payload validation at the dashboard's edge. Every device payload is checked before it touches
// the fleet state; browser action bodies are checked before they become MQTT requests.
import { EdgefitError } from '../errors.js';
import type { ActionVerb } from './model.js';
import { ACTIONS } from './model.js';

export type PayloadKind = 'status' | 'profile' | 'metrics' | 'events' | 'response';

/** null when acceptable, else a short reason (the message is dropped and counted). */
export function validatePayload(kind: PayloadKind, body: unknown): string | null {
  if (kind === 'status' && typeof body === 'string') return null;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return `${kind} payload is not an object`;
  return null;
}

function isVerb(v: string): v is ActionVerb {
  return Object.prototype.hasOwnProperty.call(ACTIONS, v);
}

/** Validate what a browser asked for; returns the request arguments to publish. */
export function validateAction(verb: string, body: unknown): { verb: ActionVerb; args: Record<string, unknown> } {
  if (!isVerb(verb)) throw new EdgefitError('USAGE', `unknown action '${verb}'`);
  const o = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : null;
  if (body !== undefined && body !== null && !o) throw new EdgefitError('USAGE', 'action body must be a JSON object');
  const args: Record<string, unknown> = {};
  if (verb === 'set-budget') {
    const budgets: Record<string, number> = {};
    const limits = { latencyMs: [0.01, 3_600_000], ramMb: [1, 1_048_576], fidelity: [0, 1] } as const;
    for (const [k, [lo, hi]] of Object.entries(limits)) {
      const v = o?.[k];
      if (v === undefined || v === null || v === '') continue;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) {
        throw new EdgefitError('USAGE', `budget ${k} must be a number in [${lo}, ${hi}]`);
      }
      budgets[k] = v;
    }
    if (!Object.keys(budgets).length) throw new EdgefitError('USAGE', 'set-budget needs at least one of latencyMs, ramMb, fidelity');
    const extra = Object.keys(o ?? {}).filter((k) => !(k in limits));
    if (extra.length) throw new EdgefitError('USAGE', `set-budget: unknown field ${extra[0]}`);
    args.budgets = budgets;
  } else if (o && Object.keys(o).length) {
    throw new EdgefitError('USAGE', `${verb} takes no arguments`);
  }
  return { verb, args };
}
