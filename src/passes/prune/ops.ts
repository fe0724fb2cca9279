// The per-op pruner table. Each entry says, for one op type, how channels flow through it:
// which weight axes shrink with its output channels (pruneOut), which with its input channels
// (pruneIn), which per-channel parameters follow (param), or how its output's channel space
// derives from its inputs' (passthrough, coupling, concat, flatten). An op absent from the table,
// or an entry that returns a reason, makes every group it touches unprunable.
import type { Graph } from '../../ir/graph.js';
import type { Node } from '../../ir/node.js';
import type { Tensor } from '../../ir/tensor.js';
import { runtimeMatmul } from './heads.js';
import { gather, reduce, reshape, squeeze, unsqueeze } from './reshape.js';
import { slice } from './slice.js';
import { type Atoms, type Space, describe, sameSpace } from './space.js';

/** The channel space of a value, with the channel axis counted from the end (-1 = last). */
export interface VInfo {
  space: Space;
  axis: number;
  rank: number | null;
}

export type Role = 'out' | 'in' | 'in-grouped' | 'param' | 'group' | 'shape' | 'range';

/**
 * Slice input `input` of `node` along `axis` to the kept indices of `space` ('group' resets a
 * Conv's group to the kept count of `space`; 'shape' sets entry `axis` of a Reshape's shape
 * constant or of a Split's sizes (input `input`, or its 'split' attribute when -1) to the kept
 * count of `space`). 'in-grouped' is a grouped Conv's weight [Cout, Cin/G, ...]: `space` (Cin
 * channels) is `groups` equal runs, and the rows of group g keep the columns of run g's kept
 * channels (positions within the run), so each row block gathers its own column set.
 * 'range' is a Slice keeping channels `range` of `space` (its whole input): entry `axis` of its
 * starts and ends (inputs 1 and 2, or its attributes when `input` is -1) become the kept counts
 * before range[0] and before range[1].
 */
export interface Action {
  role: Role;
  node: Node;
  input: number;
  axis: number;
  space: Space;
  /** 'in-grouped' only: the Conv's group count G. */
  groups?: number;
  /** 'range' only: the channels [lo, hi) of `space` the Slice keeps. */
  range?: readonly [number, number];
}

export interface Ctx {
  readonly g: Graph;
  readonly atoms: Atoms;
  info(v: string): VInfo | undefined;
  set(v: string, i: VInfo): void;
  constant(v: string): Tensor | undefined;
  /** Record a slicing action of the node being handled (or of `node`, a later node of a pattern). */
  act(a: Omit<Action, 'node'> & { node?: Node }): void;
  source(n: Node, size: number, axis: number, rank: number | null): VInfo;
  /** A new atom of `size` channels that node `n` introduces (a multiplier, a shuffle position), labelled `what`. */
  atom(n: Node, size: number, what: string): Space & { kind: 'atom' };
  /** Static shape of a value (inferred once, lazily, when the model does not record it), or null. */
  shape(v: string): number[] | null;
}

/** A handler returns nothing when it understood the node, or the reason it did not. */
export type Handler = (n: Node, c: Ctx) => string | undefined;

const isFloatWeight = (t: Tensor | undefined): t is Tensor => !!t && t.dtype === 'float32';

/** Non-empty inputs after the first must be constants (Clip min/max, Resize scales...). */
function restConstant(n: Node, c: Ctx, from = 1): string | undefined {
  for (let i = from; i < n.inputs.length; i++) {
    const v = n.inputs[i]!;
    if (v && !c.constant(v)) return `${n.opType} input ${i} is computed at run time`;
  }
  return undefined;
}

const passthrough: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  const bad = restConstant(n, c);
  if (bad) return bad;
  if (x) c.set(n.outputs[0]!, x);
  return undefined;
};

/** Pooling and other spatial ops: channels pass through iff the channel axis is axis 1. */
const spatial: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (x && (x.rank === null || x.axis !== 1 - x.rank)) return `${n.opType} on a value whose channel axis is not axis 1`;
  return passthrough(n, c);
};

/** Elementwise with broadcasting: spaced inputs are coupled; constant operands follow as params. */
/**
 * A constant broadcast by an Expand to a constant shape, read by nothing else (a ViT's class token
 * expanded to the batch before the Concat with the patches): per-channel like a constant operand.
 */
function expandedConstant(v: string, c: Ctx): Node | undefined {
  const e = c.g.producer(v);
  if (!e || e.opType !== 'Expand' || c.g.consumers(v).length !== 1 || c.g.isGraphOutput(v)) return undefined;
  return isFloatWeight(c.constant(e.inputs[0]!)) && c.constant(e.inputs[1] ?? '') ? e : undefined;
}

const elementwise: Handler = (n, c) => {
  const spaced: { i: number; v: VInfo }[] = [];
  const expanded: Node[] = [];
  for (let i = 0; i < n.inputs.length; i++) {
    const name = n.inputs[i]!;
    if (!name || c.constant(name)) continue;
    const v = c.info(name);
    const e = v ? undefined : expandedConstant(name, c);
    if (e) expanded.push(e);
    else if (!v) return `${n.opType} mixes a channel-tracked value with one of unknown layout`;
    else spaced.push({ i, v });
  }
  if (!spaced.length) return undefined;
  // a size-1 channel operand broadcasts (e.g. a spatial attention map): it does not couple
  const wide = spaced.filter((s) => c.atoms.size(s.v.space) > 1);
  const lead = (wide[0] ?? spaced[0])!.v;
  for (const s of wide.slice(1)) {
    if (s.v.axis !== lead.axis) return `${n.opType} of values with different channel axes`;
    if (c.atoms.size(s.v.space) !== c.atoms.size(lead.space)) return `${n.opType} of values with different channel counts`;
    const a = lead.space,
      b = s.v.space;
    if (a.kind === 'atom' && b.kind === 'atom') continue;
    // a structured value (concat, shuffle, multiplier blocks) coupled with a plain one makes the
    // plain one an alias of the structure; two structures must match part by part
    if (!sameSpace(a, b, c.atoms) && !c.atoms.canUnify(a, b))
      return `${n.opType} couples ${describe(a, c.atoms)} with ${describe(b, c.atoms)}, laid out differently`;
  }
  for (let i = 0; i < n.inputs.length; i++) {
    const t = n.inputs[i] ? c.constant(n.inputs[i]!) : undefined;
    if (!t) continue;
    const pos = t.dims.length + lead.axis;
    if (pos < 0 || t.dims[pos] === 1) continue;
    if (t.dims[pos] !== c.atoms.size(lead.space)) return `${n.opType} constant of shape [${t.dims}] does not broadcast per channel`;
    if (!isFloatWeight(t)) return `${n.opType} constant '${n.inputs[i]}' is not float32`;
    c.act({ role: 'param', input: i, axis: pos, space: lead.space });
  }
  for (const e of expanded) {
    // the expanded constant follows the channels, and so does its target shape's channel entry
    const t = c.constant(e.inputs[0]!)!;
    const to = c.constant(e.inputs[1]!)!.toNumbers();
    const [pos, at] = [t.dims.length + lead.axis, to.length + lead.axis];
    const C = c.atoms.size(lead.space);
    if (pos >= 0 && t.dims[pos] !== 1 && t.dims[pos] !== C) return `${e.label()} expands a constant of shape [${t.dims}], not per channel`;
    if (pos >= 0 && t.dims[pos] === C) c.act({ node: e, role: 'param', input: 0, axis: pos, space: lead.space });
    if (at >= 0 && to[at] === C) c.act({ node: e, role: 'shape', input: 1, axis: at, space: lead.space });
    else if (at >= 0 && to[at] !== 1) return `${e.label()} expands to [${to}], whose channel entry is neither ${C} nor 1`;
  }
  for (const s of wide.slice(1)) c.atoms.unify(lead.space, s.v.space);
  for (const s of spaced)
    if (c.atoms.size(s.v.space) === 1 && wide.length) c.atoms.block(s.v.space, 'size-1 channel operand broadcast in ' + n.opType);
  c.set(n.outputs[0]!, { ...lead, rank: lead.rank ?? spaced.find((s) => s.v.rank !== null)?.v.rank ?? null });
  return undefined;
};

const conv: Handler = (n, c) => {
  const w = c.constant(n.inputs[1]!);
  if (!isFloatWeight(w)) return 'Conv weight is not a float32 constant';
  const rank = w.dims.length;
  const group = n.attrInt('group', 1);
  const x = c.info(n.inputs[0]!);
  if (x && x.axis !== 1 - rank) return 'Conv input channel axis is not axis 1';
  const bias = n.inputs[2] ? c.constant(n.inputs[2]) : undefined;
  if (n.inputs[2] && !isFloatWeight(bias)) return 'Conv bias is not a float32 constant';
  if (group === 1) {
    if (x) c.act({ role: 'in', input: 1, axis: 1, space: x.space });
    const y = c.source(n, w.dims[0]!, 1 - rank, rank);
    c.act({ role: 'out', input: 1, axis: 0, space: y.space });
    if (bias) c.act({ role: 'out', input: 2, axis: 0, space: y.space });
    return undefined;
  }
  if (w.dims[1] === 1 && w.dims[0] === group && x && c.atoms.size(x.space) === group) {
    // depthwise: output channel i is input channel i; weights, bias and group shrink together
    c.act({ role: 'param', input: 1, axis: 0, space: x.space });
    if (bias) c.act({ role: 'param', input: 2, axis: 0, space: x.space });
    c.act({ role: 'group', input: -1, axis: 0, space: x.space });
    c.set(n.outputs[0]!, x);
    return undefined;
  }
  // a depthwise Conv after an untracked value: nothing to couple its channels to
  if (!x && w.dims[1] === 1 && w.dims[0] === group) return 'depthwise Conv of a value whose channels are not tracked';
  const cout = w.dims[0]!;
  const per = w.dims[1]!;
  if (cout % group !== 0) return `grouped Conv (group=${group}) with ${cout} output channels`;
  if (x && c.atoms.size(x.space) !== per * group)
    return `grouped Conv (group=${group}) reads ${c.atoms.size(x.space)} channels, its weight ${per * group}`;
  if (x && per === 1) {
    // channel multiplier (one input channel per group, m outputs each): output channel c*m + r
    // reads input c alone. Removing input c removes group c whole (its m weight rows, G - 1), and
    // removing multiplier r removes row c*m + r of every group: a grid of the input's channels by
    // a new m-channel atom. Rows slice by the grid's kept indices; G follows the kept inputs.
    const m = cout / group;
    const mult = c.atom(n, m, `${n.label()} multiplier (${m} outputs per input channel)`);
    const space: Space = { kind: 'grid', outer: x.space, inner: mult };
    c.act({ role: 'out', input: 1, axis: 0, space });
    if (bias) c.act({ role: 'out', input: 2, axis: 0, space });
    c.act({ role: 'group', input: -1, axis: 0, space: x.space });
    c.set(n.outputs[0]!, { space, axis: 1 - rank, rank });
    return undefined;
  }
  if (x && cout === group && x.space.kind === 'atom') {
    // one output channel per group (and per > 1 inputs): nothing to choose inside a group, but
    // removing output o removes group o whole, with the per input channels only it reads (G
    // shrinks with the producer's channels). The input is then a grid of this Conv's outputs by a
    // new per-channel atom: removing position r drops column r of every group (a plain slice).
    const y = c.source(n, cout, 1 - rank, rank);
    const pos = c.atom(n, per, `${n.label()} input position within a group (${per} per group)`);
    if (!c.atoms.unify(x.space, { kind: 'grid', outer: y.space, inner: pos })) {
      c.atoms.block(
        x.space,
        `${n.label()}: grouped Conv (group=${group}, one output per group) reads ${describe(x.space, c.atoms)}, laid out otherwise than its ${group} groups of ${per}`,
      );
    }
    c.act({ role: 'in', input: 1, axis: 1, space: pos });
    c.act({ role: 'out', input: 1, axis: 0, space: y.space });
    if (bias) c.act({ role: 'out', input: 2, axis: 0, space: y.space });
    c.act({ role: 'group', input: -1, axis: 0, space: y.space });
    return undefined;
  }
  if (x && wholeGroupsChain(n, x, c)) return wholeGroups(n, x, { group, per, cout, bias: bias !== undefined, rank }, c);
  // grouped Conv: output channel o belongs to group floor(o / (Cout/G)) and reads only that
  // group's Cin/G input channels. Dropping the same number of output channels from every group
  // keeps the layout valid with a plain row slice (Cout/G shrinks; G stays), so the output is a
  // new atom whose selection is chunked by G (space.ts `chunk`).
  if (x) {
    // Its inputs: dropping the same number of channels from every input group keeps G too, but
    // group g's rows then keep their own column set (kept_g): a gather per row block, not one
    // slice along axis 1 ('in-grouped'). The channel space it reads is chunked by G likewise
    // (mapped onto a concatenation's parts or a grid's index where the runs align with them).
    c.atoms.chunkSpace(x.space, group, `${n.label()} reads them in ${group} groups of ${per}`);
    c.act({ role: 'in-grouped', input: 1, axis: 1, space: x.space, groups: group });
  }
  const y = c.source(n, cout, 1 - rank, rank);
  if (y.space.kind === 'atom') c.atoms.chunk(y.space, group, `${n.label()} writes them in ${group} groups of ${cout / group}`);
  c.act({ role: 'out', input: 1, axis: 0, space: y.space });
  if (bias) c.act({ role: 'out', input: 2, axis: 0, space: y.space });
  return undefined;
};

/** Ops a whole-groups chain may pass through: per-channel, one tracked input (BN, activations, a constant affine). */
function chainable(n: Node, g: Graph): boolean {
  if (n.domain !== '' && n.domain !== 'ai.onnx') return false;
  if ((UNARY as readonly string[]).includes(n.opType) || n.opType === 'BatchNormalization')
    return n.inputs.slice(1).every((v) => !v || !!g.constant(v));
  if (!(ELEMENTWISE as readonly string[]).includes(n.opType)) return false;
  return n.inputs.filter((v) => v && !g.constant(v)).length === 1;
}

/** Value `v` is read by exactly one node and is no graph output: nothing else sees its channels. */
function privateValue(v: string, g: Graph): Node | undefined {
  const cs = g.consumers(v);
  return cs.length === 1 && !g.isGraphOutput(v) ? cs[0] : undefined;
}

/**
 * Whether grouped Conv `n` is pruned by whole groups: its input comes from one plain weight layer
 * (Conv with group 1) and its output goes to one, each through a private chain of per-channel
 * ops (RegNet's and ResNeXt's 1x1 -> grouped 3x3 -> 1x1). Then making both sides (groups) x
 * (position) constrains nothing else: no residual, concatenation, shuffle or second grouped Conv
 * sees these channels. Otherwise the Conv keeps its G and cuts within its groups.
 */
function wholeGroupsChain(n: Node, x: VInfo, c: Ctx): boolean {
  const g = c.g;
  if (x.space.kind !== 'atom' || c.atoms.aliasOf(x.space.id) || c.atoms.reasonsOf(x.space.id).length) return false;
  let v = n.inputs[0]!;
  for (let hops = 0; ; hops++) {
    if (privateValue(v, g) === undefined || hops > 8) return false;
    const p = g.producer(v);
    if (!p) return false;
    if (p.opType === 'Conv' && p.attrInt('group', 1) === 1) break;
    if (!chainable(p, g)) return false;
    v = p.inputs.find((i) => i && !g.constant(i))!;
  }
  v = n.outputs[0]!;
  for (let hops = 0; ; hops++) {
    const next = privateValue(v, g);
    if (!next || hops > 8) return false;
    if (next.opType === 'Conv' && next.attrInt('group', 1) === 1 && next.inputs[0] === v) return true;
    if (!chainable(next, g)) return false;
    v = next.outputs[0]!;
  }
}

/**
 * A grouped Conv (1 < G, more than one input and output channel per group: RegNet, ResNeXt)
 * pruned by whole groups, as attention heads are (heads.ts): group g is input channels
 * [g*per, (g+1)*per) and output rows [g*m, (g+1)*m), so its input is (G groups) x (per positions)
 * and its output (G groups) x (m positions), one groups atom for both. Removing group g removes
 * the producer's output channels of that run, the Conv's rows of the group (its columns stay: every
 * kept group still reads per channels), the consumers' input channels of the output run, and G
 * shrinks. onnxruntime runs such a Conv per group (its NCHWc path takes only plain and depthwise
 * convolutions), so its time follows the group count; cutting inside every group (16 -> 12) kept
 * the group count and measured no faster, often slower, than the uncut block at the same MACs
 * (scripts/bench-grouped.ts on RegNetX-400MF's stages, issue 17). So positions within a group
 * are fixed (the weight's columns never change), and a groups index stands for `per` channels when
 * widths are rounded to the block.
 */
function wholeGroups(
  n: Node,
  x: VInfo,
  o: { group: number; per: number; cout: number; bias: boolean; rank: number },
  c: Ctx,
): string | undefined {
  const { group, per, rank } = o;
  const mo = o.cout / group;
  const groups = c.atom(n, group, `${n.label()} groups (${per} in, ${mo} out each)`);
  c.atoms.setUnit(groups, gcd(per, mo));
  if (!c.atoms.unify(x.space, { kind: 'grid', outer: groups, inner: { kind: 'fixed', size: per } }))
    return `${n.label()}: its input is not ${group} groups of ${per}`;
  const y: Space = { kind: 'grid', outer: groups, inner: { kind: 'fixed', size: mo } };
  c.act({ role: 'out', input: 1, axis: 0, space: y });
  if (o.bias) c.act({ role: 'out', input: 2, axis: 0, space: y });
  c.act({ role: 'group', input: -1, axis: 0, space: groups });
  c.set(n.outputs[0]!, { space: y, axis: 1 - rank, rank });
  return undefined;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

const convTranspose: Handler = (n, c) => {
  const w = c.constant(n.inputs[1]!);
  if (!isFloatWeight(w)) return 'ConvTranspose weight is not a float32 constant';
  if (n.attrInt('group', 1) !== 1) return 'grouped ConvTranspose';
  if (n.attrInts('output_shape')) return 'ConvTranspose with output_shape';
  const rank = w.dims.length;
  const x = c.info(n.inputs[0]!);
  if (x && x.axis !== 1 - rank) return 'ConvTranspose input channel axis is not axis 1';
  const bias = n.inputs[2] ? c.constant(n.inputs[2]) : undefined;
  if (n.inputs[2] && !isFloatWeight(bias)) return 'ConvTranspose bias is not a float32 constant';
  if (x) c.act({ role: 'in', input: 1, axis: 0, space: x.space });
  const y = c.source(n, w.dims[1]!, 1 - rank, rank);
  c.act({ role: 'out', input: 1, axis: 1, space: y.space });
  if (bias) c.act({ role: 'out', input: 2, axis: 0, space: y.space });
  return undefined;
};

const gemm: Handler = (n, c) => {
  const b = c.constant(n.inputs[1]!);
  if (!isFloatWeight(b) || b.dims.length !== 2) return 'Gemm B is not a 2-D float32 constant';
  if (n.attrInt('transA', 0) !== 0) return 'Gemm with transA';
  const tb = n.attrInt('transB', 0) === 1;
  const x = c.info(n.inputs[0]!);
  if (x && x.axis !== -1) return 'Gemm input features are not the last axis';
  const outN = tb ? b.dims[0]! : b.dims[1]!;
  const bias = n.inputs[2] ? c.constant(n.inputs[2]) : undefined;
  if (n.inputs[2] && !isFloatWeight(bias)) return 'Gemm C is not a float32 constant';
  if (x) c.act({ role: 'in', input: 1, axis: tb ? 1 : 0, space: x.space });
  const y = c.source(n, outN, -1, 2);
  c.act({ role: 'out', input: 1, axis: tb ? 0 : 1, space: y.space });
  if (bias && bias.dims.length && bias.dims[bias.dims.length - 1] === outN && outN > 1)
    c.act({ role: 'out', input: 2, axis: bias.dims.length - 1, space: y.space });
  return undefined;
};

const matmul: Handler = (n, c) => {
  const b = c.constant(n.inputs[1]!);
  if (!b) return runtimeMatmul(n, c);
  if (!isFloatWeight(b) || b.dims.length !== 2) return 'MatMul weight is not a 2-D float32 constant';
  const x = c.info(n.inputs[0]!);
  if (x && x.axis !== -1) return 'MatMul input features are not the last axis';
  if (x) c.act({ role: 'in', input: 1, axis: 0, space: x.space });
  // an untracked input (after a decomposed LayerNorm) still has a rank the head split needs
  c.source(n, b.dims[1]!, -1, x?.rank ?? c.shape(n.inputs[0]!)?.length ?? null);
  const y = c.info(n.outputs[0]!)!;
  c.act({ role: 'out', input: 1, axis: 1, space: y.space });
  return undefined;
};

/** Per-channel normalization parameters (inputs `params`, all along axis 0) follow the channels. */
function normalization(params: number[], requireAxis: (x: VInfo, n: Node) => boolean, why: string): Handler {
  return (n, c) => {
    const x = c.info(n.inputs[0]!);
    if (!x) return restConstant(n, c);
    if (!requireAxis(x, n)) return why;
    for (const i of params) {
      const v = n.inputs[i];
      if (!v) continue;
      const t = c.constant(v);
      if (!isFloatWeight(t)) return `${n.opType} parameter ${i} is not a float32 constant`;
      if (t.dims.length !== 1 || t.dims[0] !== c.atoms.size(x.space)) return `${n.opType} parameter ${i} is not per-channel`;
      c.act({ role: 'param', input: i, axis: 0, space: x.space });
    }
    c.set(n.outputs[0]!, x);
    return undefined;
  };
}

const concat: Handler = (n, c) => {
  const ins = n.inputs.map((v) => c.info(v));
  if (ins.some((i) => !i)) {
    // constants joined along another axis (a ViT's class token before the patch tokens) are
    // per-channel operands, as for an Add: checked there
    const lead = ins.find((i) => i);
    const ax = n.attrInt('axis', 0)!;
    const others = n.inputs.every((v, k) => ins[k] || c.constant(v) || expandedConstant(v, c));
    if (lead && lead.rank !== null && others && (ax < 0 ? ax : ax - lead.rank) !== lead.axis) return elementwise(n, c);
    return 'Concat of a channel-tracked value with one of unknown layout';
  }
  const first = ins[0]!;
  const rank = ins.find((i) => i!.rank !== null)?.rank ?? null;
  const ax = n.attrInt('axis', 0);
  const axNeg = ax < 0 ? ax : rank === null ? null : ax - rank;
  if (axNeg === null) return 'Concat axis with unknown rank';
  if (ins.some((i) => i!.axis !== first.axis)) return 'Concat of values with different channel axes';
  if (axNeg === first.axis) {
    c.set(n.outputs[0]!, { space: { kind: 'cat', parts: ins.map((i) => i!.space) }, axis: first.axis, rank });
    return undefined;
  }
  return elementwise(n, c); // concatenation along another axis couples the channels like Add
};

const split: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (!x) return restConstant(n, c);
  const ax = n.attrInt('axis', 0);
  const axNeg = ax < 0 ? ax : x.rank === null ? null : ax - x.rank;
  if (axNeg !== x.axis) {
    for (const o of n.outputs) if (o) c.set(o, x);
    return restConstant(n, c);
  }
  const k = n.outputs.length;
  const C = c.atoms.size(x.space);
  if (n.inputs[1] && !c.constant(n.inputs[1])) return 'Split sizes computed at run time';
  const given = n.inputs[1] ? c.constant(n.inputs[1])!.toNumbers() : n.attrInts('split');
  const sizes = given ?? Array.from({ length: k }, () => C / k);
  if (sizes.length !== k || sizes.reduce((a, b) => a + b, 0) !== C || !sizes.every((v) => Number.isInteger(v) && v > 0))
    return `Split of ${C} channels into [${sizes.join(', ')}]`;
  let parts: readonly Space[];
  const s = x.space;
  if (s.kind === 'cat' && s.parts.length === k) {
    if (s.parts.some((p, i) => c.atoms.size(p) !== sizes[i])) return 'Split sizes do not match the concatenated parts';
    parts = s.parts;
  } else if (s.kind === 'grid') {
    // a channel shuffle's output (positions x g) or a multiplier's blocks, split on block
    // boundaries (ShuffleNet v2 after its shuffle): each part is a run of the outer index, which
    // thereby becomes a concatenation of new position atoms, one per part
    const inner = c.atoms.size(s.inner);
    if (sizes.some((v) => v % inner !== 0))
      return `Split of ${describe(s, c.atoms)} into [${sizes.join(', ')}]: the parts cut across its blocks of ${inner}`;
    const outs = sizes.map((v, i) => c.atom(n, v / inner, `${n.label()} part ${i} of ${describe(s.outer, c.atoms)}`));
    const cat: Space = { kind: 'cat', parts: outs };
    if (!c.atoms.canUnify(s.outer, cat)) return `Split of ${describe(s, c.atoms)}: its outer index is laid out otherwise than the parts`;
    c.atoms.unify(s.outer, cat);
    parts = outs.map((o) => ({ kind: 'grid', outer: o, inner: s.inner }));
  } else return "Split on the channel axis that does not undo a Concat or split a channel shuffle's output";
  if (!given) {
    // an even split stays even only if every part keeps the same count: they lose the same channels
    if (!parts.every((p) => c.atoms.canUnify(parts[0]!, p))) return 'even Split of parts laid out differently';
    for (const p of parts.slice(1)) c.atoms.unify(parts[0]!, p);
  } else {
    // explicit sizes follow the kept channels of each part (input 1, or the opset<13 attribute)
    parts.forEach((p, i) => c.act({ role: 'shape', input: n.inputs[1] ? 1 : -1, axis: i, space: p }));
  }
  n.outputs.forEach((o, i) => c.set(o, { ...x, space: parts[i]! }));
  return undefined;
};

const flatten: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (!x) return undefined;
  if (x.rank === 2 && x.axis === -1) return passthrough(n, c);
  if (n.attrInt('axis', 1) !== 1 || x.rank === null || x.axis !== 1 - x.rank) return 'Flatten not at axis 1 of a channels-first value';
  c.set(n.outputs[0]!, { space: { kind: 'flat', inner: x.space }, axis: -1, rank: 2 });
  return undefined;
};

const transpose: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (!x) return undefined;
  const perm = n.attrInts('perm');
  if (!perm) return 'Transpose without perm';
  const r = perm.length;
  const pos = r + x.axis;
  const at = perm.indexOf(pos);
  if (at < 0) return 'Transpose of unexpected rank';
  c.set(n.outputs[0]!, { space: x.space, axis: at - r, rank: r });
  return undefined;
};

const reduceLike: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (!x) return undefined;
  const ax = n.attrInt('axis', -1);
  const axNeg = ax < 0 ? ax : x.rank === null ? null : ax - x.rank;
  if (axNeg === null || axNeg === x.axis) return `${n.opType} across the channel axis`;
  c.set(n.outputs[0]!, x);
  return undefined;
};

const resize: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (n.opType === 'Resize' && n.inputs[3]) return 'Resize by sizes (the channel count is baked in)';
  if (x && (x.rank === null || x.axis !== 1 - x.rank)) return 'Resize of a value whose channel axis is not axis 1';
  const scalesIn = n.opType === 'Upsample' ? n.inputs[1] : n.inputs[2];
  const scales = scalesIn ? c.constant(scalesIn) : undefined;
  if (scalesIn && !scales) return 'Resize scales computed at run time';
  return passthrough(n, c);
};

const pad: Handler = (n, c) => {
  const x = c.info(n.inputs[0]!);
  if (!x) return restConstant(n, c);
  const pads = n.inputs[1] ? c.constant(n.inputs[1])?.toNumbers() : n.attrInts('pads');
  if (!pads || x.rank === null || pads.length !== 2 * x.rank) return 'Pad with unknown pads';
  const ax = x.rank + x.axis;
  if (pads[ax] !== 0 || pads[ax + x.rank] !== 0) return 'Pad on the channel axis';
  if (n.inputs[3]) return 'Pad with axes input';
  return passthrough(n, c);
};

const UNARY = [
  'Relu',
  'LeakyRelu',
  'Clip',
  'HardSigmoid',
  'HardSwish',
  'Sigmoid',
  'Tanh',
  'Erf',
  'Gelu',
  'Identity',
  'Dropout',
  'Neg',
  'Abs',
  'Exp',
  'Log',
  'Sqrt',
  'Reciprocal',
  'Softplus',
  'Softsign',
  'Elu',
  'Selu',
  'Celu',
  'Mish',
  'ThresholdedRelu',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'Not',
] as const;
const ELEMENTWISE = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'PRelu', 'Where'] as const;
const REDUCTIONS = ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceSum', 'ReduceL1', 'ReduceL2', 'ReduceSumSquare'] as const;
const POOLS = ['MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'LpPool', 'GlobalLpPool', 'LRN'] as const;

export const PRUNERS: Readonly<Record<string, Handler>> = {
  ...Object.fromEntries(UNARY.map((op) => [op, passthrough])),
  ...Object.fromEntries(ELEMENTWISE.map((op) => [op, elementwise])),
  ...Object.fromEntries(POOLS.map((op) => [op, spatial])),
  ...Object.fromEntries(REDUCTIONS.map((op) => [op, reduce])),
  Conv: conv,
  ConvTranspose: convTranspose,
  Gemm: gemm,
  MatMul: matmul,
  BatchNormalization: normalization(
    [1, 2, 3, 4],
    (x) => x.rank !== null && x.axis === 1 - x.rank,
    'BatchNormalization whose channel axis is not axis 1',
  ),
  InstanceNormalization: normalization(
    [1, 2],
    (x) => x.rank !== null && x.axis === 1 - x.rank,
    'InstanceNormalization whose channel axis is not axis 1',
  ),
  LayerNormalization: normalization(
    [1, 2],
    (x, n) => x.axis === -1 && n.attrInt('axis', -1) === -1,
    'LayerNormalization over more than the channel axis',
  ),
  Concat: concat,
  Split: split,
  Slice: slice,
  Flatten: flatten,
  Reshape: reshape,
  Transpose: transpose,
  Squeeze: squeeze,
  Gather: gather,
  Unsqueeze: unsqueeze,
  Softmax: reduceLike,
  LogSoftmax: reduceLike,
  Resize: resize,
  Upsample: resize,
  Pad: pad,
};

export type PrunerOp = keyof typeof PRUNERS;
