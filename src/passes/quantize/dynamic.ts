// Dynamic int8 for MatMul/Gemm-heavy models (transformer encoders): weights are int8 in the
// file, activations are quantized per call from their observed range, so no calibration data is
// needed. Each MatMul (and plain Gemm) with a constant 2-D weight becomes onnxruntime's fused
// com.microsoft DynamicQuantizeMatMul, the op its own quantizer emits for this case.
import type { Model } from '../../ir/model.js';
import type { Pass } from '../pass.js';
import { Tensor } from '../../ir/tensor.js';
import { nodeKey, type LayerDecision } from './qdq.js';
import { quantizeWeight } from './weights.js';

export const DYNAMIC_OPS = ['MatMul', 'Gemm'] as const;

function transpose2d(t: Tensor, name: string): Tensor {
  const [r, c] = t.dims as [number, number];
  const src = t.toFloat32();
  const dst = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) dst[j * r + i] = src[i * c + j]!;
  return Tensor.fromFloat32(name, [c, r], dst);
}

export function applyDynamic(
  model: Model,
  o: { perChannel: boolean; reduceRange: boolean; keepFloat: ReadonlySet<string> },
): LayerDecision[] {
  const g = model.graph;
  const decisions: LayerDecision[] = [];
  for (const n of [...g.nodes]) {
    if (!(DYNAMIC_OPS as readonly string[]).includes(n.opType) || (n.domain !== '' && n.domain !== 'ai.onnx')) continue;
    const key = nodeKey(n);
    const w = g.constant(n.inputs[1] ?? '');
    let why: string | undefined;
    if (!w) why = 'weight is not a constant';
    else if (w.dtype !== 'float32') why = `weight dtype ${w.dtype}`;
    else if (w.dims.length !== 2) why = `weight has rank ${w.dims.length}, not 2`;
    else if (o.keepFloat.has(key)) why = 'kept float: most sensitive layer';
    let bias: string | undefined;
    if (!why && n.opType === 'Gemm') {
      if (n.attrInt('transA', 0) !== 0 || n.attrFloat('alpha', 1) !== 1 || n.attrFloat('beta', 1) !== 1)
        why = 'Gemm with transA, alpha or beta';
      const c = n.inputs[2] ? g.constant(n.inputs[2]) : undefined;
      if (n.inputs[2] && (!c || c.dims.length !== 1)) why ??= 'Gemm bias is not a constant vector';
      bias = n.inputs[2] || undefined;
    }
    if (why || !w) {
      decisions.push({ node: key, op: n.opType, int8: false, why: why ?? 'no weight' });
      continue;
    }
    const wName = n.inputs[1]!;
    const kn = n.opType === 'Gemm' && n.attrInt('transB', 0) === 1 ? transpose2d(w, wName) : w;
    const qw = quantizeWeight(kn, g.uniqueName(wName), { axis: o.perChannel ? 1 : undefined, reduceRange: o.reduceRange });
    g.setInitializer(qw.q);
    g.setInitializer(qw.scale);
    g.setInitializer(qw.zeroPoint);
    g.addNode(
      {
        opType: 'DynamicQuantizeMatMul',
        domain: 'com.microsoft',
        name: `${key}_dynamic_int8`,
        inputs: [n.inputs[0]!, qw.q.name, qw.scale.name, qw.zeroPoint.name, ...(bias ? [bias] : [])],
        outputs: [...n.outputs],
      },
      { before: n },
    );
    g.removeNode(n);
    decisions.push({ node: key, op: n.opType, int8: true });
  }
  if (decisions.some((d) => d.int8) && !model.opsets.has('com.microsoft')) model.opsets.set('com.microsoft', 1);
  return decisions;
}

export const dynamicQuantPass: Pass<Parameters<typeof applyDynamic>[1], { layers: LayerDecision[] }> = {
  name: 'quantize-dynamic',
  requires: ['valid-graph', 'float-model'],
  guarantees: ['stays-valid', 'outputs-kept', 'int8-as-claimed'],
  run(model, o) {
    const layers = applyDynamic(model, o);
    return { changed: layers.some((l) => l.int8), details: { layers } };
  },
};
