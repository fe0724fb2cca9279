// Channel splitting before static quantization: where a conv's output channels have ranges far
// apart and the path to the next channel-mixing conv runs through hardswish (which no per-channel
// rescaling passes exactly, see equalize.ts), the conv and everything channel-wise after it are
// duplicated per group of channels (narrow ones, wide ones), each copy quantized with its own
// scale, and the groups are concatenated just before the mixing conv, whose input-channel weights
// are permuted to the new order. Exact in float: every duplicated node works channel by channel.
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import type { ChannelRange } from './equalize.js';

const std = (n: Node): boolean => n.domain === '' || n.domain === 'ai.onnx';
const UNARY = new Set(['Relu', 'Clip', 'HardSigmoid', 'HardSwish', 'Sigmoid']);
const BINARY = new Set(['Add', 'Mul', 'Sub', 'Div']);

export interface SplitSite {
  producer: Node;
  /** Channel-wise nodes after the producer, in topological order. */
  region: Node[];
  /** Group-1 convs reading a region value: their input channels get permuted. */
  boundary: Node[];
  channels: number;
}

export interface SplitReport {
  sites: number;
  details: { value: string; producer: string; spread: number; groups: number[]; rangeBefore: number; rangesAfter: number[] }[];
}

function isScalarConst(g: Graph, v: string | undefined): boolean {
  const t = v ? g.constant(v) : undefined;
  return !!t && t.dtype === 'float32' && t.size === 1;
}

/** The channel-wise region after `p` (group-1 Conv) up to group-1 convs, or undefined when it leaks elsewhere. */
export function findSplitSite(g: Graph, p: Node): SplitSite | undefined {
  if (!std(p) || p.opType !== 'Conv' || p.attrInt('group', 1) !== 1) return undefined;
  const w = g.constant(p.inputs[1] ?? '');
  if (!w || w.dtype !== 'float32' || (p.inputs[2] && g.constant(p.inputs[2])?.dtype !== 'float32')) return undefined;
  const channels = w.dims[0]!;
  const inRegion = new Set<string>([p.outputs[0]!]);
  const region = new Set<Node>();
  const boundary = new Set<Node>();
  const order = g.topoOrder();
  const pos = new Map(order.map((n, i) => [n, i]));
  for (const n of order.slice(pos.get(p)! + 1)) {
    const reads = n.inputs.filter((v) => v && inRegion.has(v));
    if (reads.length === 0) continue;
    if (!std(n) || n.outputs.filter(Boolean).length !== 1) return undefined;
    const consts = n.inputs.filter((v) => v && !inRegion.has(v));
    let ok = false;
    if (UNARY.has(n.opType)) ok = n.inputs[0] !== undefined && inRegion.has(n.inputs[0]) && consts.every((v) => isScalarConst(g, v));
    else if (BINARY.has(n.opType)) ok = n.inputs.length === 2 && consts.every((v) => isScalarConst(g, v));
    else if (n.opType === 'Conv') {
      const cw = g.constant(n.inputs[1] ?? '');
      const grp = n.attrInt('group', 1)!;
      const biasOk = !n.inputs[2] || g.constant(n.inputs[2])?.dtype === 'float32';
      if (cw && cw.dtype === 'float32' && biasOk && n.inputs[0] && inRegion.has(n.inputs[0]) && reads.length === 1) {
        if (grp === channels && cw.dims[0] === channels && cw.dims[1] === 1)
          ok = true; // depthwise: channel-wise
        else if (grp === 1 && cw.dims[1] === channels) {
          boundary.add(n);
          continue;
        }
      }
    }
    if (!ok) return undefined;
    region.add(n);
    inRegion.add(n.outputs[0]!);
  }
  for (const v of inRegion) if (g.isGraphOutput(v)) return undefined;
  if (boundary.size === 0) return undefined;
  return { producer: p, region: [...region], boundary: [...boundary], channels };
}

/** Two groups of channel indices by |range|, minimising sum over channels of (its group's range)^2. */
export function chooseGroups(abs: ArrayLike<number>): number[][] {
  const idx = Array.from(abs, (_, i) => i).sort((a, b) => abs[a]! - abs[b]!);
  const top = abs[idx[idx.length - 1]!]!;
  let best = idx.length;
  let bestCost = idx.length * top * top;
  for (let k = 1; k < idx.length; k++) {
    const lo = abs[idx[k - 1]!]!;
    const cost = k * lo * lo + (idx.length - k) * top * top;
    if (cost < bestCost) {
      bestCost = cost;
      best = k;
    }
  }
  if (best === idx.length) return [idx.sort((a, b) => a - b)];
  return [idx.slice(0, best).sort((a, b) => a - b), idx.slice(best).sort((a, b) => a - b)];
}

function sliceRows(t: Tensor, rows: readonly number[], name: string): Tensor {
  const d = t.toFloat32();
  const per = d.length / t.dims[0]!;
  const out = new Float32Array(rows.length * per);
  rows.forEach((r, i) => out.set(d.subarray(r * per, (r + 1) * per), i * per));
  return Tensor.fromFloat32(name, [rows.length, ...t.dims.slice(1)], out);
}

/** Split one site into `groups` (channel indices of the producer's output), in place. */
export function splitSite(model: Model, site: SplitSite, groups: readonly number[][]): void {
  const g = model.graph;
  const concatOf = new Map<string, string[]>(); // region value -> its per-group copies
  const add = (v: string, k: number, copy: string): void => {
    let a = concatOf.get(v);
    if (!a) concatOf.set(v, (a = []));
    a[k] = copy;
  };
  const clone = (n: Node, k: number, rows: readonly number[], inputs: string[]): Node => {
    const ins = [...inputs];
    if (n.opType === 'Conv') {
      for (const i of [1, 2]) {
        if (!ins[i]) continue;
        const t = g.constant(ins[i])!;
        const name = g.uniqueName(`${ins[i]}_g${k}`);
        g.setInitializer(sliceRows(t, rows, name));
        ins[i] = name;
      }
    }
    const out = g.uniqueName(`${n.outputs[0]}_g${k}`);
    const c = g.addNode(
      {
        opType: n.opType,
        domain: n.domain,
        name: g.uniqueName(`${n.name || n.outputs[0]}_g${k}`),
        inputs: ins,
        outputs: [out],
        attrs: Object.fromEntries(n.attrs),
      },
      { before: n },
    );
    if (n.opType === 'Conv' && n !== site.producer) c.setInt('group', rows.length);
    add(n.outputs[0]!, k, out);
    return c;
  };
  groups.forEach((rows, k) => {
    clone(site.producer, k, rows, [...site.producer.inputs]);
    for (const n of site.region)
      clone(
        n,
        k,
        rows,
        n.inputs.map((v) => concatOf.get(v)?.[k] ?? v),
      );
  });
  const order = groups.flat();
  const cats = new Map<string, string>();
  for (const b of site.boundary) {
    const v = b.inputs[0]!;
    let cat = cats.get(v);
    if (!cat) {
      cats.set(v, (cat = g.uniqueName(`${v}_split`)));
      const last = g.producer(concatOf.get(v)![groups.length - 1]!)!;
      g.addNode(
        {
          opType: 'Concat',
          name: g.uniqueName(`${v}_concat`),
          inputs: concatOf.get(v)!,
          outputs: [cat],
          attrs: { axis: { type: 'int', value: 1 } },
        },
        { after: last },
      );
    }
    const w = g.constant(b.inputs[1]!)!;
    const d = w.toFloat32();
    const [cout, cin] = [w.dims[0]!, w.dims[1]!];
    const k = d.length / (cout * cin);
    const nd = new Float32Array(d.length);
    for (let o = 0; o < cout; o++)
      for (let j = 0; j < cin; j++) nd.set(d.subarray((o * cin + order[j]!) * k, (o * cin + order[j]! + 1) * k), (o * cin + j) * k);
    const wn = g.uniqueName(`${b.inputs[1]}_perm`);
    g.setInitializer(Tensor.fromFloat32(wn, w.dims, nd));
    b.inputs[0] = cat;
    b.inputs[1] = wn;
  }
  for (const n of [...site.region].reverse()) g.removeNode(n);
  g.removeNode(site.producer);
  g.touch();
}

export interface SplitOptions {
  /**
   * Only sites at least this uneven (max / median channel |range|) are split: every split adds a
   * Concat and smaller kernels, which cost latency (PP-OCR det: 16 sites at spread >= 2 took int8
   * from 0.81x to 0.97x of float; its one site at >= 7, conv2d_451, costs nothing measurable).
   */
  minSpread?: number;
  /** Copies per site at most (default 3). */
  maxGroups?: number;
  /** The narrowest group is split again while its own spread is at least this (default 2). */
  groupSpread?: number;
}

/**
 * Split every group-1 conv whose output channels spread at least `minSpread` (max / median |range|)
 * and whose channel-wise region ends at group-1 convs. `ranges` are the producers' output ranges.
 */
export function splitWideChannels(model: Model, ranges: ReadonlyMap<string, ChannelRange>, o: SplitOptions = {}): SplitReport {
  const g = model.graph;
  const report: SplitReport = { sites: 0, details: [] };
  for (const p of g.topoOrder()) {
    const r = ranges.get(p.outputs[0] ?? '');
    if (!r) continue;
    const site = findSplitSite(g, p);
    if (!site || r.lo.length !== site.channels) continue;
    const abs = Array.from(r.lo, (lo, c) => Math.max(Math.abs(lo), Math.abs(r.hi[c]!)));
    const sorted = [...abs].sort((a, b) => a - b);
    const spread = sorted[sorted.length - 1]! / Math.max(sorted[sorted.length >> 1]!, 1e-12);
    if (spread < (o.minSpread ?? 7)) continue;
    // the narrow group is split again while it is itself uneven (up to maxGroups copies)
    let groups = chooseGroups(abs);
    while (groups.length > 1 && groups.length < (o.maxGroups ?? 3)) {
      const narrow = groups[0]!.map((c) => abs[c]!).sort((a, b) => a - b);
      if (narrow[narrow.length - 1]! / Math.max(narrow[narrow.length >> 1]!, 1e-12) < (o.groupSpread ?? 2)) break;
      const sub = chooseGroups(groups[0]!.map((c) => abs[c]!));
      if (sub.length < 2) break;
      groups = [...sub.map((x) => x.map((i) => groups[0]![i]!)), ...groups.slice(1)];
    }
    if (groups.length < 2) continue;
    splitSite(model, site, groups);
    report.sites++;
    report.details.push({
      value: p.outputs[0]!,
      producer: p.name || p.outputs[0]!,
      spread,
      groups: groups.map((x) => x.length),
      rangeBefore: sorted[sorted.length - 1]!,
      rangesAfter: groups.map((x) => Math.max(...x.map((c) => abs[c]!))),
    });
  }
  return report;
}
