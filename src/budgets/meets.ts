// Judging a measurement against budgets: which budgets fail and by how much. The search, the
// reference-only fitter, the agent's metrics and run-time step-down, and the dashboard's
// violation sort all ask this one function, so "meets the budget" means the same everywhere.
import { latencyBudgetMs, type Budgets } from './budgets.js';

/** What was measured, in budget units; absent or null = not measured (that budget is not judged). */
export interface Measurement {
  /** The judged latency statistic (latencyOf / latencyOfRuns), ms. */
  latencyMs?: number | null;
  ramMb?: number | null;
  fidelity?: number | null;
  /** Compressed (gzip) size, MB. */
  sizeMb?: number | null;
}

export const BUDGET_KEYS = ['latency', 'ram', 'fidelity', 'size'] as const;
export type BudgetKey = (typeof BUDGET_KEYS)[number];

/** By how much each failing budget is missed, in its own unit (fidelity: how far below the floor). */
export interface Shortfall {
  latencyMs?: number;
  ramMb?: number;
  fidelity?: number;
  sizeMb?: number;
}

export interface Verdict {
  /** true when no judged budget fails. */
  ok: boolean;
  /** Per budget: met, missed, or null when there is no such budget or nothing was measured. */
  met: Record<BudgetKey, boolean | null>;
  /** Absolute miss of each failing budget. */
  shortfall: Shortfall;
  /** Miss of each budget relative to the budget (0.25 = 25 % over; 0 when met or not judged). */
  relative: Record<BudgetKey, number>;
}

const has = (x: number | null | undefined): x is number => x !== undefined && x !== null;

/**
 * Judge `m` against `b`. A relative latency budget is resolved against `originalMs`, the original
 * model's measured latency (same statistic); without it a relative budget is not judged.
 */
export function meets(m: Measurement, b: Budgets, originalMs?: number | null): Verdict {
  const met: Verdict['met'] = { latency: null, ram: null, fidelity: null, size: null };
  const relative: Verdict['relative'] = { latency: 0, ram: 0, fidelity: 0, size: 0 };
  const shortfall: Shortfall = {};
  const limit = latencyBudgetMs(b, originalMs);
  if (limit !== null && has(m.latencyMs)) {
    met.latency = m.latencyMs <= limit;
    if (!met.latency) {
      shortfall.latencyMs = m.latencyMs - limit;
      relative.latency = m.latencyMs / limit - 1;
    }
  }
  if (b.ramMb !== undefined && has(m.ramMb)) {
    met.ram = m.ramMb <= b.ramMb;
    if (!met.ram) {
      shortfall.ramMb = m.ramMb - b.ramMb;
      relative.ram = m.ramMb / b.ramMb - 1;
    }
  }
  if (b.minFidelity !== undefined && has(m.fidelity)) {
    met.fidelity = m.fidelity >= b.minFidelity;
    if (!met.fidelity) {
      shortfall.fidelity = b.minFidelity - m.fidelity;
      relative.fidelity = shortfall.fidelity / Math.max(1e-9, b.minFidelity);
    }
  }
  if (b.sizeMb !== undefined && has(m.sizeMb)) {
    met.size = m.sizeMb <= b.sizeMb;
    if (!met.size) {
      shortfall.sizeMb = m.sizeMb - b.sizeMb;
      relative.size = m.sizeMb / b.sizeMb - 1;
    }
  }
  return { ok: !Object.values(met).includes(false), met, shortfall, relative };
}
