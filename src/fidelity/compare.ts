// Compare a candidate's outputs with a reference's over samples, for named metrics (metrics.ts).
// One accumulator serves every caller: eval and fit pool each output over all samples, prune's
// report averages per sample, quantize takes each sample's worst output and averages or takes the
// minimum. Samples are added one at a time, so a caller that runs the candidate sample by sample
// holds one candidate output at a time.
import { EdgefitError } from '../errors.js';
import { METRICS, type Aggregate, type MetricDef, type MetricName, type OutputTensor } from './metrics.js';

/** The outputs of one sample, by output name. */
export type Outputs = Readonly<Record<string, OutputTensor>>;

export interface MetricRequest {
  metric: MetricName;
  /** Aggregation over samples (default: the metric's own). */
  over?: Aggregate;
  /** Outputs it applies to (default: all compared outputs). */
  outputs?: readonly string[];
}

export interface MetricResult {
  metric: MetricName;
  over: Aggregate;
  /** pooled: the worst output's pooled figure; else the aggregate over samples of each sample's worst output. */
  value: number;
  /** Each output's own figure under the same aggregation. */
  perOutput: { name: string; value: number }[];
  /** Each sample's figure: its worst output. */
  perSample: number[];
}

export interface Comparison {
  samples: number;
  /** Samples on which the candidate put out NaN or infinity where the reference did not (each result is then its worst). */
  broken: number;
  results: MetricResult[];
}

/** Same dtype and bytes: a model equal to its reference bit for bit scores each metric's best, NaNs included. */
function sameBits(a: OutputTensor['data'], b: OutputTensor['data']): boolean {
  if (a.constructor !== b.constructor || a.byteLength !== b.byteLength) return false;
  return Buffer.compare(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/**
 * A NaN figure is a failing one (issue 20): every comparison (x < floor, x >= floor) is false for
 * NaN, so a NaN fidelity once passed quantize's floor unnoticed. A metric's NaN becomes its worst.
 */
export function finiteOr(v: number, worst: number): number {
  return Number.isNaN(v) ? worst : v;
}

/** Whether `got` holds a NaN or infinity where `ref` is finite (or anywhere, when `ref` has none and their sizes differ). */
function introducesNonFinite(ref: OutputTensor['data'], got: OutputTensor['data']): boolean {
  if (ref.length !== got.length) return got.some((x) => !Number.isFinite(x)) && ref.every((x) => Number.isFinite(x));
  for (let i = 0; i < got.length; i++) if (!Number.isFinite(got[i]!) && Number.isFinite(ref[i]!)) return true;
  return false;
}

/**
 * Whether a candidate's outputs are broken on this sample: some output has a NaN or infinity the
 * reference does not. Such a candidate fails whatever the metric (a detector's NaN map finds no
 * boxes, which on an image without text would score a perfect box F1).
 */
export function outputsBroken(ref: Outputs, got: Outputs): boolean {
  return Object.entries(ref).some(([name, a]) => {
    const b = got[name];
    return b !== undefined && introducesNonFinite(a.data, b.data);
  });
}

const worstOf = (d: MetricDef, xs: readonly number[]): number => (d.best > d.worst ? Math.min(...xs) : Math.max(...xs));

function aggregate(over: Exclude<Aggregate, 'pooled'>, xs: readonly number[]): number {
  if (over === 'mean') return xs.reduce((s, x) => s + x, 0) / xs.length;
  return over === 'min' ? xs.reduce((m, x) => Math.min(m, x), Infinity) : xs.reduce((m, x) => Math.max(m, x), -Infinity);
}

interface Track {
  req: Required<Pick<MetricRequest, 'metric' | 'over'>> & { outputs: readonly string[] | undefined };
  def: MetricDef;
  /** Per output: pooled statistics, whether every sample was identical, and each sample's figure. */
  pooled: Map<string, number[]>;
  identical: Map<string, boolean>;
  values: Map<string, number[]>;
}

export class FidelityAccumulator {
  private readonly tracks: Track[];
  private names: readonly string[] | undefined;
  private n = 0;
  /** Samples on which the candidate put out NaN or infinity where the reference did not (their index). */
  private readonly broken = new Set<number>();

  /** `outputs` fixes which outputs are compared and their order (default: the first reference sample's). */
  constructor(requests: readonly MetricRequest[], outputs?: readonly string[]) {
    this.names = outputs;
    this.tracks = requests.map((r) => {
      const def: MetricDef = METRICS[r.metric];
      if (!def) throw new EdgefitError('INTERNAL', `no fidelity metric '${String(r.metric)}'`);
      return {
        req: { metric: r.metric, over: r.over ?? def.over, outputs: r.outputs },
        def,
        pooled: new Map(),
        identical: new Map(),
        values: new Map(),
      };
    });
  }

  /** One sample: the reference's outputs and the candidate's, on the same inputs. */
  add(ref: Outputs, got: Outputs): void {
    const names = (this.names ??= Object.keys(ref));
    const same = new Map<string, boolean>();
    for (const name of new Set([...names, ...this.tracks.flatMap((t) => t.req.outputs ?? [])])) {
      const a = ref[name];
      const b = got[name];
      if (!a || !b) throw new EdgefitError('EVAL', `output '${name}' missing from ${b ? 'the reference' : 'the model'}'s results`);
      if (a.dims.join('x') !== b.dims.join('x') || a.data.length !== b.data.length) {
        throw new EdgefitError('EVAL', `output '${name}' has shape ${shape(b.dims)} but the reference's is ${shape(a.dims)}`);
      }
      same.set(name, sameBits(a.data, b.data));
    }
    if (outputsBroken(ref, got)) this.broken.add(this.n);
    for (const t of this.tracks) {
      for (const name of t.req.outputs ?? names) {
        const a = ref[name]!,
          b = got[name]!;
        const s = t.def.stats(a.data, b.data, a.dims);
        const p = t.pooled.get(name);
        if (!p) t.pooled.set(name, s);
        else for (let i = 0; i < s.length; i++) p[i] = t.def.combine === 'max' ? Math.max(p[i]!, s[i]!) : p[i]! + s[i]!;
        const eq = same.get(name) ?? false;
        t.identical.set(name, (t.identical.get(name) ?? true) && eq);
        const v = t.values.get(name) ?? [];
        v.push(eq ? t.def.best : finiteOr(t.def.value(s), t.def.worst));
        t.values.set(name, v);
      }
    }
    this.n++;
  }

  result(): Comparison {
    const results = this.tracks.map((t): MetricResult => {
      const { metric, over } = t.req;
      const names = t.req.outputs ?? this.names ?? [];
      const perSample: number[] = [];
      for (let s = 0; s < this.n; s++)
        perSample.push(
          this.broken.has(s)
            ? t.def.worst
            : worstOf(
                t.def,
                names.map((o) => t.values.get(o)![s]!),
              ),
        );
      // no samples or no outputs: nothing differs
      if (this.n === 0 || names.length === 0) {
        return {
          metric,
          over,
          value: t.def.best,
          perOutput: names.map((name) => ({ name, value: t.def.best })),
          perSample: perSample.map(() => t.def.best),
        };
      }
      const perOutput = names.map((name) => ({
        name,
        value:
          over === 'pooled'
            ? t.identical.get(name)
              ? t.def.best
              : finiteOr(t.def.value(t.pooled.get(name)!), t.def.worst)
            : aggregate(over, t.values.get(name)!),
      }));
      const value =
        over === 'pooled'
          ? worstOf(
              t.def,
              perOutput.map((p) => p.value),
            )
          : aggregate(over, perSample);
      // a candidate that put out NaN or infinity on any sample fails outright, whatever the rest scored
      return { metric, over, value: this.broken.size ? t.def.worst : finiteOr(value, t.def.worst), perOutput, perSample };
    });
    return { samples: this.n, broken: this.broken.size, results };
  }
}

function shape(dims: readonly number[]): string {
  return dims.length ? dims.join('x') : 'scalar';
}

/** Compare sample by sample (`ref[i]` and `got[i]` come from the same inputs). */
export function compareSamples(
  ref: readonly Outputs[],
  got: readonly Outputs[],
  requests: readonly MetricRequest[],
  outputs?: readonly string[],
): Comparison {
  if (ref.length !== got.length) throw new EdgefitError('INTERNAL', `compare: ${got.length} vs ${ref.length} samples`);
  const acc = new FidelityAccumulator(requests, outputs);
  for (let i = 0; i < ref.length; i++) acc.add(ref[i]!, got[i]!);
  return acc.result();
}

/** The one figure of a single request. */
export function compareOne(ref: readonly Outputs[], got: readonly Outputs[], request: MetricRequest, outputs?: readonly string[]): number {
  return compareSamples(ref, got, [request], outputs).results[0]!.value;
}
