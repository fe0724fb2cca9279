// The IR's element types: one table, everything derived. Each carries its ONNX
// TensorProto.DataType number because the IR keeps ONNX attribute values as they are (Cast's
// 'to', ConstantOfShape's value): shape rules read those numbers, and the codec (src/onnx) maps
// the same numbers to and from protobuf. The IR owns the table; src/onnx imports it, never the reverse.
export const DTYPES = {
  float32: { onnx: 1, bytes: 4 },
  uint8: { onnx: 2, bytes: 1 },
  int8: { onnx: 3, bytes: 1 },
  uint16: { onnx: 4, bytes: 2 },
  int16: { onnx: 5, bytes: 2 },
  int32: { onnx: 6, bytes: 4 },
  int64: { onnx: 7, bytes: 8 },
  string: { onnx: 8, bytes: 0 },
  bool: { onnx: 9, bytes: 1 },
  float16: { onnx: 10, bytes: 2 },
  float64: { onnx: 11, bytes: 8 },
  uint32: { onnx: 12, bytes: 4 },
  uint64: { onnx: 13, bytes: 8 },
  bfloat16: { onnx: 16, bytes: 2 },
} as const;

export type DType = keyof typeof DTYPES | 'undefined';

const BY_NUMBER = new Map<number, DType>(Object.entries(DTYPES).map(([k, v]) => [v.onnx, k as DType]));

export function dtypeFromOnnx(n: number | undefined): DType {
  if (n === undefined || n === 0) return 'undefined';
  const d = BY_NUMBER.get(n);
  return d ?? 'undefined';
}

export function dtypeToOnnx(d: DType): number {
  return d === 'undefined' ? 0 : DTYPES[d].onnx;
}

export function dtypeBytes(d: DType): number {
  return d === 'undefined' ? 0 : DTYPES[d].bytes;
}

export function isFloatDType(d: DType): boolean {
  return d === 'float32' || d === 'float16' || d === 'float64' || d === 'bfloat16';
}

/** The integer range of the 8-bit types activations are quantized to (QuantizeLinear saturates to it). */
export const INT8_RANGES = { uint8: [0, 255], int8: [-128, 127] } as const;

/** The range of `d` if it is an 8-bit quantized type, else undefined. */
export function int8Range(d: DType): readonly [number, number] | undefined {
  return d === 'uint8' || d === 'int8' ? INT8_RANGES[d] : undefined;
}
