// The gradient rule of BatchNormalization in inference form (opsets 9, 14, 15: y = scale * (x -
// mean) / sqrt(var + eps) + B with the running statistics as constants). Training on the box fine-
// tunes a pruned or fake-quantized model whose statistics were measured on far more data than a
// box sees, so mean and var stay fixed (they get no gradient) and the layer is affine per channel.
import { EdgefitError } from '../../../../errors.js';
import type { GradRule } from '../types.js';

const batchNorm: GradRule = {
  diff: [0, 1, 2],
  grad: (n, [dy], need, e) => {
    if (n.attrInt('training_mode', 0) === 1 || n.outputs.filter(Boolean).length > 1) {
      throw new EdgefitError(
        'UNSUPPORTED',
        `${n.label()}: BatchNormalization in training mode cannot be trained on the box (export it in inference form)`,
      );
    }
    const [x, scale, , mean, variance] = n.inputs as [string, string, string, string, string];
    const xs = e.shape(x);
    // the parameters cover dim 1 (and, before opset 9 with spatial=0, the dims after it); they
    // broadcast over the batch and the rest
    const ps = e.shape(scale);
    const tail = xs.length - 1 - ps.length;
    const bshape = [...ps, ...Array<number>(tail).fill(1)];
    const summedAxes = [0, ...Array.from({ length: tail }, (_, i) => i + 1 + ps.length)];
    // 1 / sqrt(var + eps), per channel: a few ops on [C], nothing on the activations
    const invStd = e.op('Reciprocal', [e.op('Sqrt', [e.op('Add', [variance, e.constFloat([n.attrFloat('epsilon', 1e-5)], [], x)])])]);
    const out: (string | undefined)[] = [];
    if (need[0]) out[0] = e.op('Mul', [dy!, e.reshape(e.op('Mul', [scale, invStd]), bshape)]);
    if (need[1]) {
      // sum(dy * (x - mean)) / std: the division applied after the reduction, on [C] only
      const centred = e.op('Sub', [x, e.reshape(mean, bshape)]);
      const summed = e.reduceSum(e.op('Mul', [dy!, centred]), summedAxes, false);
      out[1] = e.reshape(e.op('Mul', [summed, invStd]), ps);
    }
    if (need[2]) out[2] = e.reshape(e.reduceSum(dy!, summedAxes, false), e.shape(n.inputs[2]!));
    return out;
  },
};

export const NORM_GRADS: Readonly<Record<string, GradRule>> = {
  BatchNormalization: batchNorm,
};
