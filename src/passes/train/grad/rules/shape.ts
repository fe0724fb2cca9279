// Gradient rules of the ops that move data without arithmetic on it (Reshape, Transpose, Concat,
// Split, Slice, ...), pools, Resize and Pad.
import type { GradRule } from '../types.js';

export const SHAPE_GRADS: Readonly<Record<string, GradRule>> = {
  // Identity and the shape-only views pass the gradient through, reshaped back to the input's shape
  Identity: { diff: [0], grad: (_n, [dy]) => [dy] },
};
