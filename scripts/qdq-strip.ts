// Diagnostics on a finished static int8 model: which activations it quantizes, and the same model
// with some of them float again (their QuantizeLinear -> DequantizeLinear pairs removed, weights
// left int8). Used by bench-quantize's REC_DIAG and by diag-acts.
import { parseModel, serializeModel } from '../src/onnx/index.js';

/** The quantized activations of an int8 model (inputs of non-constant QuantizeLinear), in graph order. */
export function quantizedActivations(bytes: Uint8Array): string[] {
  const g = parseModel(bytes).graph;
  return g
    .topoOrder()
    .filter((n) => n.opType === 'QuantizeLinear' && !g.constant(n.inputs[0]!))
    .map((n) => n.inputs[0]!);
}

/** `bytes` with the Q/DQ pairs of `floatActs` removed (those activations stay float). */
export function withFloatActivations(bytes: Uint8Array, floatActs: Iterable<string>): Uint8Array {
  const m = parseModel(bytes);
  const g = m.graph;
  for (const v of floatActs) {
    for (const qn of g.consumers(v).filter((n) => n.opType === 'QuantizeLinear')) {
      for (const dq of g.consumers(qn.outputs[0]!).filter((n) => n.opType === 'DequantizeLinear')) {
        g.replaceAllUses(dq.outputs[0]!, v);
        g.removeNode(dq);
      }
      g.removeNode(qn);
    }
  }
  return serializeModel(m);
}
