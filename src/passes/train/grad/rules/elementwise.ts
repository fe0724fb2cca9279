// Gradient rules of elementwise ops (with ONNX multidirectional broadcasting undone by summing
// over the broadcast axes), activations and reductions.
import type { Node } from '../../../../ir/node.js';
import type { GradEmitter, GradRule } from '../types.js';

/** The axes a Reduce* node reduces (attribute before opset 13 / 18, input after), normalised. */
export function reduceAxes(n: Node, e: GradEmitter): number[] {
  const rank = e.shape(n.inputs[0]!).length;
  const fromInput = n.inputs[1] ? e.constant(n.inputs[1])?.toNumbers() : undefined;
  const axes = fromInput ?? n.attrInts('axes') ?? [];
  if (!axes.length) return n.attrInt('noop_with_empty_axes', 0) ? [] : Array.from({ length: rank }, (_, i) => i);
  return axes.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
}

/** dy of a reduction, broadcast back over the reduced axes to the input's shape. */
function expandBack(n: Node, dy: string, e: GradEmitter): string {
  const xs = e.shape(n.inputs[0]!);
  const axes = reduceAxes(n, e);
  const kept = xs.map((d, i) => (axes.includes(i) ? 1 : d));
  return e.op('Expand', [e.reshape(dy, kept), e.constInt64(xs)]);
}

const zeroLike = (e: GradEmitter, like: string): string => e.constFloat([0], [], like);

export const ELEMENTWISE_GRADS: Readonly<Record<string, GradRule>> = {
  Add: {
    diff: [0, 1],
    grad: (n, [dy], need, e) => n.inputs.map((x, i) => (need[i] ? e.unbroadcast(dy!, e.shape(x)) : undefined)),
  },
  Sub: {
    diff: [0, 1],
    grad: (n, [dy], need, e) => [
      need[0] ? e.unbroadcast(dy!, e.shape(n.inputs[0]!)) : undefined,
      need[1] ? e.unbroadcast(e.op('Neg', [dy!]), e.shape(n.inputs[1]!)) : undefined,
    ],
  },
  Mul: {
    diff: [0, 1],
    grad: (n, [dy], need, e) => {
      const [a, b] = n.inputs as [string, string];
      return [
        need[0] ? e.unbroadcast(e.op('Mul', [dy!, b]), e.shape(a)) : undefined,
        need[1] ? e.unbroadcast(e.op('Mul', [dy!, a]), e.shape(b)) : undefined,
      ];
    },
  },
  Neg: { diff: [0], grad: (_n, [dy], _need, e) => [e.op('Neg', [dy!])] },
  Sum: {
    diff: Array.from({ length: 16 }, (_, i) => i),
    grad: (n, [dy], need, e) => n.inputs.map((x, i) => (need[i] ? e.unbroadcast(dy!, e.shape(x)) : undefined)),
  },
  Relu: {
    diff: [0],
    // the output is > 0 exactly where the input is, and reading it keeps the input's buffer free
    grad: (n, [dy], _need, e) => [e.op('Where', [e.op('Greater', [n.outputs[0]!, zeroLike(e, dy!)]), dy!, zeroLike(e, dy!)])],
  },
  ReduceSum: { diff: [0], grad: (n, [dy], _need, e) => [expandBack(n, dy!, e)] },
  ReduceMean: {
    diff: [0],
    grad: (n, [dy], _need, e) => {
      const xs = e.shape(n.inputs[0]!);
      const count = reduceAxes(n, e).reduce((a, ax) => a * xs[ax]!, 1);
      return [e.op('Mul', [expandBack(n, dy!, e), e.constFloat([1 / count], [], dy!)])];
    },
  },
};
