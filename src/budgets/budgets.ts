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
import { EdgefitError, type OptionName } from '../errors.js';

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

/**
 * A fit's entry's judged latency as it would be beside an original whose p50 is `referenceMs`:
 * its ratio to the original timed in the same rounds (the median per-round ratio), else its p50
 * scaled by the original's p50 timed beside it, else its p50 as it stands. A candidate timed while
 * something else loaded the box keeps its place (its raw p50 does not), wherever entries are
 * compared: the fit's verdicts and frontier, the agent's steps, the report.
 */
export function rebasedLatency(
  e: { latencyP50Ms: number; latencyP95Ms: number; referenceP50Ms?: number; latencyRatio?: number },
  referenceMs: number | null | undefined,
): number {
  if (!referenceMs || !(referenceMs > 0)) return latencyOf(e);
  if (e.latencyRatio !== undefined && e.latencyRatio > 0) return e.latencyRatio * referenceMs;
  if (e.referenceP50Ms && e.referenceP50Ms > 0) return (latencyOf(e) * referenceMs) / e.referenceP50Ms;
  return latencyOf(e);
}

/** The judged latency of a set of timed runs (a live probe, an evaluation). */
export function latencyOfRuns(s: { p50: number; p95: number }): number {
  return s.p50;
}

/**
 * Each budget's range, one table: every budget is a positive number up to its maximum (a latency
 * of -1 ms or a fidelity floor of 0 is no budget at all; issue 20). The schema (agent config,
 * set-budget, fit commands) and checkBudgets (the CLI's flags) are both made from it.
 */
export const BUDGET_MAX = {
  latencyMs: 3_600_000,
  latencyFactor: 10,
  ramMb: 1_048_576,
  minFidelity: 1,
  sizeMb: 1_048_576,
} as const satisfies Record<keyof Budgets, number>;

/** What each budget is called to a user, and the option that sets it (a remedy: the flag or config key). */
const BUDGET_NAMES = {
  latencyMs: { what: 'the latency budget (ms)', option: 'latencyMs' },
  latencyFactor: { what: 'the relative latency budget', option: 'latency' },
  ramMb: { what: 'the RAM budget (MB)', option: 'ramMb' },
  minFidelity: { what: 'the fidelity floor', option: 'minFidelity' },
  sizeMb: { what: 'the size budget (MB)', option: 'sizeMb' },
} as const satisfies Record<keyof Budgets, { what: string; option: OptionName }>;

const range = (max: number) => ({ type: 'number', exclusiveMinimum: 0, maximum: max }) as const;

/** The one JSON Schema of Budgets; every field of the type is here (checked by `satisfies`). */
export const budgetsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    latencyMs: range(BUDGET_MAX.latencyMs),
    latencyFactor: range(BUDGET_MAX.latencyFactor),
    ramMb: range(BUDGET_MAX.ramMb),
    minFidelity: range(BUDGET_MAX.minFidelity),
    sizeMb: range(BUDGET_MAX.sizeMb),
  } satisfies Record<keyof Budgets, object>,
  // an absolute and a relative latency budget at once would be ambiguous
  not: { required: ['latencyMs', 'latencyFactor'] },
} as const;

/**
 * `b` when every budget given is a finite number in (0, max] (BUDGET_MAX): a usage error naming
 * the budget and its option otherwise. For budgets that do not come through the schema (CLI flags:
 * yargs turns `--latency-ms abc` into NaN).
 */
export function checkBudgets<T extends Budgets>(b: T): T {
  for (const k of Object.keys(BUDGET_MAX) as Array<keyof Budgets>) {
    const v = b[k];
    if (v === undefined) continue;
    const max = BUDGET_MAX[k];
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= max))
      throw new EdgefitError('USAGE', `${BUDGET_NAMES[k].what} must be above 0 and at most ${max}, got ${v}`, {
        remedy: { option: BUDGET_NAMES[k].option },
      });
  }
  return b;
}

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
