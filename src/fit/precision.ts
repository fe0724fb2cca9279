// Which int8 flavour the fitter tries. Static QDQ (calibrated activations) is what pays on
// convolutional models; on models whose MACs sit in MatMul/Gemm (transformer encoders, MLPs,
// LSTM projections) onnxruntime's dynamic int8 (activations quantized per call) is the usual
// choice and keeps accuracy where static ranges of attention activations do not.
import type { ModelCost } from '../analyze/index.js';
import type { CandidateConfig } from './types.js';

const MATMUL_OPS: ReadonlySet<string> = new Set(['MatMul', 'Gemm']);

/** Share of the model's known MACs spent in MatMul/Gemm (0 when none are known). */
export function matmulShare(cost: Pick<ModelCost, 'layers'>): number {
  let all = 0;
  let mm = 0;
  for (const l of cost.layers) {
    if (l.macs === null) continue;
    all += l.macs;
    if (MATMUL_OPS.has(l.op)) mm += l.macs;
  }
  return all > 0 ? mm / all : 0;
}

/** int8-dynamic when at least half of the MACs are MatMul/Gemm, else int8-static. */
export function int8Flavour(cost: Pick<ModelCost, 'layers'>): Extract<CandidateConfig['quant'], 'int8-static' | 'int8-dynamic'> {
  return matmulShare(cost) >= 0.5 ? 'int8-dynamic' : 'int8-static';
}
