// protobufjs plumbing. int64 fields decode to JS numbers (Long disabled): ONNX int64s are dims,
// attribute ints and versions, all far below 2^53.
import protobuf from 'protobufjs';
import { ONNX_PROTO } from './schema.js';
import { EdgefitError } from '../errors.js';

protobuf.util.Long = null as unknown as typeof protobuf.util.Long;
protobuf.configure();

const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
export const ModelProtoType = root.lookupType('onnx.ModelProto');
export const GraphProtoType = root.lookupType('onnx.GraphProto');

// Structural views of the decoded messages, for the serde only.
export interface PEntry {
  key?: string;
  value?: string;
}
export interface PTensor {
  dims?: number[];
  data_type?: number;
  segment?: unknown;
  float_data?: number[];
  int32_data?: number[];
  string_data?: Uint8Array[];
  int64_data?: number[];
  name?: string;
  doc_string?: string;
  raw_data?: Uint8Array;
  external_data?: PEntry[];
  data_location?: number;
  double_data?: number[];
  uint64_data?: number[];
  metadata_props?: PEntry[];
}
export interface PDim {
  dim_value?: number;
  dim_param?: string;
  denotation?: string;
}
export interface PTypeProto {
  tensor_type?: { elem_type?: number; shape?: { dim?: PDim[] } };
  sequence_type?: unknown;
  map_type?: unknown;
  optional_type?: unknown;
  sparse_tensor_type?: unknown;
  denotation?: string;
}
export interface PValueInfo {
  name?: string;
  type?: PTypeProto;
  doc_string?: string;
  metadata_props?: PEntry[];
}
export interface PAttr {
  name?: string;
  ref_attr_name?: string;
  doc_string?: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: PTensor;
  g?: PGraph;
  sparse_tensor?: unknown;
  tp?: unknown;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  tensors?: PTensor[];
  graphs?: PGraph[];
  sparse_tensors?: unknown[];
  type_protos?: unknown[];
}
export interface PNode {
  input?: string[];
  output?: string[];
  name?: string;
  op_type?: string;
  domain?: string;
  overload?: string;
  attribute?: PAttr[];
  doc_string?: string;
  metadata_props?: PEntry[];
}
export interface PGraph {
  node?: PNode[];
  name?: string;
  initializer?: PTensor[];
  sparse_initializer?: unknown[];
  doc_string?: string;
  input?: PValueInfo[];
  output?: PValueInfo[];
  value_info?: PValueInfo[];
  quantization_annotation?: unknown[];
  metadata_props?: PEntry[];
}
export interface POpset {
  domain?: string;
  version?: number;
}
export interface PModel {
  ir_version?: number;
  opset_import?: POpset[];
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: number;
  doc_string?: string;
  graph?: PGraph;
  metadata_props?: PEntry[];
  training_info?: unknown[];
  functions?: unknown[];
}

export function decodeModelProto(bytes: Uint8Array): PModel {
  try {
    return ModelProtoType.decode(bytes) as unknown as PModel;
  } catch (e) {
    throw new EdgefitError('CORRUPT_MODEL', `not a readable ONNX model: ${(e as Error).message}`, { cause: e });
  }
}

export function encodeModelProto(m: PModel): Uint8Array {
  return ModelProtoType.encode(m as unknown as protobuf.Message).finish();
}

/** Own (present) field check: decoded messages keep defaults on the prototype. */
export function has<T extends object>(o: T, k: keyof T): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}
