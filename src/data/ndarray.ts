// The in-memory form of one input tensor on its way to onnxruntime: a dtype, a shape and a typed
// array. npy/npz/image/synthetic loaders all produce it; the evaluator's child turns it into an
// ort.Tensor. Typed arrays survive IPC with fork's 'advanced' serialization, so no re-encoding.
import { EdgefitError } from '../errors.js';
import { halfToFloat } from '../ir/float16.js';

/** dtype name -> typed array constructor, numpy descr (little-endian) and onnxruntime tensor type. */
export const ND_DTYPES = {
  float32: { ctor: Float32Array, descr: '<f4', ort: 'float32' },
  float64: { ctor: Float64Array, descr: '<f8', ort: 'float64' },
  float16: { ctor: Uint16Array, descr: '<f2', ort: 'float16' },
  int8: { ctor: Int8Array, descr: '|i1', ort: 'int8' },
  uint8: { ctor: Uint8Array, descr: '|u1', ort: 'uint8' },
  int16: { ctor: Int16Array, descr: '<i2', ort: 'int16' },
  uint16: { ctor: Uint16Array, descr: '<u2', ort: 'uint16' },
  int32: { ctor: Int32Array, descr: '<i4', ort: 'int32' },
  uint32: { ctor: Uint32Array, descr: '<u4', ort: 'uint32' },
  int64: { ctor: BigInt64Array, descr: '<i8', ort: 'int64' },
  uint64: { ctor: BigUint64Array, descr: '<u8', ort: 'uint64' },
  bool: { ctor: Uint8Array, descr: '|b1', ort: 'bool' },
} as const;

export type NdDType = keyof typeof ND_DTYPES;
export type NdData = InstanceType<(typeof ND_DTYPES)[NdDType]['ctor']>;

export interface NdArray {
  dtype: NdDType;
  shape: number[];
  data: NdData;
}

export function isNdDType(s: string): s is NdDType {
  return Object.prototype.hasOwnProperty.call(ND_DTYPES, s);
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: readonly (number | string | null)[]): string {
  return shape.length ? shape.map((d) => (typeof d === 'number' ? String(d) : '?')).join('x') : 'scalar';
}

/** Allocate a zeroed array of a dtype and shape. */
export function ndZeros(dtype: NdDType, shape: number[]): NdArray {
  const Ctor = ND_DTYPES[dtype].ctor;
  return { dtype, shape, data: new Ctor(shapeSize(shape)) as NdData };
}

/** Values as float64 numbers (int64 beyond 2^53 loses precision; fine for scores and labels). */
export function ndToFloat64(a: NdArray): Float64Array {
  const out = new Float64Array(a.data.length);
  const d = a.data;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) {
    for (let i = 0; i < d.length; i++) out[i] = Number(d[i]!);
  } else if (a.dtype === 'float16') {
    for (let i = 0; i < d.length; i++) out[i] = halfToFloat((d as Uint16Array)[i]!);
  } else {
    for (let i = 0; i < d.length; i++) out[i] = (d as Float32Array)[i]!;
  }
  return out;
}

/**
 * Split an array along axis 0 into chunks of `batch` rows (views, no copy). Used to turn a stack
 * of N samples into N feeds for a batch-1 model.
 */
export function splitAxis0(a: NdArray, batch: number): NdArray[] {
  const n = a.shape[0] ?? 1;
  if (batch <= 0 || n % batch !== 0) {
    throw new EdgefitError('SHAPE', `cannot split ${n} rows into batches of ${batch}`);
  }
  const row = shapeSize(a.shape.slice(1));
  const out: NdArray[] = [];
  for (let i = 0; i < n; i += batch) {
    out.push({ dtype: a.dtype, shape: [batch, ...a.shape.slice(1)], data: a.data.subarray(i * row, (i + batch) * row) as NdData });
  }
  return out;
}
