// Adam (Kingma & Ba 2015) over Float32Arrays, in TypeScript between onnxruntime steps: the weights
// are re-fed to the training graph each step, so the update is a plain loop over each tensor (a
// few ms for millions of weights; far below a step of the graph). Bias-corrected moments, optional
// decoupled weight decay (AdamW; 0 by default: distillation starts from trained weights), and the
// schedule (linear warm-up, then cosine decay or constant) as a function of training progress.

export interface AdamOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay per step, times the learning rate (AdamW). Default 0. */
  weightDecay?: number;
  /** Per-parameter factors on the learning rate (by name; others 1): TrainSpec.lrFactors. */
  lrFactors?: ReadonlyMap<string, number>;
}

export class Adam {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private t = 0;
  private readonly b1: number;
  private readonly b2: number;
  private readonly eps: number;
  private readonly wd: number;
  private readonly factors: ReadonlyMap<string, number>;

  /** `params` are updated in place by step(). */
  constructor(
    readonly params: ReadonlyMap<string, Float32Array>,
    o: AdamOptions = {},
  ) {
    this.b1 = o.beta1 ?? 0.9;
    this.b2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
    this.wd = o.weightDecay ?? 0;
    this.factors = o.lrFactors ?? new Map();
    for (const [k, p] of params) {
      this.m.set(k, new Float32Array(p.length));
      this.v.set(k, new Float32Array(p.length));
    }
  }

  get steps(): number {
    return this.t;
  }

  /** One update with these gradients (by parameter name; a parameter without one is left alone) at learning rate `lr`. */
  step(grads: ReadonlyMap<string, ArrayLike<number>>, lr: number): void {
    this.t++;
    const { b1, b2, eps, wd } = this;
    // bias correction folded into the step size and epsilon (the paper's "efficient version")
    const c1 = 1 - Math.pow(b1, this.t);
    const c2 = 1 - Math.pow(b2, this.t);
    const e = eps * Math.sqrt(c2);
    for (const [k, p] of this.params) {
      const g = grads.get(k);
      if (!g) continue;
      const a = (lr * (this.factors.get(k) ?? 1) * Math.sqrt(c2)) / c1;
      const m = this.m.get(k)!;
      const v = this.v.get(k)!;
      const decay = 1 - lr * wd;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]!;
        if (!Number.isFinite(gi)) continue;
        const mi = b1 * m[i]! + (1 - b1) * gi;
        const vi = b2 * v[i]! + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i]! * decay - (a * mi) / (Math.sqrt(vi) + e);
      }
    }
  }
}

export type Schedule = 'cosine' | 'constant';

/**
 * The learning rate at `progress` in [0, 1] of the run (the larger of steps done over the step
 * cap and time used over the budget, so a time-bound run still ends its decay at its end): linear
 * warm-up over the first `warmup` of the run (Adam's early moments are noisy and a pruned model's
 * first steps are its largest), then cosine decay to 0 or constant.
 */
export function learningRate(peak: number, progress: number, schedule: Schedule, warmup = 0.05): number {
  const p = Math.min(1, Math.max(0, progress));
  if (p < warmup) return (peak * (p + 1e-3)) / (warmup + 1e-3);
  if (schedule === 'constant') return peak;
  return 0.5 * peak * (1 + Math.cos((Math.PI * (p - warmup)) / (1 - warmup)));
}
