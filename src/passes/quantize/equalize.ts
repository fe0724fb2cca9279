// Cross-layer range equalization before static quantization (Nagel et al., "Data-Free
// Quantization", with the activation-aware balance of SmoothQuant). onnxruntime's QLinearConv
// takes one scale per activation tensor, so a tensor where a few channels span [-100, 100] while
// most sit within +-10 gives those few channels all 256 levels and the rest a handful. Where the
// tensor is written by a conv and read only by convs, possibly through a Relu, channel i can be
// divided by s_i > 0 in the producer (weight row and bias) and multiplied back in every reader's
// weights for input channel i: exact in float, because conv is linear per channel, zero padding
// stays zero, and Relu(x / s) = Relu(x) / s for s > 0. Hardswish and clips with an upper bound
// are not positively homogeneous, so chains through them are left alone.
import type * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { runPass, type Pass } from '../pass.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { openSession, withExtraOutputs, type Feeds } from '../../runtime/runner.js';

/** Observed extremes of every channel (axis 1) of one NC... tensor. */
export interface ChannelRange {
  lo: Float64Array;
  hi: Float64Array;
}

/** One equalizable site: a conv whose output channels reach only convs' input channels. */
export interface EqualizeSite {
  producer: Node;
  /** The Relu between producer and readers, when there is one. */
  relu: Node | undefined;
  /** The tensor the readers see (quantized per tensor): the Relu's output or the producer's. */
  value: string;
  readers: Node[];
  channels: number;
}

export interface EqualizeReport {
  sites: number;
  /** Per site: the value, and max-over-channels / median-over-channels of |range| before and after. */
  details: { value: string; producer: string; readers: string[]; alpha: number; spreadBefore: number; spreadAfter: number }[];
}

const std = (n: Node): boolean => n.domain === '' || n.domain === 'ai.onnx';

function floatWeight(g: Graph, n: Node): Tensor | undefined {
  const w = g.constant(n.inputs[1] ?? '');
  if (!w || w.dtype !== 'float32' || w.dims.length < 3) return undefined;
  if (n.inputs[2] && g.constant(n.inputs[2])?.dtype !== 'float32') return undefined;
  return w;
}

/** Output channels of a Conv / group-1 ConvTranspose, or undefined when it cannot be a producer. */
function producerChannels(g: Graph, n: Node): number | undefined {
  if (!std(n)) return undefined;
  const w = floatWeight(g, n);
  if (!w) return undefined;
  if (n.opType === 'Conv') return w.dims[0];
  if (n.opType === 'ConvTranspose' && n.attrInt('group', 1) === 1) return w.dims[1];
  return undefined;
}

/** Whether `n` reads `v` as its data input and can take a per-input-channel factor into its weights. */
function canAbsorb(g: Graph, n: Node, v: string, channels: number): boolean {
  if (!std(n) || n.inputs[0] !== v || n.inputs.slice(1).includes(v)) return false;
  const w = floatWeight(g, n);
  if (!w) return false;
  if (n.opType === 'Conv') return w.dims[1]! * n.attrInt('group', 1)! === channels;
  if (n.opType === 'ConvTranspose') return n.attrInt('group', 1) === 1 && w.dims[0] === channels;
  return false;
}

/** Every conv -> [Relu] -> convs site in the graph. */
export function findEqualizeSites(model: Model): EqualizeSite[] {
  const g = model.graph;
  const sites: EqualizeSite[] = [];
  for (const p of g.topoOrder()) {
    const channels = producerChannels(g, p);
    if (channels === undefined || p.outputs.filter(Boolean).length !== 1) continue;
    let value = p.outputs[0]!;
    if (g.isGraphOutput(value)) continue;
    let relu: Node | undefined;
    const first = g.consumers(value);
    if (first.length === 1 && first[0]!.opType === 'Relu' && std(first[0]!)) {
      relu = first[0]!;
      value = relu.outputs[0]!;
      if (g.isGraphOutput(value)) continue;
    }
    const readers = [...g.consumers(value)];
    if (readers.length === 0 || !readers.every((r) => canAbsorb(g, r, value, channels))) continue;
    sites.push({ producer: p, relu, value, readers, channels });
  }
  return sites;
}

/**
 * Per-channel extremes of `values` over `batches`, running the float model with those values as
 * extra outputs (one batch's activations in memory at a time).
 */
export async function collectChannelRanges(
  model: Model,
  values: readonly string[],
  batches: readonly Feeds[],
  threads = 2,
): Promise<Map<string, ChannelRange>> {
  if (batches.length === 0) throw new EdgefitError('DATA', 'equalization needs calibration data');
  const s = await openSession(withExtraOutputs(model, values), { threads, level: 'basic' });
  const out = new Map<string, ChannelRange>();
  try {
    for (const f of batches) {
      const res = await s.run(f);
      for (const v of values) {
        const t = res[v] as ort.Tensor | undefined;
        if (!t || t.type !== 'float32' || t.dims.length < 2) continue;
        const n = t.dims[0]!;
        const c = t.dims[1]!;
        const inner = t.dims.slice(2).reduce((a, b) => a * b, 1);
        let r = out.get(v);
        if (!r) out.set(v, (r = { lo: new Float64Array(c).fill(Infinity), hi: new Float64Array(c).fill(-Infinity) }));
        const d = t.data as Float32Array;
        for (let b = 0; b < n; b++) {
          for (let ch = 0; ch < c; ch++) {
            let lo = r.lo[ch]!;
            let hi = r.hi[ch]!;
            const base = (b * c + ch) * inner;
            for (let i = base; i < base + inner; i++) {
              const x = d[i]!;
              if (x < lo) lo = x;
              if (x > hi) hi = x;
            }
            r.lo[ch] = lo;
            r.hi[ch] = hi;
          }
        }
      }
    }
  } finally {
    await s.release();
  }
  return out;
}

/** Largest |value| per channel (0 for a channel never seen). */
function channelAbs(r: ChannelRange): Float64Array {
  return Float64Array.from(r.lo, (lo, c) => (Number.isFinite(lo) ? Math.max(Math.abs(lo), Math.abs(r.hi[c]!)) : 0));
}

/** max / median of per-channel |range|: 1 is perfectly even, PP-OCR det has tensors at 7-11. */
export function rangeSpread(abs: ArrayLike<number>): number {
  const a = Array.from(abs)
    .filter((x) => x > 0)
    .sort((x, y) => x - y);
  if (a.length === 0) return 1;
  return a[a.length - 1]! / a[a.length >> 1]!;
}

function setWeight(g: Graph, n: Node, idx: number, data: Float32Array, dims: readonly number[], suffix: string): void {
  const name = g.uniqueName(`${n.inputs[idx] || n.outputs[0]}_${suffix}`);
  g.setInitializer(Tensor.fromFloat32(name, dims, data));
  while (n.inputs.length <= idx) n.inputs.push('');
  n.inputs[idx] = name;
}

/** Per input channel of `n`'s data input: largest |weight| reading it. */
export function inputChannelAbs(g: Graph, n: Node, channels: number): Float64Array {
  const w = g.constant(n.inputs[1]!)!;
  const d = w.toFloat32();
  const out = new Float64Array(channels);
  const k = w.dims.slice(2).reduce((a, b) => a * b, 1);
  if (n.opType === 'Conv') {
    const [cout, cpg] = [w.dims[0]!, w.dims[1]!];
    const groups = n.attrInt('group', 1)!;
    const opg = cout / groups;
    for (let o = 0; o < cout; o++) {
      const gi = Math.floor(o / opg);
      for (let j = 0; j < cpg; j++) {
        const c = gi * cpg + j;
        for (let i = (o * cpg + j) * k; i < (o * cpg + j + 1) * k; i++) out[c] = Math.max(out[c]!, Math.abs(d[i]!));
      }
    }
  } else {
    const per = d.length / channels; // ConvTranspose [Cin, Cout, ...]: input channel is axis 0
    for (let c = 0; c < channels; c++) for (let i = c * per; i < (c + 1) * per; i++) out[c] = Math.max(out[c]!, Math.abs(d[i]!));
  }
  return out;
}

/** Multiply input channel c of reader `n` by s[c] (weights only: the bias is per output channel). */
function scaleInputChannels(g: Graph, n: Node, s: Float64Array): void {
  const w = g.constant(n.inputs[1]!)!;
  const d = Float32Array.from(w.toFloat32());
  const k = w.dims.slice(2).reduce((a, b) => a * b, 1);
  if (n.opType === 'Conv') {
    const [cout, cpg] = [w.dims[0]!, w.dims[1]!];
    const opg = cout / n.attrInt('group', 1)!;
    for (let o = 0; o < cout; o++) {
      const gi = Math.floor(o / opg);
      for (let j = 0; j < cpg; j++) {
        const f = s[gi * cpg + j]!;
        for (let i = (o * cpg + j) * k; i < (o * cpg + j + 1) * k; i++) d[i]! *= f;
      }
    }
  } else {
    const per = d.length / s.length;
    for (let c = 0; c < s.length; c++) for (let i = c * per; i < (c + 1) * per; i++) d[i]! *= s[c]!;
  }
  setWeight(g, n, 1, d, w.dims, 'eq_in');
}

/** Divide output channel c of producer `n` (weights and bias) by s[c]. */
function scaleOutputChannels(g: Graph, n: Node, s: Float64Array): void {
  const w = g.constant(n.inputs[1]!)!;
  const d = Float32Array.from(w.toFloat32());
  if (n.opType === 'Conv') {
    const per = d.length / s.length;
    for (let c = 0; c < s.length; c++) for (let i = c * per; i < (c + 1) * per; i++) d[i]! /= s[c]!;
  } else {
    // ConvTranspose [Cin, Cout, k...]: output channel is axis 1
    const k = w.dims.slice(2).reduce((a, b) => a * b, 1);
    const cout = s.length;
    for (let i = 0; i < d.length; i++) d[i]! /= s[Math.floor(i / k) % cout]!;
  }
  setWeight(g, n, 1, d, w.dims, 'eq_out');
  if (n.inputs[2]) {
    const b = Float32Array.from(g.constant(n.inputs[2])!.toFloat32(), (x, c) => x / s[c]!);
    setWeight(g, n, 2, b, [s.length], 'eq_out');
  }
}

/** A Conv reading one input channel per output channel (group == channels): per-channel weights absorb any input scale. */
function isDepthwise(g: Graph, n: Node, channels: number): boolean {
  const w = g.constant(n.inputs[1] ?? '');
  return n.opType === 'Conv' && n.attrInt('group', 1) === channels && !!w && w.dims[1] === 1 && w.dims[0] === channels;
}

export interface EqualizeOptions {
  /**
   * How much of the activation range moves into the readers' weights (SmoothQuant's alpha):
   * s = a^alpha / w^(1 - alpha). 0.5 balances activation and weight ranges; readers that stay
   * float (ConvTranspose has no int8 kernel here) or depthwise (per-channel weights on the same
   * axis) take all of it (alpha 1: every channel then spans the same range).
   */
  alpha?: number;
  /** Readers whose weights will not be quantized (op types). */
  floatReaders?: ReadonlySet<string>;
  /** Sites already even enough (max/median below this) are left alone. */
  minSpread?: number;
}

/**
 * Equalize every site whose channel ranges are known, in place. `ranges` are per-channel extremes
 * of each site's value measured on this model before the rewrite (collectChannelRanges).
 */
export function equalizeSites(
  model: Model,
  sites: readonly EqualizeSite[],
  ranges: ReadonlyMap<string, ChannelRange>,
  o: EqualizeOptions = {},
): EqualizeReport {
  const g = model.graph;
  const alpha0 = o.alpha ?? 0.5;
  const floatReaders = o.floatReaders ?? new Set(['ConvTranspose']);
  const report: EqualizeReport = { sites: 0, details: [] };
  for (const site of sites) {
    const r = ranges.get(site.value);
    if (!r || r.lo.length !== site.channels) continue;
    const a = channelAbs(r);
    const spreadBefore = rangeSpread(a);
    if (spreadBefore < (o.minSpread ?? 1.5)) continue;
    // a depthwise reader quantizes its weights per channel on the very axis s scales, so moving
    // the whole range into it costs its weights nothing: such sites get every channel the same range
    const allFloat = site.readers.every((n) => floatReaders.has(n.opType) || isDepthwise(g, n, site.channels));
    const alpha = allFloat ? 1 : alpha0;
    const w = new Float64Array(site.channels);
    for (const n of site.readers) {
      const wi = inputChannelAbs(g, n, site.channels);
      for (let c = 0; c < site.channels; c++) w[c] = Math.max(w[c]!, wi[c]!);
    }
    const amax = Math.max(...a);
    const s = new Float64Array(site.channels);
    for (let c = 0; c < site.channels; c++) {
      // a dead channel (never non-zero) or one no reader uses keeps its scale
      if (!(a[c]! > 0) || (!allFloat && !(w[c]! > 0))) {
        s[c] = 1;
        continue;
      }
      s[c] = allFloat ? a[c]! / amax : Math.pow(a[c]!, alpha) / Math.pow(w[c]!, 1 - alpha);
    }
    // one common factor leaves the balance unchanged; keep the tensor's largest channel where it was
    let top = 0;
    for (let c = 1; c < site.channels; c++) if (a[c]! > a[top]!) top = c;
    const norm = s[top]!;
    for (let c = 0; c < site.channels; c++) {
      const v = s[c]! / norm;
      s[c] = Number.isFinite(v) && v > 0 ? v : 1;
    }
    scaleOutputChannels(g, site.producer, s);
    for (const n of site.readers) scaleInputChannels(g, n, s);
    const after = Float64Array.from(a, (x, c) => x / s[c]!);
    report.sites++;
    report.details.push({
      value: site.value,
      producer: site.producer.name || site.producer.outputs[0]!,
      readers: site.readers.map((n) => n.name || n.outputs[0]!),
      alpha,
      spreadBefore,
      spreadAfter: rangeSpread(after),
    });
  }
  g.touch();
  return report;
}

/** Measure the sites' channel ranges on `batches` and equalize them (the whole pass). */
export async function equalizeRanges(
  model: Model,
  batches: readonly Feeds[],
  o: EqualizeOptions & { threads?: number } = {},
): Promise<EqualizeReport> {
  const sites = findEqualizeSites(model);
  if (sites.length === 0) return { sites: 0, details: [] };
  const ranges = await collectChannelRanges(
    model,
    sites.map((s) => s.value),
    batches,
    o.threads,
  );
  return runPass(equalizePass, model, { ...o, sites, ranges }).details;
}

/** The rewrite itself, on sites and ranges measured beforehand (equalizeRanges measures them). */
export const equalizePass: Pass<
  EqualizeOptions & { sites: readonly EqualizeSite[]; ranges: ReadonlyMap<string, ChannelRange> },
  EqualizeReport
> = {
  name: 'equalize',
  requires: ['valid-graph'],
  guarantees: ['stays-valid', 'outputs-kept'],
  run(model, o) {
    const r = equalizeSites(model, o.sites, o.ranges, o);
    return { changed: r.sites > 0, details: r };
  },
};
