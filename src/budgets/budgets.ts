// Budgets: what a fitted model must achieve on this box. One type, one JSON Schema (agent config,
// MQTT fit / set-budget arguments, profile and metrics payloads, the dashboard's set-budget form
// all validate against it), the conversion from a board profile, the layering of profile, config
// and commands, and the one latency statistic every budget is judged on.
//
// The latency statistic is the p50 (median) of the timed runs, everywhere: the search (src/fit),
// the agent's run-time step down/up, its metrics and the reference-only fitter, the dashboard,
// and the board profiles (profiles/README.md). Why p50 and not p95: the agent judges the deployed
// model from live probes of a few runs each (5 by default, capped at ~1 % of a core), and the p95
// of five runs is just the slowest one, so a p95 budget could not mean at run time what it means
// in the search; the median is what both can estimate. It is also the figure a relative budget
// ("0.5x") and the search's load-drift correction already measure the original by, and on a box
// shared with an application a slow tail is mostly the neighbours' doing, which the agent's
// step-down (several probes in a row over budget) is there to absorb.
import { EdgefitError } from '../errors.js';

/**
 * What the box must achieve. latencyMs is absolute; latencyFactor is relative to the original
 * model's measured latency on this box (0.5 = twice as fast). Give at most one of the two.
 */
export interface Budgets {
  /** Latency budget in ms, judged on the p50 (see LATENCY_STATISTIC). */
  latencyMs?: number;
  /** Latency budget as a fraction of the original model's measured p50 on this box. */
  latencyFactor?: number;
  /** Model RAM: RSS growth across session creation and warm-up, MB. */
  ramMb?: number;
  /** Lower bound of the fidelity metric in [0, 1] (1 = same outputs as the reference). */
  minFidelity?: number;
  /** Compressed (gzip) model size in MB: what an over-the-air update ships. The only budget
   * unstructured sparsity helps with on these CPUs (onnxruntime gains no speed from zeros). */
  sizeMb?: number;
}

/** Which statistic of the timed runs a latency budget is judged on (see the comment above). */
export const LATENCY_STATISTIC = 'p50' as const;

/** The judged latency of a measured entry (a frontier entry, a metrics sample). */
export function latencyOf<T extends number | null>(m: { latencyP50Ms: T; latencyP95Ms: T }): T {
  return m.latencyP50Ms;
}

/** The judged latency of a set of timed runs (a live probe, an evaluation). */
export function latencyOfRuns(s: { p50: number; p95: number }): number {
  return s.p50;
}

/** The one JSON Schema of Budgets; every field of the type is here (checked by `satisfies`). */
export const budgetsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    latencyMs: { type: 'number', exclusiveMinimum: 0, maximum: 3_600_000 },
    latencyFactor: { type: 'number', exclusiveMinimum: 0, maximum: 10 },
    ramMb: { type: 'number', exclusiveMinimum: 0, maximum: 1_048_576 },
    minFidelity: { type: 'number', minimum: 0, maximum: 1 },
    sizeMb: { type: 'number', exclusiveMinimum: 0, maximum: 1_048_576 },
  } satisfies Record<keyof Budgets, object>,
  // an absolute and a relative latency budget at once would be ambiguous
  not: { required: ['latencyMs', 'latencyFactor'] },
} as const;

/** '0.5x' -> 0.5 (NaN when malformed). */
export function parseLatency(s: string): number {
  const m = /^((?:0|[1-9]\d*)?(?:\.\d+)?)x$/.exec(s.trim());
  return m && m[1] ? Number(m[1]) : Number.NaN;
}

/** The budgets block of a board profile (profiles/schema.json): latency as ms or as '0.5x'. */
export interface ProfileBudgets {
  latencyMs?: number;
  latency?: string;
  ramMb: number;
  minFidelity: number;
}

/** A board profile's budgets as Budgets ('0.5x' becomes latencyFactor 0.5). */
export function profileBudgets(p: ProfileBudgets): Budgets {
  const out: Budgets = {};
  if (p.latencyMs !== undefined) out.latencyMs = p.latencyMs;
  else if (p.latency !== undefined) {
    const f = parseLatency(p.latency);
    if (!(f > 0)) throw new EdgefitError('CONFIG', `budget latency must look like 0.5x, got '${p.latency}'`);
    out.latencyFactor = f;
  }
  out.ramMb = p.ramMb;
  out.minFidelity = p.minFidelity;
  return out;
}

/**
 * Layers of budgets, later ones winning field by field (the agent's: the matched board profile,
 * the config file, set-budget commands). An absolute latency budget in a later layer replaces a
 * relative one from an earlier layer, and vice versa.
 */
export function mergeBudgets(...layers: Array<Budgets | undefined>): Budgets {
  let out: Budgets = {};
  for (const l of layers) {
    if (!l) continue;
    if (l.latencyMs !== undefined || l.latencyFactor !== undefined) {
      const { latencyMs: _a, latencyFactor: _b, ...rest } = out;
      out = rest;
    }
    out = { ...out, ...Object.fromEntries(Object.entries(l).filter(([, v]) => v !== undefined)) };
  }
  return out;
}

/**
 * The latency budget in ms: latencyMs, or latencyFactor times the original model's measured
 * latency (its LATENCY_STATISTIC); null when there is none, or it is relative and the original
 * has not been measured.
 */
export function latencyBudgetMs(b: Budgets, originalMs?: number | null): number | null {
  if (b.latencyMs !== undefined) return b.latencyMs;
  if (b.latencyFactor !== undefined && originalMs !== undefined && originalMs !== null) return b.latencyFactor * originalMs;
  return null;
}
