// The small dense linear algebra recovery needs: accumulate normal equations and solve them by
// Cholesky with ridge damping. Systems are at most a few hundred unknowns (one layer's inputs),
// which a Pi solves in well under a second.

/** Normal equations of min ||X W - Y||: A = XᵀX (d x d), B = XᵀY (d x o), yy = Σ y². */
export class NormalEquations {
  readonly A: Float64Array;
  readonly B: Float64Array;
  yy = 0;
  rows = 0;
  constructor(
    readonly d: number,
    readonly o: number,
  ) {
    this.A = new Float64Array(d * d);
    this.B = new Float64Array(d * o);
  }
  /** Add one row x (length d) with target y (length o). */
  add(x: Float64Array, y: Float64Array): void {
    const { d, o, A, B } = this;
    for (let i = 0; i < d; i++) {
      const xi = x[i]!;
      if (xi === 0) continue;
      const ai = i * d;
      for (let j = i; j < d; j++) A[ai + j] += xi * x[j]!;
      const bi = i * o;
      for (let k = 0; k < o; k++) B[bi + k] += xi * y[k]!;
    }
    for (let k = 0; k < o; k++) this.yy += y[k]! * y[k]!;
    this.rows++;
  }
  /** Σ||x W - y||² for a given W (d x o), from the accumulated moments. */
  error(W: Float64Array): number {
    const { d, o, A, B } = this;
    let e = this.yy;
    for (let k = 0; k < o; k++) {
      let quad = 0,
        lin = 0;
      for (let i = 0; i < d; i++) {
        const wi = W[i * o + k]!;
        if (wi === 0) continue;
        lin += wi * B[i * o + k]!;
        quad += wi * wi * A[i * d + i]!;
        let s = 0;
        for (let j = i + 1; j < d; j++) s += A[i * d + j]! * W[j * o + k]!;
        quad += 2 * wi * s;
      }
      e += quad - 2 * lin;
    }
    return e;
  }
  /** Ridge solution W = (A + λI)⁻¹ B with λ = ridge · mean diagonal. Null if not positive definite. */
  solve(ridge = 1e-3): Float64Array | null {
    const { d, o } = this;
    const L = new Float64Array(d * d);
    let tr = 0;
    for (let i = 0; i < d; i++) tr += this.A[i * d + i]!;
    const lam = (ridge * tr) / d + 1e-12;
    for (let i = 0; i < d; i++) {
      for (let j = 0; j <= i; j++) {
        let s = this.A[j * d + i]! + (i === j ? lam : 0); // upper triangle holds the data
        for (let k = 0; k < j; k++) s -= L[i * d + k]! * L[j * d + k]!;
        if (i === j) {
          if (!(s > 0)) return null;
          L[i * d + i] = Math.sqrt(s);
        } else L[i * d + j] = s / L[j * d + j]!;
      }
    }
    const W = new Float64Array(d * o);
    const z = new Float64Array(d);
    for (let k = 0; k < o; k++) {
      for (let i = 0; i < d; i++) {
        let s = this.B[i * o + k]!;
        for (let j = 0; j < i; j++) s -= L[i * d + j]! * z[j]!;
        z[i] = s / L[i * d + i]!;
      }
      for (let i = d - 1; i >= 0; i--) {
        let s = z[i]!;
        for (let j = i + 1; j < d; j++) s -= L[j * d + i]! * W[j * o + k]!;
        W[i * o + k] = s / L[i * d + i]!;
      }
    }
    return W;
  }
}
