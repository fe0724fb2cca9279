// The gradient rules the fake quantizers need (qat.ts), given to the trainer as extra rules: the
// shared table (src/passes/train/grad/rules/) wins wherever it has the same op, so these step
// aside once it covers them. Round is straight-through (d Round(x)/dx := 1), which with Clip's
// in-range mask and Div makes the step size's gradient exactly LSQ's (Esser et al. 2020).
import type { Node } from '../../ir/node.js';
import type { GradEmitter, GradRules } from '../train/grad/types.js';

/** Clip's bounds: inputs 1 and 2 from opset 11, attributes before; undefined where open. */
function clipBounds(n: Node, e: GradEmitter): [string | undefined, string | undefined] {
  const x = n.inputs[0]!;
  if (e.opset >= 11) return [n.inputs[1] || undefined, n.inputs[2] || undefined];
  const lo = n.attrFloat('min');
  const hi = n.attrFloat('max');
  return [lo !== undefined ? e.constFloat([lo], [], x) : undefined, hi !== undefined ? e.constFloat([hi], [], x) : undefined];
}

export const QAT_GRADS: GradRules = {
  // straight-through: rounding is treated as the identity backwards
  Round: { diff: [0], grad: (_n, [dy]) => [dy] },
  Clip: {
    diff: [0],
    // the gradient passes where the input is inside [min, max] (bounds included), zero outside
    grad: (n, [dy], _need, e) => {
      const x = n.inputs[0]!;
      const [lo, hi] = clipBounds(n, e);
      const outside = [lo ? e.op('Less', [x, lo]) : undefined, hi ? e.op('Greater', [x, hi]) : undefined].filter(
        (v): v is string => v !== undefined,
      );
      if (!outside.length) return [dy];
      const mask = outside.length === 2 ? e.op('Or', outside) : outside[0]!;
      return [e.op('Where', [mask, e.constFloat([0], [], dy), dy!])];
    },
  },
  Div: {
    diff: [0, 1],
    grad: (n, [dy], need, e) => {
      const [a, b] = n.inputs as [string, string];
      const da = need[0] || need[1] ? e.op('Div', [dy!, b]) : undefined;
      return [
        need[0] ? e.unbroadcast(da!, e.shape(a)) : undefined,
        // d(a/b)/db = -a/b^2 = -(dy/b) * (a/b), reading the forward output a/b
        need[1] ? e.unbroadcast(e.op('Neg', [e.op('Mul', [da!, n.outputs[0]!])]), e.shape(b)) : undefined,
      ];
    },
  },
};
