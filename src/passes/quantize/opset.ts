// Per-channel QuantizeLinear/DequantizeLinear (the `axis` attribute) exist from opset 13. A model
// at an older opset is raised to 13 only when no op it contains changed meaning on the way (the
// table below); otherwise the Q/DQ nodes use onnxruntime's com.microsoft domain, whose
// QuantizeLinear/DequantizeLinear take `axis` at any opset and are fused the same way.
import type { Model } from '../../ir/model.js';
import { opsetVersion } from '../../ir/model.js';

/** op -> first opset (<= 13) whose definition differs from older ones in a way that matters here. */
export const BREAKING_UP_TO_13 = {
  Clip: 11, // min/max attributes became inputs
  Slice: 10, // starts/ends attributes became inputs
  Squeeze: 13, // axes attribute became an input
  Unsqueeze: 13,
  Split: 13,
  ReduceSum: 13,
  Softmax: 13, // from "flatten to 2-D at axis" to "normalise along axis"
  LogSoftmax: 13,
  Hardmax: 13,
  Resize: 11, // roi input added
  Upsample: 10, // deprecated
  Pad: 11, // pads attribute became an input
  TopK: 10, // k attribute became an input
  Dropout: 12, // ratio attribute became an input
  Scatter: 11, // deprecated
} as const;

export interface OpsetPlan {
  from: number;
  to: number;
  qdqDomain: '' | 'com.microsoft';
  why: string;
}

export function planOpset(model: Model): OpsetPlan {
  const v = opsetVersion(model);
  if (v >= 13) return { from: v, to: v, qdqDomain: '', why: `opset ${v} has per-channel QuantizeLinear/DequantizeLinear` };
  const blockers = new Set<string>();
  for (const n of model.graph.nodes) {
    if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
    const since = (BREAKING_UP_TO_13 as Record<string, number>)[n.opType];
    if (since === undefined || v >= since) continue;
    // Softmax over the last axis means the same in both definitions
    if ((n.opType === 'Softmax' || n.opType === 'LogSoftmax') && n.attrInt('axis') === -1) continue;
    blockers.add(n.opType);
  }
  if (blockers.size === 0) return { from: v, to: 13, qdqDomain: '', why: `raised opset ${v} -> 13: no op in the model changed meaning between them` };
  return {
    from: v,
    to: v,
    qdqDomain: 'com.microsoft',
    why: `kept opset ${v} (${[...blockers].sort().join(', ')} changed meaning before 13); Q/DQ use onnxruntime's com.microsoft domain, which allows per-channel axes at any opset`,
  };
}

export function applyOpsetPlan(model: Model, p: OpsetPlan): void {
  if (p.to !== p.from) model.opsets.set(model.opsets.has('ai.onnx') ? 'ai.onnx' : '', p.to);
  if (p.qdqDomain === 'com.microsoft' && !model.opsets.has('com.microsoft')) model.opsets.set('com.microsoft', 1);
}
