// Run-time adaptation along a stored frontier (index 0 = largest, last = smallest/fastest).
// N probes in a row over the latency budget -> one step smaller. Stepping back up is predicted:
// the upper entry's latency is estimated by scaling the current live latency by the fit-time ratio
// between the two, and M probes in a row must predict it fits within budget * headroom. Latency is
// src/budgets' one statistic (the p50) throughout, as in the search that built the frontier.
import { latencyOf, meets } from '../budgets/index.js';
import type { FrontierEntry } from '../fit/types.js';

export type StepDecision = { kind: 'stay' } | { kind: 'down'; to: number } | { kind: 'up'; to: number };

export class Adaptation {
  private over = 0;
  private under = 0;

  constructor(
    private readonly stepDownAfter: number,
    private readonly stepUpAfter: number,
    private readonly headroom: number,
  ) {}

  /** A run of over-budget probes has started (but not yet reached stepDownAfter). */
  get confirming(): boolean {
    return this.over > 0;
  }

  reset(): void {
    this.over = 0;
    this.under = 0;
  }

  /**
   * `live` is the probe's judged latency (latencyOfRuns); `chosen` is the fit's choice: we never
   * step above it (it is what the budgets asked for).
   */
  observe(live: number, budgetMs: number | null, frontier: readonly FrontierEntry[], level: number, chosen: number): StepDecision {
    if (budgetMs === null || frontier.length < 2) return { kind: 'stay' };
    if (meets({ latencyMs: live }, { latencyMs: budgetMs }).met.latency === false) {
      this.under = 0;
      this.over++;
      if (this.over >= this.stepDownAfter && level < frontier.length - 1) {
        this.over = 0;
        return { kind: 'down', to: level + 1 };
      }
      return { kind: 'stay' };
    }
    this.over = 0;
    if (level > chosen) {
      const cur = frontier[level]!;
      const up = frontier[level - 1]!;
      const predicted = latencyOf(cur) > 0 ? live * (latencyOf(up) / latencyOf(cur)) : Infinity;
      if (predicted <= budgetMs * this.headroom) {
        this.under++;
        if (this.under >= this.stepUpAfter) {
          this.under = 0;
          return { kind: 'up', to: level - 1 };
        }
      } else {
        this.under = 0;
      }
    }
    return { kind: 'stay' };
  }
}
