import { type DType, dtypeBytes } from './dtype.js';
import { halfToFloat, floatToHalf, bf16ToFloat } from './float16.js';
import { EdgefitError } from '../errors.js';

/** How the tensor was stored in the file: kept so that an untouched model re-encodes the same way. */
export type TensorEncoding = 'raw' | 'typed';

export type TensorLike = Float32Array | Int32Array | Uint8Array | Int8Array | BigInt64Array | Float64Array | Uint16Array;

/**
 * A constant tensor (initializer or Constant value). Data is held as little-endian bytes,
 * normally a view into the model file's buffer (no copy); typed views are made on demand.
 */
export class Tensor {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly encoding: TensorEncoding;
  private readonly data: Uint8Array;
  /** Only for dtype 'string'. */
  readonly strings: readonly Uint8Array[] | undefined;
  /** Extra proto fields (doc_string, metadata) carried through untouched. */
  docString: string | undefined;

  constructor(init: {
    name: string;
    dtype: DType;
    dims: readonly number[];
    bytes?: Uint8Array;
    strings?: readonly Uint8Array[];
    encoding?: TensorEncoding;
    docString?: string;
  }) {
    this.name = init.name;
    this.dtype = init.dtype;
    this.dims = Object.freeze([...init.dims]);
    this.encoding = init.encoding ?? 'raw';
    this.strings = init.strings;
    this.docString = init.docString;
    this.data = init.bytes ?? new Uint8Array(0);
    if (this.dtype !== 'string' && this.dtype !== 'undefined') {
      const want = this.size * dtypeBytes(this.dtype);
      if (this.data.byteLength !== want) {
        throw new EdgefitError(
          'CORRUPT_MODEL',
          `tensor '${this.name}' holds ${this.data.byteLength} bytes, but ${this.dtype}[${this.dims.join('x')}] needs ${want}`,
        );
      }
    }
  }

  get size(): number {
    let n = 1;
    for (const d of this.dims) n *= d;
    return n;
  }

  get byteLength(): number {
    return this.data.byteLength;
  }

  /** The raw little-endian bytes (a view; do not mutate). */
  bytes(): Uint8Array {
    return this.data;
  }

  withName(name: string): Tensor {
    return new Tensor({
      name,
      dtype: this.dtype,
      dims: this.dims,
      bytes: this.data,
      strings: this.strings,
      encoding: this.encoding,
      docString: this.docString,
    });
  }

  /** A copy that owns its bytes: code that writes through toFloat32()'s view cannot reach the original. */
  clone(): Tensor {
    return new Tensor({
      name: this.name,
      dtype: this.dtype,
      dims: this.dims,
      bytes: Uint8Array.prototype.slice.call(this.data),
      strings: this.strings,
      encoding: this.encoding,
      docString: this.docString,
    });
  }

  private view<T>(ctor: { new (b: ArrayBufferLike, o: number, n: number): T; BYTES_PER_ELEMENT: number }): T {
    const { buffer, byteOffset, byteLength } = this.data;
    const n = byteLength / ctor.BYTES_PER_ELEMENT;
    if (byteOffset % ctor.BYTES_PER_ELEMENT === 0) return new ctor(buffer, byteOffset, n);
    // Uint8Array's slice copies; a Node Buffer's slice would only make another view
    const copy = Uint8Array.prototype.slice.call(this.data);
    return new ctor(copy.buffer, 0, n);
  }

  /** Values as float32 (a view for aligned float32 data, else a converted copy). */
  toFloat32(): Float32Array {
    switch (this.dtype) {
      case 'float32':
        return this.view(Float32Array);
      case 'float16': {
        const h = this.view(Uint16Array);
        const out = new Float32Array(h.length);
        for (let i = 0; i < h.length; i++) out[i] = halfToFloat(h[i]!);
        return out;
      }
      case 'bfloat16': {
        const h = this.view(Uint16Array);
        const out = new Float32Array(h.length);
        for (let i = 0; i < h.length; i++) out[i] = bf16ToFloat(h[i]!);
        return out;
      }
      case 'float64':
        return Float32Array.from(this.view(Float64Array));
      case 'int8':
        return Float32Array.from(this.view(Int8Array));
      case 'uint8':
      case 'bool':
        return Float32Array.from(this.data);
      case 'int16':
        return Float32Array.from(this.view(Int16Array));
      case 'uint16':
        return Float32Array.from(this.view(Uint16Array));
      case 'int32':
        return Float32Array.from(this.view(Int32Array));
      case 'uint32':
        return Float32Array.from(this.view(Uint32Array));
      case 'int64':
      case 'uint64':
        return Float32Array.from(this.toNumbers());
      default:
        throw new EdgefitError('UNSUPPORTED', `tensor '${this.name}' of dtype ${this.dtype} has no numeric values`);
    }
  }

  /** Integer or float values as JS numbers (int64 beyond 2^53 loses precision, which shape tensors never need). */
  toNumbers(): number[] {
    switch (this.dtype) {
      case 'int64':
        return Array.from(this.view(BigInt64Array), (b) => Number(b));
      case 'uint64':
        return Array.from(this.view(BigUint64Array), (b) => Number(b));
      default:
        return Array.from(this.toFloat32());
    }
  }

  static fromFloat32(name: string, dims: readonly number[], values: Float32Array | readonly number[]): Tensor {
    const f = values instanceof Float32Array ? values : Float32Array.from(values);
    return new Tensor({ name, dtype: 'float32', dims, bytes: new Uint8Array(f.buffer, f.byteOffset, f.byteLength) });
  }

  static fromFloat16(name: string, dims: readonly number[], values: Float32Array): Tensor {
    const h = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) h[i] = floatToHalf(values[i]!);
    return new Tensor({ name, dtype: 'float16', dims, bytes: new Uint8Array(h.buffer) });
  }

  static fromInt64(name: string, dims: readonly number[], values: readonly number[] | readonly bigint[]): Tensor {
    const b = BigInt64Array.from(values as readonly (number | bigint)[], (v) => BigInt(v));
    return new Tensor({ name, dtype: 'int64', dims, bytes: new Uint8Array(b.buffer) });
  }

  static fromInt32(name: string, dims: readonly number[], values: Int32Array | readonly number[]): Tensor {
    const b = values instanceof Int32Array ? values : Int32Array.from(values);
    return new Tensor({ name, dtype: 'int32', dims, bytes: new Uint8Array(b.buffer, b.byteOffset, b.byteLength) });
  }

  static fromInt8(name: string, dims: readonly number[], values: Int8Array): Tensor {
    return new Tensor({ name, dtype: 'int8', dims, bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
  }

  static fromUint8(name: string, dims: readonly number[], values: Uint8Array): Tensor {
    return new Tensor({ name, dtype: 'uint8', dims, bytes: values });
  }

  static scalarFloat(name: string, v: number): Tensor {
    return Tensor.fromFloat32(name, [], [v]);
  }
}
