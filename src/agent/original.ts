// The original model's latency as timed live on this box (issue 16). On a first run the agent
// deploys the original at once and times it with the fit's protocol before any fit result is
// deployed; relative budgets ('0.5x') are then judged against 0.5 x this figure, so one model's
// latency means the same number in the fit, the probe, the metrics and the dashboard. Kept in
// the store's kv, keyed by the model's sha256 and the thread count it was timed at.
import type { Store } from '../store/index.js';
import type { LatencyStats } from './latency.js';

const KEY = 'original-live';

interface Timed {
  sha256: string;
  threads: number | null;
  p50: number;
  p95: number;
  runs: number;
  ts: string;
}

export class OriginalTiming {
  constructor(
    private readonly store: Store,
    private readonly sha256: string,
    private readonly threads: () => number | null,
  ) {}

  /** The live p50 of this original at the current thread count, null when not timed. */
  p50(): number | null {
    const raw = this.store.getKv(KEY);
    if (!raw) return null;
    try {
      const t = JSON.parse(raw) as Timed;
      return t.sha256 === this.sha256 && t.threads === this.threads() && t.p50 > 0 ? t.p50 : null;
    } catch {
      return null;
    }
  }

  record(s: LatencyStats): void {
    const t: Timed = { sha256: this.sha256, threads: this.threads(), p50: s.p50, p95: s.p95, runs: s.runs, ts: new Date().toISOString() };
    this.store.setKv(KEY, JSON.stringify(t));
  }
}
