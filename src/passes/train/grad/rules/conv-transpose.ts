// The gradient rule of ConvTranspose. A transposed conv is the adjoint of a Conv with the same
// weight and geometry, so its input gradient is that Conv of the output gradient, and its weight
// gradient is that Conv's weight gradient with the roles swapped (patches of the output gradient
// times the input: convWeightGrad in linear.ts, onnxruntime's Conv and MatMul kernels again).
import { EdgefitError } from '../../../../errors.js';
import type { Node } from '../../../../ir/node.js';
import type { GradRule } from '../types.js';
import { convWeightGrad, type ConvGeometry } from './linear.js';

/**
 * The geometry of the Conv that is the adjoint of ConvTranspose `n` (input [N, Cin, in...], output
 * [N, Cout, out...]): the same kernel, strides, dilations and group, and the begin pads that align
 * the grids. End pads are what makes that Conv's output `in` long again; output_padding, an
 * explicit output_shape or auto_pad only add rows at the end (or, for SAME_*, split the total).
 */
export function transposeGeometry(n: Node, xs: readonly number[], ws: readonly number[], ys: readonly number[]): ConvGeometry {
  const r = xs.length - 2;
  const kernel = n.attrInts('kernel_shape') ?? ws.slice(2);
  const strides = n.attrInts('strides') ?? Array<number>(r).fill(1);
  const dilations = n.attrInts('dilations') ?? Array<number>(r).fill(1);
  const auto = n.attrString('auto_pad') ?? 'NOTSET';
  const explicit = n.attrInts('pads') ?? Array<number>(2 * r).fill(0);
  const outputPadding = n.attrInts('output_padding') ?? Array<number>(r).fill(0);
  const pads = Array<number>(2 * r).fill(0);
  for (let i = 0; i < r; i++) {
    const span = (kernel[i]! - 1) * dilations[i]! + 1;
    // rows of the full (unpadded) transposed conv that the output drops, head plus tail
    const total = strides[i]! * (xs[i + 2]! - 1) + outputPadding[i]! + span - ys[i + 2]!;
    let head: number;
    if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
      // onnxruntime's split, measured: an odd row goes to the tail for SAME_UPPER, to the head for SAME_LOWER
      head = auto === 'SAME_UPPER' ? Math.floor(total / 2) : total - Math.floor(total / 2);
    } else if (auto === 'VALID') head = 0;
    else head = explicit[i]!;
    pads[i] = head;
    // the adjoint Conv must give back exactly `in` positions: (out + head + tail - span) / s + 1
    let tail = Math.max(0, total - head - outputPadding[i]!);
    const len = (t: number): number => Math.floor((ys[i + 2]! + head + t - span) / strides[i]!) + 1;
    while (len(tail) < xs[i + 2]!) tail++;
    if (len(tail) !== xs[i + 2]! || head < 0) {
      throw new EdgefitError('UNSUPPORTED', `${n.label()}: no Conv maps its output gradient back onto its input (axis ${i + 2})`);
    }
    pads[i + r] = tail;
  }
  return { kernel, strides, dilations, pads, group: n.attrInt('group', 1) };
}

const convTranspose: GradRule = {
  diff: [0, 1, 2],
  grad: (n, [dy], need, e) => {
    const [x, w, b] = n.inputs as [string, string, string | undefined];
    const xs = e.shape(x);
    const ws = e.shape(w);
    const ys = e.shape(n.outputs[0]!);
    const geo = transposeGeometry(n, xs, ws, ys);
    const r = xs.length - 2;
    const out: (string | undefined)[] = [];
    if (need[0]) {
      // W is [Cin, Cout/G, k...]: as a Conv weight it maps Cout channels (in G groups) to Cin
      out[0] = e.op('Conv', [dy!, w], {
        group: geo.group,
        kernel_shape: geo.kernel,
        strides: geo.strides,
        pads: geo.pads,
        dilations: geo.dilations,
      });
    }
    // <dy, ConvT(x, W)> = <Conv(dy, W), x>: W's gradient is that Conv's, with input dy and output gradient x
    if (need[1]) out[1] = convWeightGrad(e, dy!, x, geo, ws);
    if (need[2] && b) out[2] = e.reduceSum(dy!, [0, ...Array.from({ length: r }, (_, i) => i + 2)], false);
    return out;
  },
};

export const CONV_TRANSPOSE_GRADS: Readonly<Record<string, GradRule>> = {
  ConvTranspose: convTranspose,
};
