// Budgets come from three layers, later ones winning field by field: the matched board
// profile, the config file, and set-budget commands (persisted). An absolute latency budget
// in a later layer replaces a relative one from an earlier layer, and vice versa.
import type { Budgets } from '../fit/types.js';

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

export function effectiveLatencyMs(b: Budgets, referenceP50: number | null): number | null {
  if (b.latencyMs !== undefined) return b.latencyMs;
  if (b.latencyFactor !== undefined && referenceP50 !== null) return b.latencyFactor * referenceP50;
  return null;
}
