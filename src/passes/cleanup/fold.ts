// Exact float rewrites. Before quantizing, so each conv carries one scale and the int8 graph has
// as few float islands as possible (every elementwise op onnxruntime cannot run in int8 costs a
// DequantizeLinear/QuantizeLinear round trip); before pruning and for every float candidate of the
// fit, because onnxruntime leaves its fast NCHWc layout around each elementwise op it cannot fuse
// (PP-OCRv4 det: 0.86x the original's latency from these folds alone, outputs equal to 2e-7):
// - Conv -> Mul(constant) -> Add(constant) (PP-LCNet's "learnable affine" after a conv) folded
//   into the conv's weights and bias;
// - a constant affine before a Conv (s * x + a) folded into that conv: the scale always (zero
//   padding stays zero), the shift only when the conv has no padding (else the border would see a
//   instead of 0);
// - x * Clip(x + 3, 0, 6) / 6 recognised as one HardSwish (opset >= 14) or x * HardSigmoid(x);
// - BatchNormalization after a ConvTranspose folded into it (onnxruntime folds it only after Conv).
// All rewrites are exact up to float rounding; the fidelity measurement covers them.
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { runPass, type Pass } from '../pass.js';
import { deadCodeElimination } from './dce.js';
import { opsetVersion } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';

export interface FoldReport {
  convAffine: number;
  inputScale: number;
  inputShift: number;
  hardSwish: number;
  convTransposeBn: number;
  /** Written-out LayerNorms made one LayerNormalization. */
  layerNorm: number;
}

const std = (n: Node): boolean => n.domain === '' || n.domain === 'ai.onnx';

/** The single node reading `v`, when `v` is not a graph output and has exactly one reader. */
function soleConsumer(g: Graph, v: string): Node | undefined {
  const c = g.consumers(v);
  return c.length === 1 && !g.isGraphOutput(v) ? c[0] : undefined;
}

/** Constant per-channel vector (length C) of a scalar or [C], [C,1,1], [1,C,1,1] constant. */
function perChannel(g: Graph, name: string | undefined, channels: number, rank: number): Float32Array | undefined {
  const t = name ? g.constant(name) : undefined;
  if (!t || t.dtype !== 'float32') return undefined;
  if (t.size === 1 && t.dims.length <= rank) return new Float32Array(channels).fill(t.toFloat32()[0]!);
  if (t.size !== channels) return undefined;
  // the channel axis of a rank-`rank` NC... tensor, right-aligned broadcasting
  const d = [...t.dims];
  while (d.length < rank) d.unshift(1);
  if (d.length !== rank || d[1] !== channels) return undefined;
  return t.toFloat32();
}

/** The other input of a binary op, when one input is `v`. */
function otherInput(n: Node, v: string): string | undefined {
  if (n.inputs.length !== 2) return undefined;
  if (n.inputs[0] === v) return n.inputs[1];
  if (n.inputs[1] === v) return n.inputs[0];
  return undefined;
}

function setWeights(g: Graph, n: Node, wIdx: number, base: string, t: Tensor): void {
  const name = g.uniqueName(base);
  g.setInitializer(t.withName(name));
  while (n.inputs.length <= wIdx) n.inputs.push('');
  n.inputs[wIdx] = name;
}

/** Conv -> Mul(c) [-> Add(c)] and Conv -> Add(c): fold into the conv. */
function foldConvAffine(g: Graph): number {
  let count = 0;
  for (const conv of g.topoOrder()) {
    if (conv.opType !== 'Conv' || !std(conv)) continue;
    const w = g.constant(conv.inputs[1] ?? '');
    if (!w || w.dtype !== 'float32') continue;
    const cout = w.dims[0]!;
    const r = w.dims.length;
    for (;;) {
      const out = conv.outputs[0]!;
      const next = soleConsumer(g, out);
      if (!next || !std(next) || (next.opType !== 'Mul' && next.opType !== 'Add')) break;
      const c = perChannel(g, otherInput(next, out), cout, r);
      if (!c) break;
      const wt = g.constant(conv.inputs[1]!)!;
      const b0 = conv.inputs[2] ? g.constant(conv.inputs[2]) : undefined;
      if (conv.inputs[2] && !b0) break;
      const bias = b0 ? Float32Array.from(b0.toFloat32()) : new Float32Array(cout);
      if (next.opType === 'Mul') {
        const wd = Float32Array.from(wt.toFloat32());
        const per = wd.length / cout;
        for (let o = 0; o < cout; o++) {
          for (let i = 0; i < per; i++) wd[o * per + i]! *= c[o]!;
          bias[o]! *= c[o]!;
        }
        setWeights(g, conv, 1, `${conv.inputs[1]}_folded`, Tensor.fromFloat32('w', wt.dims, wd));
      } else {
        for (let o = 0; o < cout; o++) bias[o]! += c[o]!;
      }
      setWeights(g, conv, 2, `${conv.inputs[2] || conv.outputs[0]}_bias_folded`, Tensor.fromFloat32('b', [cout], bias));
      // the conv now produces what `next` produced
      const res = next.outputs[0]!;
      g.removeNode(next);
      g.replaceAllUses(res, out);
      count++;
    }
  }
  return count;
}

/** x -> Mul(s) [-> Add(a)] -> only Convs: fold s (always) and a (unpadded convs) into them. */
function foldInputAffine(g: Graph): { scale: number; shift: number } {
  let scale = 0;
  let shift = 0;
  for (const n of g.topoOrder()) {
    if (!std(n) || (n.opType !== 'Mul' && n.opType !== 'Add')) continue;
    const x = n.inputs.find((v) => v && !g.constant(v));
    const cName = x === undefined ? undefined : otherInput(n, x);
    const ct = cName ? g.constant(cName) : undefined;
    if (!x || !ct || ct.dtype !== 'float32' || ct.size !== 1) continue;
    const k = ct.toFloat32()[0]!;
    let out = n.outputs[0]!;
    if (g.isGraphOutput(out)) continue;
    // Mul(s) -> Add(a) -> padded convs: becomes Add(a / s) -> convs with weights * s
    let shiftAfter: Node | undefined;
    if (n.opType === 'Mul' && k !== 0) {
      const a = soleConsumer(g, out);
      const at = a && std(a) && a.opType === 'Add' ? g.constant(otherInput(a, out) ?? '') : undefined;
      if (a && at && at.dtype === 'float32' && at.size === 1 && !g.isGraphOutput(a.outputs[0]!)) {
        shiftAfter = a;
        out = a.outputs[0]!;
      }
    }
    const readers = g.consumers(out);
    if (
      readers.length === 0 ||
      !readers.every(
        (c) =>
          c.opType === 'Conv' &&
          std(c) &&
          c.inputs[0] === out &&
          g.constant(c.inputs[1] ?? '')?.dtype === 'float32' &&
          (!c.inputs[2] || g.constant(c.inputs[2])),
      )
    )
      continue;
    const unpadded = (c: Node): boolean =>
      (c.attrInts('pads') ?? []).every((p) => p === 0) &&
      (c.attrString('auto_pad') ?? 'NOTSET') !== 'SAME_UPPER' &&
      (c.attrString('auto_pad') ?? 'NOTSET') !== 'SAME_LOWER';
    if (n.opType === 'Add' && !readers.every(unpadded)) continue;
    if (shiftAfter) {
      const a = shiftAfter;
      const an = g.uniqueName(`${a.outputs[0]}_shift`);
      g.setInitializer(Tensor.scalarFloat(an, g.constant(otherInput(a, n.outputs[0]!)!)!.toFloat32()[0]! / k));
      a.inputs = [x, an];
    }
    for (const c of readers) {
      const w = g.constant(c.inputs[1]!)!;
      const cout = w.dims[0]!;
      const wd = w.toFloat32();
      const per = wd.length / cout;
      const b0 = c.inputs[2] ? g.constant(c.inputs[2])!.toFloat32() : new Float32Array(cout);
      const bias = Float32Array.from(b0);
      if (n.opType === 'Mul') {
        setWeights(
          g,
          c,
          1,
          `${c.inputs[1]}_folded`,
          Tensor.fromFloat32(
            'w',
            w.dims,
            wd.map((v) => v * k),
          ),
        );
      } else {
        for (let o = 0; o < cout; o++) {
          let s = 0;
          for (let i = 0; i < per; i++) s += wd[o * per + i]!;
          bias[o]! += k * s;
        }
        setWeights(g, c, 2, `${c.inputs[2] || c.outputs[0]}_bias_folded`, Tensor.fromFloat32('b', [cout], bias));
      }
      if (!shiftAfter) c.inputs[0] = x;
    }
    g.removeNode(n);
    g.touch();
    if (n.opType === 'Mul') scale++;
    else shift++;
  }
  return { scale, shift };
}

function scalarIs(g: Graph, v: string | undefined, want: number): boolean {
  const t = v ? g.constant(v) : undefined;
  return !!t && t.dtype === 'float32' && t.size === 1 && Math.abs(t.toFloat32()[0]! - want) < 1e-6 * Math.max(1, Math.abs(want));
}

/**
 * x * Clip(x + 3, 0, 6) / 6 (or * (1/6)). For float: one HardSwish (opset >= 14) or
 * x * HardSigmoid(x). For int8 ('int8'): the /6 leaves the chain (merged into a following scalar
 * Mul, which the input folds then push into the next conv), so what stays is Add -> Clip -> Mul,
 * which onnxruntime runs as QLinearAdd (the Clip is the output quantization's saturation) and
 * QLinearMul instead of a float island.
 */
function fuseHardSwish(model: Model, form: 'float' | 'int8'): number {
  const g = model.graph;
  const useHardSwish = opsetVersion(model) >= 14;
  let count = 0;
  for (const add of g.topoOrder()) {
    if (add.opType !== 'Add' || !std(add)) continue;
    const x = add.inputs.find((v) => v && !g.constant(v));
    if (!x || !scalarIs(g, otherInput(add, x), 3)) continue;
    const clip = soleConsumer(g, add.outputs[0]!);
    if (!clip || clip.opType !== 'Clip' || !std(clip) || clip.inputs[0] !== add.outputs[0]) continue;
    const lo = clip.attrFloat('min') ?? (scalarIs(g, clip.inputs[1], 0) ? 0 : undefined);
    const hi = clip.attrFloat('max') ?? (scalarIs(g, clip.inputs[2], 6) ? 6 : undefined);
    if (lo !== 0 || hi !== 6) continue;
    const mul = soleConsumer(g, clip.outputs[0]!);
    if (!mul || mul.opType !== 'Mul' || !std(mul) || otherInput(mul, clip.outputs[0]!) !== x) continue;
    const div = soleConsumer(g, mul.outputs[0]!);
    if (!div || !std(div) || div.inputs[0] !== mul.outputs[0]) continue;
    if (!(
      (div.opType === 'Div' && scalarIs(g, div.inputs[1], 6)) ||
      (div.opType === 'Mul' && scalarIs(g, otherInput(div, mul.outputs[0]!), 1 / 6))
    ))
      continue;
    const out = div.outputs[0]!;
    const name = add.name || out;
    if (form === 'int8') {
      const next = soleConsumer(g, out);
      const nc = next && std(next) && next.opType === 'Mul' ? otherInput(next, out) : undefined;
      const nt = nc ? g.constant(nc) : undefined;
      if (next && nt && nt.dtype === 'float32' && nt.size === 1) {
        const sn = g.uniqueName(`${nc}_div6`);
        g.setInitializer(Tensor.scalarFloat(sn, nt.toFloat32()[0]! / 6));
        next.inputs = [mul.outputs[0]!, sn];
        g.removeNode(div);
      } else {
        const sn = g.uniqueName(`${out}_sixth`);
        g.setInitializer(Tensor.scalarFloat(sn, 1 / 6));
        div.opType = 'Mul';
        div.inputs = [mul.outputs[0]!, sn];
      }
      g.touch();
      count++;
      continue;
    }
    if (useHardSwish) {
      g.addNode({ opType: 'HardSwish', name: `${name}_hardswish`, inputs: [x], outputs: [out] }, { before: add });
    } else {
      const hs = g.uniqueName(`${out}_hardsigmoid`);
      const h = g.addNode(
        {
          opType: 'HardSigmoid',
          name: `${name}_hardsigmoid`,
          inputs: [x],
          outputs: [hs],
          attrs: { alpha: { type: 'float', value: 1 / 6 }, beta: { type: 'float', value: 0.5 } },
        },
        { before: add },
      );
      g.addNode({ opType: 'Mul', name: `${name}_hardswish`, inputs: [x, hs], outputs: [out] }, { after: h });
    }
    for (const n of [add, clip, mul, div]) g.removeNode(n);
    count++;
  }
  return count;
}

/** ConvTranspose (group 1) -> BatchNormalization: fold the BN into the weights ([Cin, Cout, ...]) and bias. */
function foldConvTransposeBn(g: Graph): number {
  let count = 0;
  for (const ct of g.topoOrder()) {
    if (ct.opType !== 'ConvTranspose' || !std(ct) || ct.attrInt('group', 1) !== 1) continue;
    const w = g.constant(ct.inputs[1] ?? '');
    if (!w || w.dtype !== 'float32') continue;
    // a bias written as a separate Add goes into the ConvTranspose first
    const add = soleConsumer(g, ct.outputs[0]!);
    const addC =
      add && std(add) && add.opType === 'Add' ? perChannel(g, otherInput(add, ct.outputs[0]!), w.dims[1]!, w.dims.length) : undefined;
    const b00 = ct.inputs[2] ? g.constant(ct.inputs[2])?.toFloat32() : new Float32Array(w.dims[1]!);
    if (add && addC && b00) {
      setWeights(
        g,
        ct,
        2,
        `${ct.outputs[0]}_bias`,
        Tensor.fromFloat32(
          'b',
          [w.dims[1]!],
          b00.map((v, c) => v + addC[c]!),
        ),
      );
      const res = add.outputs[0]!;
      g.removeNode(add);
      g.replaceAllUses(res, ct.outputs[0]!);
    }
    const bn = soleConsumer(g, ct.outputs[0]!);
    if (!bn || bn.opType !== 'BatchNormalization' || !std(bn) || bn.outputs.filter(Boolean).length !== 1) continue;
    const [sc, bb, mean, vr] = [1, 2, 3, 4].map((i) => g.constant(bn.inputs[i] ?? '')?.toFloat32());
    const cout = w.dims[1]!;
    if (!sc || !bb || !mean || !vr || sc.length !== cout) continue;
    const b0 = ct.inputs[2] ? g.constant(ct.inputs[2])?.toFloat32() : new Float32Array(cout);
    if (!b0) continue;
    const eps = bn.attrFloat('epsilon', 1e-5)!;
    const mult = sc.map((s, c) => s / Math.sqrt(vr[c]! + eps));
    const wd = Float32Array.from(w.toFloat32());
    const inner = wd.length / (w.dims[0]! * cout);
    for (let i = 0; i < wd.length; i++) wd[i]! *= mult[Math.floor(i / inner) % cout]!;
    const bias = Float32Array.from({ length: cout }, (_, c) => (b0[c]! - mean[c]!) * mult[c]! + bb[c]!);
    setWeights(g, ct, 1, `${ct.inputs[1]}_bn_folded`, Tensor.fromFloat32('w', w.dims, wd));
    setWeights(g, ct, 2, `${ct.outputs[0]}_bn_bias`, Tensor.fromFloat32('b', [cout], bias));
    const res = bn.outputs[0]!;
    g.removeNode(bn);
    g.replaceAllUses(res, ct.outputs[0]!);
    count++;
  }
  return count;
}

/** ReduceMean over the last axis only, keeping dims (axes as attribute, or as a constant input from opset 18). */
function meanOverLast(g: Graph, n: Node | undefined, rank: number | undefined): boolean {
  if (!n || n.opType !== 'ReduceMean' || !std(n) || n.attrInt('keepdims', 1) !== 1) return false;
  const axes = n.attrInts('axes') ?? (n.inputs[1] ? Array.from(g.constant(n.inputs[1])?.toFloat32() ?? []) : undefined);
  return !!axes && axes.length === 1 && (axes[0] === -1 || (rank !== undefined && axes[0] === rank - 1));
}

/**
 * LayerNorm over the last axis written out as ops (PyTorch's export below opset 17):
 * d = x - mean(x); y = d / sqrt(mean(d^2) + eps) [* gamma] [+ beta] becomes one
 * LayerNormalization (onnxruntime runs it at any opset). Besides the speed, the pruning table
 * knows LayerNormalization: the written-out form, which normalises across the channels through
 * ops it cannot follow, kept ConvNeXt's and ViT's residual streams whole at opset 13.
 */
function fuseLayerNorm(g: Graph): number {
  let count = 0;
  for (const rm1 of g.topoOrder()) {
    const x = rm1.inputs[0];
    const rank = x ? g.type(x)?.shape?.length : undefined;
    if (!x || !meanOverLast(g, rm1, rank)) continue;
    const sub = soleConsumer(g, rm1.outputs[0]!);
    if (!sub || sub.opType !== 'Sub' || !std(sub) || sub.inputs[0] !== x || sub.inputs[1] !== rm1.outputs[0]) continue;
    const d = sub.outputs[0]!;
    const readers = g.consumers(d);
    if (readers.length !== 2 || g.isGraphOutput(d)) continue;
    const pow = readers.find((r) => r.opType === 'Pow' && std(r) && r.inputs[0] === d && scalarIs(g, r.inputs[1], 2));
    const div = readers.find((r) => r.opType === 'Div' && std(r) && r.inputs[0] === d);
    if (!pow || !div) continue;
    const rm2 = soleConsumer(g, pow.outputs[0]!);
    if (!rm2 || !meanOverLast(g, rm2, rank)) continue;
    const add = soleConsumer(g, rm2.outputs[0]!);
    const epsName = add && add.opType === 'Add' && std(add) ? otherInput(add, rm2.outputs[0]!) : undefined;
    const epsT = epsName ? g.constant(epsName) : undefined;
    if (!add || !epsT || epsT.dtype !== 'float32' || epsT.size !== 1) continue;
    const sqrt = soleConsumer(g, add.outputs[0]!);
    if (!sqrt || sqrt.opType !== 'Sqrt' || !std(sqrt) || div.inputs[1] !== sqrt.outputs[0] || soleConsumer(g, sqrt.outputs[0]!) !== div)
      continue;
    // the affine after it, when its constants are per last-axis element (or scalars)
    const last = (v: string, op: 'Mul' | 'Add'): { node: Node; c: string } | undefined => {
      const n = soleConsumer(g, v);
      const c = n && n.opType === op && std(n) ? otherInput(n, v) : undefined;
      const t = c ? g.constant(c) : undefined;
      return n && c && t && t.dtype === 'float32' && t.dims.length <= 1 ? { node: n, c } : undefined;
    };
    const mul = last(div.outputs[0]!, 'Mul');
    const bias = mul ? last(mul.node.outputs[0]!, 'Add') : undefined;
    const width = [mul, bias].map((a) => (a ? g.constant(a.c)!.size : 1)).reduce((a, b) => Math.max(a, b), 1);
    const lastDim = x ? g.type(x)?.shape?.[(rank ?? 0) - 1] : undefined;
    const n = typeof lastDim === 'number' ? lastDim : width;
    if (width !== 1 && width !== n) continue;
    const full = (a: { c: string } | undefined, fill: number, tag: string): string => {
      const t = a ? g.constant(a.c)! : undefined;
      if (t && t.size === n) return a!.c;
      const name = g.uniqueName(`${div.outputs[0]}_ln_${tag}`);
      g.setInitializer(Tensor.fromFloat32(name, [n], new Float32Array(n).fill(t ? t.toFloat32()[0]! : fill)));
      return name;
    };
    if (n < 1 || (width === 1 && typeof lastDim !== 'number')) continue; // gamma's length unknown
    const out = (bias ?? mul)?.node.outputs[0] ?? div.outputs[0]!;
    const gamma = full(mul, 1, 'scale');
    const beta = full(bias, 0, 'bias');
    g.addNode(
      {
        opType: 'LayerNormalization',
        name: `${rm1.name || out}_layernorm`,
        inputs: [x, gamma, beta],
        outputs: [out],
        attrs: { axis: { type: 'int', value: -1 }, epsilon: { type: 'float', value: epsT.toFloat32()[0]! } },
      },
      { before: rm1 },
    );
    for (const r of [rm1, sub, pow, rm2, add, sqrt, div, mul?.node, bias?.node]) if (r) g.removeNode(r);
    count++;
  }
  return count;
}

/** Apply every fold in place (float graph, standard ops). */
export function foldForQuantization(model: Model, form: 'float' | 'int8' = 'float'): FoldReport {
  const g = model.graph;
  const convAffine = foldConvAffine(g);
  const hardSwish = fuseHardSwish(model, form);
  const { scale, shift } = foldInputAffine(g);
  // a shift folded into a 1x1 conv can leave a Mul/Add pair behind; one more pass catches it
  const again = foldInputAffine(g);
  const convTransposeBn = foldConvTransposeBn(g);
  const layerNorm = fuseLayerNorm(g);
  g.touch();
  return { convAffine, inputScale: scale + again.scale, inputShift: shift + again.shift, hardSwish, convTransposeBn, layerNorm };
}

/**
 * Lower range bounds that saturation makes exact: a value read only by the int8 form of hardswish
 * (Add(x, 3) -> Clip(0, 6) and Mul(x, that)) gives 0 for every x <= -3, so quantizing x with a
 * range starting at -3 loses nothing there and spends the 256 levels where hardswish is not flat.
 * PP-LCNet conv outputs reach -100 in a few channels while most live in [-3, 10].
 */
export function saturatedLowerBounds(model: Model): Map<string, number> {
  const g = model.graph;
  const out = new Map<string, number>();
  for (const add of g.nodes) {
    if (add.opType !== 'Add' || !std(add)) continue;
    const x = add.inputs.find((v) => v && !g.constant(v));
    if (!x || !scalarIs(g, otherInput(add, x), 3) || g.isGraphOutput(x)) continue;
    const clip = soleConsumer(g, add.outputs[0]!);
    if (!clip || clip.opType !== 'Clip' || clip.inputs[0] !== add.outputs[0]) continue;
    const lo = clip.attrFloat('min') ?? (scalarIs(g, clip.inputs[1], 0) ? 0 : undefined);
    if (lo !== 0) continue;
    const readers = g.consumers(x);
    const ok = readers.length === 2 && readers.every((r) => r === add || (r.opType === 'Mul' && otherInput(r, x) === clip.outputs[0]));
    if (ok) out.set(x, -3);
  }
  return out;
}

/** The exact folds as a checked pass; the option is the form the model will take (see foldForQuantization). */
export const foldPass: Pass<'float' | 'int8', FoldReport> = {
  name: 'fold',
  requires: ['valid-graph', 'opset-known'],
  guarantees: ['stays-valid', 'outputs-kept', 'no-dead-code'],
  run(model, form) {
    const r = foldForQuantization(model, form);
    // the weights a fold replaced are read by nothing: a folded model saved as it stood kept them
    // (PP-OCRv4 det: 10.4 MB with 489 initializers where 155 are read, against 4.7 MB shipped)
    const dce = runPass(deadCodeElimination, model, undefined).details;
    return { changed: Object.values(r).some((n) => n > 0) || dce.nodesRemoved + dce.initializersRemoved > 0, details: r };
  },
};
