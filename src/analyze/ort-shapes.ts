// Fallback for shapes the static rules cannot infer: run the model once in onnxruntime with
// those values exposed as extra graph outputs, and read their dims. Inputs are zero-filled
// tensors of the given shapes (shapes only, so the values do not matter).
import ort from 'onnxruntime-node';
import { openSession } from '../runtime/runner.js';
import { cloneModel, type Model } from '../ir/model.js';
import { EdgefitError } from '../errors.js';
import type { DType } from '../ir/dtype.js';
import type { TensorType } from '../ir/types.js';

const ORT_TYPES: Partial<Record<DType, ort.Tensor.Type>> = {
  float32: 'float32',
  float16: 'float16',
  int8: 'int8',
  uint8: 'uint8',
  int32: 'int32',
  int64: 'int64',
  bool: 'bool',
  float64: 'float64',
};

export function zeroTensor(dtype: DType, dims: number[]): ort.Tensor {
  const type = ORT_TYPES[dtype];
  if (!type) throw new EdgefitError('UNSUPPORTED', `input dtype ${dtype} is not supported for synthetic feeds`);
  const n = dims.reduce((a, b) => a * b, 1);
  const data =
    type === 'int64'
      ? new BigInt64Array(n)
      : type === 'float32'
        ? new Float32Array(n)
        : type === 'int32'
          ? new Int32Array(n)
          : type === 'int8'
            ? new Int8Array(n)
            : type === 'uint8'
              ? new Uint8Array(n)
              : type === 'bool'
                ? new Uint8Array(n)
                : type === 'float64'
                  ? new Float64Array(n)
                  : new Uint16Array(n);
  return new ort.Tensor(type, data, dims);
}

/** Types of `values` found by running the model once (on a copy: the model is left as it was). */
export async function shapesFromOrt(model: Model, shapes: Map<string, number[]>, values: string[]): Promise<Map<string, TensorType>> {
  const found = new Map<string, TensorType>();
  if (values.length === 0) return found;
  const probe = cloneModel(model);
  const existing = new Set(probe.graph.outputs.map((o) => o.name));
  for (const v of values) if (!existing.has(v)) probe.graph.outputs.push({ name: v, type: null });
  const feeds: Record<string, ort.Tensor> = {};
  for (const inp of model.graph.runtimeInputs()) {
    const dims = shapes.get(inp.name) ?? inp.type?.shape?.map((d) => (typeof d === 'number' ? d : NaN));
    if (!dims || dims.some((d) => Number.isNaN(d))) {
      throw new EdgefitError('USAGE', `input '${inp.name}' has dynamic dims`, { remedy: { option: 'shapes', input: inp.name } });
    }
    feeds[inp.name] = zeroTensor(inp.type?.dtype ?? 'float32', dims);
  }
  const session = await openSession(probe, { level: 'disabled' });
  try {
    const out = await session.run(feeds, values);
    for (const v of values) {
      const t = out[v];
      if (!t) continue;
      const dtype = (Object.entries(ORT_TYPES).find(([, o]) => o === t.type)?.[0] ?? 'float32') as DType;
      found.set(v, { dtype, shape: [...t.dims] });
    }
    return found;
  } finally {
    await session.release();
  }
}
