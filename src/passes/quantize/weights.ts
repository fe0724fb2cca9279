// Weight-side quantization: symmetric int8 (per output channel or per tensor), int32 biases on
// the product scale, and fp16 storage for the size-only mode.
import { Tensor } from '../../ir/tensor.js';

export interface QuantizedWeight {
  q: Tensor;
  scale: Tensor;
  zeroPoint: Tensor;
  /** Per-channel scales (length 1 when per tensor), for the bias scale. */
  scales: Float32Array;
  /** Quantization axis, or undefined for per tensor. */
  axis: number | undefined;
}

/**
 * Symmetric int8 with zero point 0: onnxruntime's int8 GEMM kernels require it for weights.
 * `reduceRange` keeps 7 bits (|q| <= 63), see platform.ts.
 */
export function quantizeWeight(w: Tensor, name: string, opts: { axis?: number; reduceRange: boolean }): QuantizedWeight {
  const data = w.toFloat32();
  const dims = w.dims;
  const qmax = opts.reduceRange ? 63 : 127;
  const axis = opts.axis;
  const channels = axis === undefined ? 1 : dims[axis]!;
  // elements of one channel are `inner`-long runs repeated `outer` times
  let inner = 1;
  if (axis !== undefined) for (let i = axis + 1; i < dims.length; i++) inner *= dims[i]!;
  const chanOf = (i: number): number => (axis === undefined ? 0 : Math.floor(i / inner) % channels);
  const maxAbs = new Float32Array(channels);
  for (let i = 0; i < data.length; i++) {
    const c = chanOf(i);
    const a = Math.abs(data[i]!);
    if (a > maxAbs[c]!) maxAbs[c] = a;
  }
  const scales = new Float32Array(channels);
  // an all-zero channel (common after pruning) still needs a positive scale
  for (let c = 0; c < channels; c++) scales[c] = maxAbs[c]! > 0 ? maxAbs[c]! / qmax : 1;
  const q = new Int8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = Math.round(data[i]! / scales[chanOf(i)]!);
    q[i] = v > qmax ? qmax : v < -qmax ? -qmax : v;
  }
  return packWeight(name, dims, q, scales, axis);
}

/** The int8 weight, its scales and zero points as tensors (symmetric: zero points 0). */
export function packWeight(
  name: string,
  dims: readonly number[],
  q: Int8Array,
  scales: Float32Array,
  axis: number | undefined,
): QuantizedWeight {
  const sdims = axis === undefined ? [] : [scales.length];
  return {
    q: Tensor.fromInt8(`${name}_q8`, dims, q),
    scale: Tensor.fromFloat32(`${name}_s`, sdims, scales),
    zeroPoint: Tensor.fromInt8(`${name}_z`, sdims, new Int8Array(scales.length)),
    scales,
    axis,
  };
}

/** Bias as int32 on scale inputScale * weightScale[c] (what QLinearConv / QGemm expect). */
export function quantizeBias(
  b: Tensor,
  name: string,
  inputScale: number,
  wScales: Float32Array,
): { q: Tensor; scale: Tensor; zeroPoint: Tensor } {
  const data = b.toFloat32();
  const n = data.length;
  const scales = new Float32Array(n);
  const q = new Int32Array(n);
  for (let c = 0; c < n; c++) {
    const s = inputScale * (wScales.length === 1 ? wScales[0]! : wScales[c]!);
    scales[c] = s;
    q[c] = Math.max(-2147483648, Math.min(2147483647, Math.round(data[c]! / s)));
  }
  // per-tensor weights give one bias scale: keep it scalar so no axis (opset 13) is needed
  const perTensor = wScales.length === 1;
  return {
    q: Tensor.fromInt32(`${name}_q8`, [n], q),
    scale: Tensor.fromFloat32(`${name}_s`, perTensor ? [] : [n], perTensor ? scales.subarray(0, 1) : scales),
    zeroPoint: Tensor.fromInt32(`${name}_z`, perTensor ? [] : [n], new Int32Array(perTensor ? 1 : n)),
  };
}

/** Round a float32 tensor through fp16 (values as they will be after storage in half precision). */
export function toFloat16(w: Tensor, name: string): Tensor {
  return Tensor.fromFloat16(name, w.dims, w.toFloat32());
}
