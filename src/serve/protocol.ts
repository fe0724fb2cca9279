// KServe v2 / Triton HTTP inference bodies (issue 19): parse and validate a request against the
// served model's input metadata, encode a response. Two body forms, as Triton defines them:
// - JSON: {"inputs": [{"name", "shape", "datatype", "data": [...]}], "outputs": [...], "parameters"};
// - binary tensor extension: the same JSON header, `Inference-Header-Content-Length` bytes long,
//   followed by each input's raw little-endian bytes (`parameters.binary_data_size` per input, in
//   input order); outputs come back binary when `binary_data_output` (request parameters) or an
//   output's `binary_data` asks.
// - shared memory (Triton's system shared-memory extension): an input's or output's `parameters`
//   name a registered region (`shared_memory_region`, `shared_memory_byte_size`,
//   `shared_memory_offset`) instead of carrying the bytes (shm.ts reads and writes them).
// Every rejection is a ProtocolError carrying its HTTP status and a one-line reason; nothing here
// touches sockets or onnxruntime.
import { halfToFloat } from '../ir/float16.js';
import { ND_DTYPES, shapeSize, type NdArray, type NdDType, type NdData } from '../data/ndarray.js';
import type { RegionIO } from './shm.js';

/** KServe datatype <-> the NdArray dtype onnxruntime takes. BYTES (strings) is not served. */
export const KSERVE_DTYPES = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
} as const satisfies Record<string, NdDType>;
export type KServeDType = keyof typeof KSERVE_DTYPES;

const BY_ND = Object.fromEntries(Object.entries(KSERVE_DTYPES).map(([k, v]) => [v, k])) as Record<NdDType, KServeDType>;

export function kserveDType(dtype: string): KServeDType | null {
  return Object.prototype.hasOwnProperty.call(BY_ND, dtype) ? BY_ND[dtype as NdDType] : null;
}

/** One input or output as metadata routes show it: -1 for a dimension the model leaves free. */
export interface TensorMeta {
  name: string;
  datatype: KServeDType;
  shape: number[];
}

export interface ModelMeta {
  inputs: TensorMeta[];
  outputs: TensorMeta[];
}

export class ProtocolError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A parsed request: the inputs as arrays, and how to answer. */
export interface InferRequest {
  id?: string;
  inputs: Record<string, NdArray>;
  /** Output names asked for (null: all), and whether each goes back binary or into a shared-memory region. */
  outputs: { name: string; binary: boolean; shm?: ShmSpan }[] | null;
  /** Binary outputs unless an output says otherwise (request parameter binary_data_output). */
  binaryDefault: boolean;
  /** Inputs left in shared memory for the worker to map (ShmAccess.mapped): checked, not read. */
  shmInputs: Record<string, { dtype: NdDType; shape: number[]; span: ShmSpan }>;
}

/** Where in a registered shared-memory region a tensor's bytes are. */
export interface ShmSpan {
  region: string;
  offset: number;
  size: number;
}

/** Shared memory as a request parser needs it: the regions, and a buffer to read an input into. */
export interface ShmAccess {
  io: RegionIO;
  alloc(size: number): Buffer;
  /** Inputs are left where they are (mapped by the worker) instead of read: `limit` holds them to the body limit. */
  mapped: boolean;
  limit(size: number): void;
}

export const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A 400 with its one-line reason. */
export const bad = (msg: string): ProtocolError => new ProtocolError(400, msg);

/** Flatten nested JSON arrays (KServe allows row-major nesting) into `out`. */
function flatten(v: unknown, out: unknown[]): void {
  if (Array.isArray(v)) for (const x of v) flatten(x, out);
  else out.push(v);
}

/** JSON values into a typed array of `dtype` (numbers for numeric types, booleans or 0/1 for BOOL). */
function fromJson(name: string, dtype: NdDType, values: unknown[]): NdData {
  // FP16 from JSON numbers would need rounding to half here; binary carries it exactly
  if (dtype === 'float16') throw bad(`input '${name}': FP16 data must be sent binary`);
  const Ctor = ND_DTYPES[dtype].ctor;
  const out = new Ctor(values.length) as NdData;
  const big = out instanceof BigInt64Array || out instanceof BigUint64Array;
  for (let i = 0; i < values.length; i++) {
    let v = values[i];
    if (dtype === 'bool' && typeof v === 'boolean') v = v ? 1 : 0;
    if (typeof v !== 'number') throw bad(`input '${name}': data[${i}] is not a number`);
    if (big) {
      if (!Number.isInteger(v)) throw bad(`input '${name}': data[${i}] is not an integer`);
      (out as BigInt64Array)[i] = BigInt(v as number);
    } else (out as Float32Array)[i] = v as number;
  }
  return out;
}

/** Check one input's declared name, datatype and shape against the model's; the NdDType to use. */
function checkInput(raw: Record<string, unknown>, meta: ModelMeta, seen: Set<string>): { name: string; dtype: NdDType; shape: number[] } {
  const name = raw.name;
  if (typeof name !== 'string') throw bad('every input needs a string "name"');
  const m = meta.inputs.find((i) => i.name === name);
  if (!m) throw bad(`unknown input '${name}'; the model takes ${meta.inputs.map((i) => `'${i.name}'`).join(', ')}`);
  if (seen.has(name)) throw bad(`input '${name}' given twice`);
  seen.add(name);
  if (raw.datatype !== m.datatype) throw bad(`input '${name}' has datatype ${JSON.stringify(raw.datatype)}; the model takes ${m.datatype}`);
  const shape = raw.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
    throw bad(`input '${name}': "shape" must be an array of whole numbers`);
  }
  const dims = shape as number[];
  // an empty tensor is legal ONNX, but no model here does useful work on one and some kernels
  // fail on it in ways that read as a server error: a request with a 0 dimension is the client's
  if (dims.includes(0)) throw bad(`input '${name}' has shape [${dims.join(',')}]: every dimension must be at least 1`);
  const fits = dims.length === m.shape.length && dims.every((d, i) => m.shape[i] === -1 || m.shape[i] === d);
  if (!fits) throw bad(`input '${name}' has shape [${dims.join(',')}]; the model takes [${m.shape.join(',')}] (-1: any)`);
  return { name, dtype: KSERVE_DTYPES[m.datatype], shape: dims };
}

/**
 * Parse a request body. `headerLength` is the Inference-Header-Content-Length header (null: the
 * whole body is JSON). Binary inputs become views of `body`'s memory when aligned (no copy), so
 * `body` must not be reused after; misaligned ones are copied.
 */
export function parseInferRequest(body: Buffer, headerLength: number | null, meta: ModelMeta, shm?: ShmAccess): InferRequest {
  if (headerLength !== null && (!Number.isInteger(headerLength) || headerLength < 0 || headerLength > body.length)) {
    throw bad(`Inference-Header-Content-Length ${headerLength} does not fit a ${body.length}-byte body`);
  }
  const jsonEnd = headerLength ?? body.length;
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8', 0, jsonEnd));
  } catch (e) {
    throw bad(`malformed JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!isObj(doc)) throw bad('the request must be a JSON object');
  if (!Array.isArray(doc.inputs) || doc.inputs.length === 0) throw bad('the request needs a non-empty "inputs" array');
  const seen = new Set<string>();
  const inputs: Record<string, NdArray> = {};
  const shmInputs: InferRequest['shmInputs'] = {};
  let offset = jsonEnd;
  for (const raw of doc.inputs as unknown[]) {
    if (!isObj(raw)) throw bad('each input must be an object');
    const { name, dtype, shape } = checkInput(raw, meta, seen);
    const count = shapeSize(shape);
    const params = isObj(raw.parameters) ? raw.parameters : {};
    const size = params.binary_data_size;
    if (params.shared_memory_region !== undefined) {
      const span = shmSpan(`input '${name}'`, params, shm);
      const need = count * ND_DTYPES[dtype].ctor.BYTES_PER_ELEMENT;
      if (span.size !== need) {
        throw bad(
          `input '${name}': shared_memory_byte_size ${span.size}, shape [${shape.join(',')}] of ${raw.datatype as string} needs ${need}`,
        );
      }
      if (shm!.mapped) {
        shm!.limit(need);
        shm!.io.check(span.region, span.offset, need);
        shmInputs[name] = { dtype, shape, span };
        continue;
      }
      const buf = shm!.alloc(need);
      shm!.io.read(span.region, span.offset, need, buf);
      inputs[name] = { dtype, shape, data: view(buf, 0, count, dtype) };
    } else if (size !== undefined) {
      if (headerLength === null) throw bad(`input '${name}' has binary_data_size but no Inference-Header-Content-Length was given`);
      if (!Number.isInteger(size) || (size as number) < 0) throw bad(`input '${name}': binary_data_size must be a whole number`);
      const bytes = ND_DTYPES[dtype].ctor.BYTES_PER_ELEMENT;
      if ((size as number) !== count * bytes) {
        throw bad(
          `input '${name}': binary_data_size ${size as number} bytes, shape [${shape.join(',')}] of ${raw.datatype as string} needs ${count * bytes}`,
        );
      }
      if (offset + (size as number) > body.length)
        throw bad(`input '${name}': the body ends ${offset + (size as number) - body.length} bytes short`);
      inputs[name] = { dtype, shape, data: view(body, offset, count, dtype) };
      offset += size as number;
    } else {
      if (raw.data === undefined) throw bad(`input '${name}' has neither "data" nor binary_data_size`);
      const flat: unknown[] = [];
      flatten(raw.data, flat);
      if (flat.length !== count) throw bad(`input '${name}' has ${flat.length} values; shape [${shape.join(',')}] needs ${count}`);
      inputs[name] = { dtype, shape, data: fromJson(name, dtype, flat) };
    }
  }
  if (offset !== body.length) throw bad(`${body.length - offset} bytes after the last binary input`);
  const missing = meta.inputs.filter((i) => !seen.has(i.name)).map((i) => `'${i.name}'`);
  if (missing.length) throw bad(`missing input ${missing.join(', ')}`);
  const reqParams = isObj(doc.parameters) ? doc.parameters : {};
  const binaryDefault = reqParams.binary_data_output === true;
  let outputs: InferRequest['outputs'] = null;
  if (doc.outputs !== undefined) {
    if (!Array.isArray(doc.outputs)) throw bad('"outputs" must be an array');
    outputs = (doc.outputs as unknown[]).map((o) => {
      if (!isObj(o) || typeof o.name !== 'string') throw bad('each requested output needs a string "name"');
      const name = o.name;
      if (!meta.outputs.some((m) => m.name === name)) {
        throw bad(`unknown output '${name}'; the model gives ${meta.outputs.map((m) => `'${m.name}'`).join(', ')}`);
      }
      const p = isObj(o.parameters) ? o.parameters : {};
      if (p.shared_memory_region !== undefined) return { name, binary: false, shm: shmSpan(`output '${name}'`, p, shm) };
      return { name, binary: typeof p.binary_data === 'boolean' ? p.binary_data : binaryDefault };
    });
  }
  const id = typeof doc.id === 'string' ? doc.id : undefined;
  return { ...(id !== undefined ? { id } : {}), inputs, outputs, binaryDefault, shmInputs };
}

/** An input's or output's shared-memory parameters, checked against the registered regions. */
function shmSpan(what: string, p: Record<string, unknown>, shm: ShmAccess | undefined): ShmSpan {
  if (!shm) throw bad(`${what}: shared memory is only for applications on this box (loopback or the Unix socket)`);
  const region = p.shared_memory_region;
  const size = p.shared_memory_byte_size;
  const offset = p.shared_memory_offset ?? 0;
  if (typeof region !== 'string' || !shm.io.has(region))
    throw bad(`${what}: no shared-memory region ${JSON.stringify(region)} is registered`);
  if (!Number.isSafeInteger(size) || (size as number) <= 0) throw bad(`${what}: shared_memory_byte_size must be a positive whole number`);
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw bad(`${what}: shared_memory_offset must be a whole number`);
  return { region, offset: offset as number, size: size as number };
}

/** A typed view of `count` elements at `offset` of `body` (a copy when the offset is not aligned). */
function view(body: Buffer, offset: number, count: number, dtype: NdDType): NdData {
  const Ctor = ND_DTYPES[dtype].ctor;
  const at = body.byteOffset + offset;
  if (at % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(body.buffer as ArrayBuffer, at, count) as NdData;
  const copy = new Uint8Array(count * Ctor.BYTES_PER_ELEMENT);
  copy.set(body.subarray(offset, offset + copy.length));
  return new Ctor(copy.buffer, 0, count) as NdData;
}

/** What answered a request: goes into the response's model_version and parameters. */
export interface Producer {
  model: string;
  version: string;
  level: number | null;
  label: string;
}

export interface EncodedResponse {
  headers: Record<string, string>;
  /** JSON header then raw output bytes (views of the outputs' memory, not copies). */
  chunks: Buffer[];
}

/** JSON values of an array (BigInts as numbers; bool as true/false). */
function toJsonValues(a: NdArray): unknown[] {
  const d = a.data;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Array.from(d, Number);
  if (a.dtype === 'bool') return Array.from(d as Uint8Array, (x) => x !== 0);
  if (a.dtype === 'float16') return Array.from(d as Uint16Array, halfToFloat);
  return Array.from(d as Float32Array);
}

/** Encode a response: outputs named in `req.outputs` (all when null), each JSON or binary as asked. */
export function encodeInferResponse(
  req: InferRequest,
  outputs: Record<string, NdArray>,
  by: Producer,
  extra: Record<string, number | string> = {},
  written: Record<string, number> = {},
): EncodedResponse {
  const wanted: NonNullable<InferRequest['outputs']> =
    req.outputs ?? Object.keys(outputs).map((name) => ({ name, binary: req.binaryDefault }));
  const raw: Buffer[] = [];
  const outs = wanted.map(({ name, binary, shm }) => {
    const a = outputs[name]!;
    const datatype = kserveDType(a.dtype) ?? 'BYTES';
    // the server has written it into the region (writeShmOutputs, or the worker: `written`): describe, do not carry
    if (shm) {
      return {
        name,
        datatype,
        shape: a.shape,
        parameters: { shared_memory_region: shm.region, shared_memory_byte_size: written[name] ?? a.data.byteLength },
      };
    }
    if (!binary) return { name, datatype, shape: a.shape, data: toJsonValues(a) };
    const bytes = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength);
    raw.push(bytes);
    return { name, datatype, shape: a.shape, parameters: { binary_data_size: bytes.length } };
  });
  const doc = {
    model_name: by.model,
    model_version: by.version,
    ...(req.id !== undefined ? { id: req.id } : {}),
    parameters: { level: by.level, label: by.label, ...extra },
    outputs: outs,
  };
  const header = Buffer.from(JSON.stringify(doc));
  const total = raw.reduce((s, b) => s + b.length, header.length);
  if (raw.length === 0) return { headers: { 'content-type': 'application/json', 'content-length': String(total) }, chunks: [header] };
  return {
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
      'content-length': String(total),
    },
    chunks: [header, ...raw],
  };
}

/** An output going into shared memory must fit the span the request named (the server's write and the worker's). */
export function checkOutputFits(name: string, bytes: number, size: number): void {
  if (bytes > size) throw bad(`output '${name}' is ${bytes} bytes; its shared_memory_byte_size is ${size}`);
}

/** Write each output the request wants in shared memory into its region (before encodeInferResponse), but those the worker `written` already. */
export function writeShmOutputs(
  req: InferRequest,
  outputs: Record<string, NdArray>,
  io: RegionIO,
  written: Record<string, number> = {},
): void {
  for (const o of req.outputs ?? []) {
    if (!o.shm || written[o.name] !== undefined) continue;
    const d = outputs[o.name]!.data;
    checkOutputFits(o.name, d.byteLength, o.shm.size);
    io.write(o.shm.region, o.shm.offset, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
}
