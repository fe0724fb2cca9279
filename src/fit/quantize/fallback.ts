// The --min-fidelity fallback: rank the units that can go back to float (sensitivity.ts), then
// keep the fewest of the most sensitive ones in float that bring the fidelity up to the floor.
import type * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import { judgeName, measureFidelity, type Fidelity, type QuantJudge } from './fidelity.js';
import type { Feeds } from '../../runtime/runner.js';
import { floatSet, type FloatSet } from '../../passes/quantize/plan.js';
import { rankSensitivity, type Ranked, type SensitivityRank } from './sensitivity.js';

export interface FallbackOptions {
  floor: number;
  metric: QuantJudge;
  threads: number;
  /** Samples the ranking probes run on (the floor itself is checked on all fidelity samples). */
  probeSamples?: number;
  /** Most probe sessions the ranking builds (see rankSensitivity). */
  maxProbes?: number;
  onProbe?: (done: number, total: number) => void;
  /** How units are ranked (sensitivity.ts; default 'alone'). */
  rank?: SensitivityRank;
}

export interface FallbackResult<B> {
  built: B;
  fidelity: Fidelity;
  /** Units kept float, most sensitive first. */
  float: string[];
  ranked: Ranked[];
  /** Probe sessions the ranking ran. */
  probes: number;
  /** Float sets tried by the search, with what they measured. */
  tried: { k: number; mean: number; loss: number }[];
}

export async function fallbackToFloat<B extends { bytes: Uint8Array }>(
  units: readonly string[],
  build: (f: FloatSet) => B,
  data: readonly Feeds[],
  reference: readonly Record<string, ort.Tensor>[],
  o: FallbackOptions,
): Promise<FallbackResult<B>> {
  const n = Math.max(1, Math.min(o.probeSamples ?? 2, data.length));
  let probes = 0;
  const ranked = await rankSensitivity(units, (f) => build(f).bytes, data.slice(0, n), reference.slice(0, n), {
    threads: o.threads,
    metric: o.metric,
    maxProbes: o.maxProbes,
    rank: o.rank,
    onProbe: (d, t) => {
      probes = d;
      o.onProbe?.(d, t);
    },
  });
  // a unit whose float form gains nothing alone is tried last: it only adds float work
  const order = [...ranked.filter((r) => r.gain > 0), ...ranked.filter((r) => !(r.gain > 0))].map((r) => r.unit);
  const useful = Math.max(1, ranked.filter((r) => r.gain > 0).length);
  const tried: FallbackResult<B>['tried'] = [];
  const at = async (k: number): Promise<{ b: B; f: Fidelity }> => {
    const b = build(floatSet(order.slice(0, k)));
    const f = await measureFidelity(b.bytes, data, reference, 'all', o.threads, o.metric);
    tried.push({ k, mean: f.mean, loss: f.loss });
    return { b, f };
  };
  // the fewest units (most sensitive first) that meet the floor. Fidelity grows with k only
  // roughly (argmax agreement is a step function and rounding errors partly cancel), so a plain
  // bisection over all units can land on "everything float": grow k geometrically from 1 instead,
  // then bisect between the last k that missed and the first that met the floor.
  // Units that gained nothing alone on the probe samples are not useless together (with
  // data-aware weight rounding most single units sit within noise of the all-int8 model): the
  // growth goes on through them instead of jumping from the useful ones to everything float.
  let found: { k: number; b: B; f: Fidelity } | null = null;
  let lo = 1;
  for (let k = 1; ; k = k < useful ? Math.min(useful, k * 2) : Math.min(order.length, k * 2)) {
    const r = await at(k);
    if (r.f.mean >= o.floor) {
      found = { k, ...r };
      break;
    }
    lo = k + 1;
    if (k >= order.length) break;
  }
  let hi = found ? found.k - 1 : 0;
  while (lo <= hi) {
    const k = (lo + hi) >> 1;
    const r = await at(k);
    if (r.f.mean >= o.floor) {
      found = { k, ...r };
      hi = k - 1;
    } else lo = k + 1;
  }
  if (!found) {
    const best = Math.max(...tried.map((t) => t.mean));
    throw new EdgefitError(
      'OVER_BUDGET',
      `${judgeName(o.metric)} fidelity stays below the floor ${o.floor} (at best ${best.toFixed(4)}) even with every probed unit in float`,
    );
  }
  return { built: found.b, fidelity: found.f, float: order.slice(0, found.k), ranked, probes, tried };
}
