// Latency statistics. Percentiles interpolate linearly between order statistics (numpy's
// default), so p50 of an even count is the mean of the middle two.
import type { LatencyStats } from './types.js';

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * p;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function mean(xs: readonly number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

/** Sample coefficient of variation (n-1 denominator); 0 for a single value. */
export function cv(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  const v = xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1);
  return m === 0 ? 0 : Math.sqrt(v) / m;
}

export function latencyStats(times: readonly number[]): LatencyStats {
  const s = [...times].sort((a, b) => a - b);
  return {
    p50: percentile(s, 0.5),
    p95: percentile(s, 0.95),
    p99: percentile(s, 0.99),
    mean: mean(s),
    cv: cv(s),
    min: s[0] ?? NaN,
    max: s[s.length - 1] ?? NaN,
    runs: s.length,
  };
}
