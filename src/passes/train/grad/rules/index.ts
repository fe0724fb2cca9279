// The gradient rules by op, one table assembled from the families (elementwise, linear algebra
// and convolution, shape and layout). A model with an op outside the table is refused for
// training with the op named (backward.ts).
import type { GradRules } from '../types.js';
import { ACTIVATION_GRADS } from './activations.js';
import { CONV_TRANSPOSE_GRADS } from './conv-transpose.js';
import { ELEMENTWISE_GRADS } from './elementwise.js';
import { LINEAR_GRADS } from './linear.js';
import { NORM_GRADS } from './norm.js';
import { QUANTIZE_GRADS } from './quantize.js';
import { SHAPE_GRADS } from './shape.js';

export const GRAD_RULES: GradRules = {
  ...ELEMENTWISE_GRADS,
  ...ACTIVATION_GRADS,
  ...LINEAR_GRADS,
  ...CONV_TRANSPOSE_GRADS,
  ...NORM_GRADS,
  ...SHAPE_GRADS,
  ...QUANTIZE_GRADS,
};
