// Weight-only int8 storage (quantize --mode weights): every Conv/Gemm/MatMul weight is stored as
// int8 with per-channel scales (rounded by the same data-aware rounding as static mode) and read
// back through Cast -> Mul by its scale; activations and arithmetic stay float. A size-only mode,
// like fp16, but a quarter of the float file instead of a half. Not DequantizeLinear: onnxruntime
// never constant-folds DequantizeLinear while its QDQ fusions are on, so such a model dequantized
// every weight on every run and lost the float conv layout optimisations (PP-OCR det ran 1.24x
// slower than float); Cast and Mul of constants fold at load, so the model runs as the float one.
import type { Model } from '../../ir/model.js';
import type { Pass } from '../pass.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { nodeKey, STATIC_OPS, weightAxis, type LayerDecision, type StaticOp, type StaticOptions } from './qdq.js';
import { packWeight, quantizeWeight } from './weights.js';

export interface WeightStorageOptions {
  perChannel: boolean;
  keepFloat: ReadonlySet<string>;
  roundWeight?: StaticOptions['roundWeight'];
}

export function applyWeightStorage(model: Model, o: WeightStorageOptions): LayerDecision[] {
  const g = model.graph;
  const decisions: LayerDecision[] = [];
  for (const n of g.topoOrder()) {
    if ((n.domain !== '' && n.domain !== 'ai.onnx') || !(n.opType in STATIC_OPS)) continue;
    const spec = STATIC_OPS[n.opType as StaticOp];
    const w = g.constant(n.inputs[spec.weight] ?? '');
    if (!w || w.dtype !== 'float32') continue;
    const key = nodeKey(n);
    if (o.keepFloat.has(key)) {
      decisions.push({ node: key, op: n.opType, kind: 'weighted', int8: false, why: 'kept float: most sensitive layer' });
      continue;
    }
    const axis = o.perChannel ? weightAxis(n, w) : undefined;
    // float kernels cannot saturate: full 8-bit weights
    const r = o.roundWeight?.(n, w, axis, false);
    const qw = r
      ? packWeight(g.uniqueName(w.name), w.dims, r.q, r.scales, axis)
      : quantizeWeight(w, g.uniqueName(w.name), { axis, reduceRange: false });
    n.inputs[spec.weight] = castMul(g, n, qw.q, qw.scales, axis);
    // the bias correction of the rounding (adaround, bias) goes into the float bias
    const bName = spec.bias >= 0 ? n.inputs[spec.bias] : undefined;
    const b = bName ? g.constant(bName) : undefined;
    if (bName && b && b.dtype === 'float32' && r?.biasShift && b.size === r.biasShift.length) {
      const shifted = g.uniqueName(`${bName}_corrected`);
      g.setInitializer(
        Tensor.fromFloat32(
          shifted,
          b.dims,
          Float32Array.from(b.toFloat32(), (v, i) => v + r.biasShift![i]!),
        ),
      );
      n.inputs[spec.bias] = shifted;
    }
    decisions.push({ node: key, op: n.opType, kind: 'weighted', int8: true });
  }
  g.touch();
  return decisions;
}

/** Cast(q) * scale before `reader`; per-channel scales broadcast along `axis`. Returns the float value. */
function castMul(g: Model['graph'], reader: Node, q: Tensor, scales: Float32Array, axis: number | undefined): string {
  g.setInitializer(q);
  const sName = g.uniqueName(`${q.name}_scale`);
  g.setInitializer(Tensor.fromFloat32(sName, scales.length === 1 ? [] : q.dims.map((d, i) => (i === axis ? d : 1)), scales));
  const cast = g.uniqueName(`${q.name}_f`);
  const out = g.uniqueName(`${q.name}_w`);
  g.addNode(
    { opType: 'Cast', domain: '', name: '', inputs: [q.name], outputs: [cast], attrs: { to: { type: 'int', value: 1 } } },
    { before: reader },
  );
  g.addNode({ opType: 'Mul', domain: '', name: '', inputs: [cast, sName], outputs: [out] }, { before: reader });
  return out;
}

export const weightStoragePass: Pass<WeightStorageOptions, { layers: LayerDecision[] }> = {
  name: 'quantize-weights',
  requires: ['valid-graph', 'float-model'],
  guarantees: ['stays-valid', 'outputs-kept', 'int8-as-claimed'],
  run(model, o) {
    const layers = applyWeightStorage(model, o);
    return { changed: layers.some((l) => l.int8), details: { layers } };
  },
};
