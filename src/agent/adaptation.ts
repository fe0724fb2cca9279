// Run-time adaptation along a stored frontier (index 0 = largest, last = smallest/fastest).
// N probes in a row over the latency budget -> one step smaller. Stepping back up is predicted:
// the upper entry's latency is estimated by scaling the current live latency by the fit-time ratio
// between the two, and M probes in a row must predict it fits within budget * headroom, or
// predict it within the budget while the current entry runs as fast as the fit measured it: the
// box is as it was when the fit judged the upper entry to meet the budget (a choice within 10 % of
// its budget was otherwise never stepped back up to once a slowdown had passed). A return so made
// that the budget undoes at once doubles the probes the next such return waits for. Latency is
// src/budgets' one statistic (the p50) throughout, as in the search that built the frontier.
// Step-down has a floor: it never moves to an entry whose fidelity is below the budgets'
// minFidelity (issue 16: a fast model that no longer does its job is not a fallback), unless the
// user prefers latency; it skips such entries to a faster one that meets the floor, or stays.
import { meets, rebasedLatency } from '../budgets/index.js';
import type { FrontierEntry } from '../fit/types.js';

export type StepDecision = { kind: 'stay' } | { kind: 'down'; to: number } | { kind: 'up'; to: number };

/** The current entry runs "as fast as the fit measured it" within this fraction (probe noise). */
export const RECOVERED_SLACK = 0.05;
/** Doublings of the wait before a return without headroom, at most (5 probes -> 320 at most). */
const MAX_BACKOFF = 6;

export class Adaptation {
  private over = 0;
  private under = 0;
  /** Observations since the last step up (Infinity: none yet). */
  private sinceUp = Infinity;
  /** Returns without headroom that a step down undid within a few probes: each doubles the next wait. */
  private backoff = 0;

  constructor(
    private readonly stepDownAfter: number,
    private readonly stepUpAfter: number,
    private readonly headroom: number,
  ) {}

  /** A run of over-budget probes has started (but not yet reached stepDownAfter). */
  get confirming(): boolean {
    return this.over > 0;
  }

  /** A deploy happened: counts start over (the back-off stays: it is about this box and frontier). */
  reset(): void {
    this.over = 0;
    this.under = 0;
  }

  /**
   * `live` is the probe's judged latency (latencyOfRuns); `chosen` is the fit's choice: we never
   * step above it (it is what the budgets asked for). `floor` is the lowest fidelity a step down
   * may reach (null: none, as with prefer 'latency'). `referenceMs` is the fit's own p50 of the
   * original: each entry's fit-time latency is re-based on it (rebasedLatency), so an entry the fit
   * timed while the box was loaded does not look slower than it is (a return to the level above it
   * then predicted as roomy when it was not, and "as fast as the fit measured it" held at any speed).
   */
  observe(
    live: number,
    budgetMs: number | null,
    frontier: readonly FrontierEntry[],
    level: number,
    chosen: number,
    floor: number | null = null,
    referenceMs: number | null = null,
  ): StepDecision {
    if (budgetMs === null || frontier.length < 2) return { kind: 'stay' };
    this.sinceUp++;
    if (meets({ latencyMs: live }, { latencyMs: budgetMs }).met.latency === false) {
      this.under = 0;
      this.over++;
      const to = this.below(frontier, level, floor);
      if (this.over >= this.stepDownAfter && to !== null) {
        this.over = 0;
        // back down within a few probes of a return: that return was premature
        if (this.sinceUp <= this.stepDownAfter + this.stepUpAfter) this.backoff = Math.min(MAX_BACKOFF, this.backoff + 1);
        return { kind: 'down', to };
      }
      return { kind: 'stay' };
    }
    this.over = 0;
    let to = level - 1;
    while (to > chosen && floor !== null && !(frontier[to]!.fidelity >= floor)) to--; // steps skip what the floor excludes
    if (level > chosen) {
      const cur = frontier[level]!;
      const up = frontier[to]!;
      const at = (e: FrontierEntry): number => rebasedLatency(e, referenceMs);
      const predicted = at(cur) > 0 ? live * (at(up) / at(cur)) : Infinity;
      const roomy = predicted <= budgetMs * this.headroom;
      const recovered = predicted <= budgetMs && live <= at(cur) * (1 + RECOVERED_SLACK);
      if (roomy || recovered) {
        this.under++;
        const need = roomy ? this.stepUpAfter : this.stepUpAfter * 2 ** this.backoff;
        if (this.under >= need) {
          this.under = 0;
          this.sinceUp = 0;
          return { kind: 'up', to };
        }
      } else {
        this.under = 0;
      }
    }
    return { kind: 'stay' };
  }

  /** The next faster level that keeps the fidelity floor, or null when there is none. */
  private below(frontier: readonly FrontierEntry[], level: number, floor: number | null): number | null {
    for (let i = level + 1; i < frontier.length; i++) if (floor === null || frontier[i]!.fidelity >= floor) return i;
    return null;
  }
}
