// The served-latency window (issue 19): per-version run and total times of the requests answered
// since the last report, and the counts of errors and rejections; what the serve process sends the
// agent as ServeStats (real traffic, not probes, drives adaptation when there is any).
import { percentile } from '../evaluate/stats.js';
import type { ServeStats, VersionStats } from './types.js';

interface Samples {
  level: number | null;
  run: number[];
  total: number[];
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

export class StatsWindow {
  private since = performance.now();
  private readonly perVersion = new Map<string, Samples>();
  private requests = 0;
  private errors = 0;
  private rejected = 0;

  /** One answered request: its version, run time in the worker and total time, ms. */
  served(version: string, level: number | null, runMs: number, totalMs: number): void {
    let s = this.perVersion.get(version);
    if (!s) this.perVersion.set(version, (s = { level, run: [], total: [] }));
    s.run.push(runMs);
    s.total.push(totalMs);
    this.requests++;
  }

  /** A request the model failed (5xx). */
  error(): void {
    this.requests++;
    this.errors++;
  }

  /** A request refused for its input, auth or size (4xx). */
  reject(): void {
    this.requests++;
    this.rejected++;
  }

  /** Anything to report since the last take()? */
  get empty(): boolean {
    return this.requests === 0;
  }

  /** The figures since the last take(), and a fresh window. */
  take(inFlight: number): ServeStats {
    const now = performance.now();
    const perVersion: VersionStats[] = [...this.perVersion].map(([version, s]) => {
      const run = [...s.run].sort((a, b) => a - b);
      const total = [...s.total].sort((a, b) => a - b);
      return {
        version,
        level: s.level,
        requests: run.length,
        runP50Ms: round(percentile(run, 0.5)),
        runP95Ms: round(percentile(run, 0.95)),
        totalP50Ms: round(percentile(total, 0.5)),
        totalP95Ms: round(percentile(total, 0.95)),
      };
    });
    const stats: ServeStats = {
      windowS: round((now - this.since) / 1000),
      requests: this.requests,
      errors: this.errors,
      rejected: this.rejected,
      inFlight,
      perVersion,
    };
    this.since = now;
    this.perVersion.clear();
    this.requests = this.errors = this.rejected = 0;
    return stats;
  }
}
