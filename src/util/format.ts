// Figures as users read them. Milliseconds keep two significant digits below 1 ms: a small model's
// 0.05 ms budget printed with toFixed(1) read "budget 0.0 ms, best 0.0 ms" (a miss that looked like none).

/** 123.4 -> '123', 5.43 -> '5.4', 0.0512 -> '0.051'. */
export function ms(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 10 ? x.toFixed(0) : a >= 1 ? x.toFixed(1) : a === 0 ? '0' : x.toPrecision(2);
}
