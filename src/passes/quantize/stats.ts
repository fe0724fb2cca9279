// Running statistics of one tensor over the calibration set: extremes, and a histogram over a
// symmetric range [-R, R] that doubles when new data falls outside it. Doubling a symmetric
// range with an even bin count merges old bins in exact pairs, so the histogram never needs a
// second pass over the data and never smears counts across bin edges.
export const HIST_BINS = 2048;

export class TensorStats {
  min = Infinity;
  max = -Infinity;
  count = 0;
  /** Half-width of the histogram range; 0 until the first non-zero value. */
  range = 0;
  readonly hist: Float64Array | null;

  constructor(histogram: boolean) {
    this.hist = histogram ? new Float64Array(HIST_BINS) : null;
  }

  add(data: Float32Array): void {
    let lo = this.min;
    let hi = this.max;
    for (let i = 0; i < data.length; i++) {
      const x = data[i]!;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    this.min = lo;
    this.max = hi;
    this.count += data.length;
    const h = this.hist;
    if (!h) return;
    const need = Math.max(Math.abs(lo), Math.abs(hi));
    if (need > 0 && this.range === 0) this.range = need;
    while (need > this.range) this.grow();
    if (this.range === 0) {
      h[HIST_BINS / 2] += data.length;
      return;
    }
    const scale = HIST_BINS / (2 * this.range);
    const top = HIST_BINS - 1;
    for (let i = 0; i < data.length; i++) {
      let b = Math.floor((data[i]! + this.range) * scale);
      if (b > top) b = top;
      else if (b < 0) b = 0;
      h[b]++;
    }
  }

  private grow(): void {
    const h = this.hist!;
    const merged = new Float64Array(HIST_BINS);
    for (let i = 0; i < HIST_BINS; i++) merged[HIST_BINS / 4 + (i >> 1)] += h[i]!;
    h.set(merged);
    this.range *= 2;
  }

  /** Lower edge of bin i. */
  edge(i: number): number {
    return -this.range + (i * 2 * this.range) / HIST_BINS;
  }
}
