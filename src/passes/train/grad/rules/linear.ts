// Gradient rules of the weight layers: Conv, ConvTranspose, Gemm, MatMul, BatchNormalization
// (inference form).
import type { GradRule } from '../types.js';

export const LINEAR_GRADS: Readonly<Record<string, GradRule>> = {};
