// ModelProto <-> IR. The only place (with proto.ts) that knows protobuf field names.
import { readFileSync } from 'node:fs';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { TextDecoder, TextEncoder } from 'node:util';
import { EdgefitError } from '../errors.js';
import { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import type { AttrValue, Dim, OpaqueGraph, TensorType, ValueInfo } from '../ir/types.js';
import { dtypeBytes, dtypeFromOnnx, dtypeToOnnx, isFloatDType, type DType } from '../ir/dtype.js';
import {
  has,
  type PAttr,
  type PEntry,
  type PGraph,
  type PModel,
  type PNode,
  type PTensor,
  type PTypeProto,
  type PValueInfo,
} from './proto.js';

const utf8d = new TextDecoder('utf-8');
const utf8e = new TextEncoder();

export interface DecodeOptions {
  /** Folder of the model file, for external data. Without it, external data is refused. */
  baseDir?: string;
}

const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8, TENSORS: 9, GRAPHS: 10 } as const;

// ---------------- decode ----------------

export function protoToModel(p: PModel, opts: DecodeOptions = {}): Model {
  if (!p.graph) throw new EdgefitError('CORRUPT_MODEL', 'model has no graph (is this an ONNX file?)');
  const ir = p.ir_version ?? 0;
  if (ir < 3 || ir > 12) throw new EdgefitError('UNSUPPORTED', `unsupported ONNX IR version ${ir} (edgefit reads 3 to 12)`);
  const opsets = new Map<string, number>();
  const bareOpsets: string[] = []; // entries written without a domain field (torch does this)
  for (const o of p.opset_import ?? []) {
    opsets.set(o.domain ?? '', o.version ?? 0);
    if (!has(o, 'domain')) bareOpsets.push(o.domain ?? '');
  }
  if (opsets.size === 0) throw new EdgefitError('CORRUPT_MODEL', 'model declares no opset_import');
  const metadata = new Map<string, string>();
  for (const e of p.metadata_props ?? []) metadata.set(e.key ?? '', e.value ?? '');
  return {
    irVersion: ir,
    opsets,
    producerName: p.producer_name ?? '',
    producerVersion: p.producer_version ?? '',
    domain: p.domain ?? '',
    modelVersion: p.model_version ?? 0,
    docString: p.doc_string ?? '',
    metadata,
    graph: graphFromProto(p.graph, opts),
    extra: { training_info: p.training_info, functions: p.functions, bareOpsets },
  };
}

function graphFromProto(g: PGraph, opts: DecodeOptions): Graph {
  const graph = new Graph();
  graph.name = g.name ?? '';
  graph.docString = has(g, 'doc_string') ? g.doc_string : undefined;
  for (const t of g.initializer ?? []) graph.setInitializer(tensorFromProto(t, opts));
  graph.inputs = (g.input ?? []).map(valueInfoFromProto);
  graph.outputs = (g.output ?? []).map(valueInfoFromProto);
  for (const vi of g.value_info ?? []) {
    const v = valueInfoFromProto(vi);
    if (v.type) graph.valueTypes.set(v.name, v.type);
    graph.declaredValueInfo.add(v.name);
  }
  graph.nodes = (g.node ?? []).map((n) => nodeFromProto(n, opts));
  graph.extra = {
    sparse_initializer: g.sparse_initializer,
    quantization_annotation: g.quantization_annotation,
    metadata_props: g.metadata_props,
  };
  graph.touch();
  return graph;
}

function nodeFromProto(n: PNode, opts: DecodeOptions): Node {
  const node = new Node({
    name: n.name ?? '',
    opType: n.op_type ?? '',
    domain: n.domain ?? '',
    inputs: n.input ?? [],
    outputs: n.output ?? [],
    docString: has(n, 'doc_string') ? n.doc_string : undefined,
  });
  for (const a of n.attribute ?? []) node.attrs.set(a.name ?? '', attrFromProto(a, opts));
  node.extra = { overload: n.overload, metadata_props: n.metadata_props, hasDomain: has(n, 'domain'), hasName: has(n, 'name') };
  return node;
}

function attrFromProto(a: PAttr, opts: DecodeOptions): AttrValue {
  if (has(a, 'ref_attr_name') || has(a, 'doc_string')) return { type: 'opaque', value: a };
  switch (a.type) {
    case ATTR.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case ATTR.INT:
      return { type: 'int', value: a.i ?? 0 };
    case ATTR.STRING:
      return { type: 'string', value: utf8d.decode(a.s ?? new Uint8Array()) };
    case ATTR.TENSOR:
      return { type: 'tensor', value: tensorFromProto(a.t ?? {}, opts) };
    case ATTR.GRAPH:
      return { type: 'graph', value: opaqueGraph(a.g ?? {}) };
    case ATTR.FLOATS:
      return { type: 'floats', value: [...(a.floats ?? [])] };
    case ATTR.INTS:
      return { type: 'ints', value: [...(a.ints ?? [])] };
    case ATTR.STRINGS:
      return { type: 'strings', value: (a.strings ?? []).map((s) => utf8d.decode(s)) };
    case ATTR.GRAPHS:
      return { type: 'graphs', value: (a.graphs ?? []).map(opaqueGraph) };
    default:
      return { type: 'opaque', value: a };
  }
}

/** Names a subgraph reads from enclosing scopes (recursively through its own subgraphs). */
function opaqueGraph(g: PGraph): OpaqueGraph {
  const defined = new Set<string>();
  for (const v of g.input ?? []) defined.add(v.name ?? '');
  for (const t of g.initializer ?? []) defined.add(t.name ?? '');
  for (const n of g.node ?? []) for (const o of n.output ?? []) defined.add(o);
  const refs = new Set<string>();
  for (const n of g.node ?? []) {
    for (const i of n.input ?? []) if (i && !defined.has(i)) refs.add(i);
    for (const a of n.attribute ?? []) {
      for (const sub of [a.g, ...(a.graphs ?? [])]) {
        if (!sub) continue;
        for (const r of opaqueGraph(sub).outerRefs) if (!defined.has(r)) refs.add(r);
      }
    }
  }
  for (const o of g.output ?? []) if (o.name && !defined.has(o.name)) refs.add(o.name);
  return { proto: g, outerRefs: [...refs], weights: subgraphWeights(g) };
}

/** Float elements (params, as analysis counts them) and stored bytes of a subgraph's initializers and Constant tensors, recursively. */
function subgraphWeights(g: PGraph): { params: number; bytes: number } {
  let params = 0,
    bytes = 0;
  const add = (t: PTensor | undefined): void => {
    if (!t) return;
    const dtype = dtypeFromOnnx(t.data_type ?? 0);
    if (dtype === 'string' || dtype === 'undefined') return;
    const n = (t.dims ?? []).reduce((a, b) => a * b, 1);
    bytes += n * dtypeBytes(dtype);
    if (isFloatDType(dtype)) params += n;
  };
  for (const t of g.initializer ?? []) add(t);
  for (const n of g.node ?? [])
    for (const a of n.attribute ?? []) {
      if (n.op_type === 'Constant' && a.name === 'value') add(a.t);
      for (const sub of [a.g, ...(a.graphs ?? [])]) {
        if (!sub) continue;
        const w = subgraphWeights(sub);
        params += w.params;
        bytes += w.bytes;
      }
    }
  return { params, bytes };
}

function valueInfoFromProto(v: PValueInfo): ValueInfo {
  const out: ValueInfo = { name: v.name ?? '', type: null };
  if (has(v, 'doc_string')) out.docString = v.doc_string;
  const t = v.type;
  if (!t) return out;
  if (t.tensor_type) {
    const tt = t.tensor_type;
    const shape: Dim[] | null = tt.shape
      ? (tt.shape.dim ?? []).map((d) => (has(d, 'dim_value') ? d.dim_value! : has(d, 'dim_param') ? d.dim_param! : null))
      : null;
    out.type = { dtype: dtypeFromOnnx(tt.elem_type), shape };
  } else {
    out.opaqueType = t;
  }
  return out;
}

function safeExternalPath(baseDir: string, location: string, tensor: string): string {
  const norm = normalize(location);
  if (isAbsolute(norm) || norm.split(sep).includes('..')) {
    throw new EdgefitError('EXTERNAL_DATA', `tensor '${tensor}': external data location '${location}' leaves the model's folder; refused`);
  }
  return join(baseDir, norm);
}

export function tensorFromProto(t: PTensor, opts: DecodeOptions): Tensor {
  const name = t.name ?? '';
  const dtype = dtypeFromOnnx(t.data_type);
  const dims = [...(t.dims ?? [])];
  const docString = has(t, 'doc_string') ? t.doc_string : undefined;
  if (t.data_location === 1) {
    const entries = new Map((t.external_data ?? []).map((e: PEntry) => [e.key ?? '', e.value ?? '']));
    const location = entries.get('location');
    if (!location) throw new EdgefitError('EXTERNAL_DATA', `tensor '${name}' is external but names no location`);
    if (!opts.baseDir)
      throw new EdgefitError(
        'EXTERNAL_DATA',
        `tensor '${name}' keeps its data in '${location}'; load the model from a file path so the side file can be found`,
      );
    const path = safeExternalPath(opts.baseDir, location, name);
    let file: Buffer;
    try {
      file = readFileSync(path);
    } catch (e) {
      throw new EdgefitError('EXTERNAL_DATA', `tensor '${name}': cannot read external data file '${location}'`, { cause: e });
    }
    const offset = Number(entries.get('offset') ?? 0);
    const want = dims.reduce((a, b) => a * b, 1) * dtypeBytes(dtype);
    const length = entries.has('length') ? Number(entries.get('length')) : want;
    if (offset + length > file.byteLength)
      throw new EdgefitError('EXTERNAL_DATA', `tensor '${name}': external data file '${location}' is too short`);
    return new Tensor({ name, dtype, dims, bytes: new Uint8Array(file.buffer, file.byteOffset + offset, length), docString });
  }
  if (dtype === 'string') return new Tensor({ name, dtype, dims, strings: t.string_data ?? [], encoding: 'typed', docString });
  if (has(t, 'raw_data')) return new Tensor({ name, dtype, dims, bytes: t.raw_data!, docString });
  return new Tensor({ name, dtype, dims, bytes: typedToBytes(t, dtype), encoding: 'typed', docString });
}

function typedToBytes(t: PTensor, dtype: DType): Uint8Array {
  const b = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (dtype) {
    case 'float32':
      return b(Float32Array.from(t.float_data ?? []));
    case 'float64':
      return b(Float64Array.from(t.double_data ?? []));
    case 'int64':
      return b(BigInt64Array.from(t.int64_data ?? [], (v) => BigInt(v)));
    case 'uint32':
      return b(Uint32Array.from(t.uint64_data ?? []));
    case 'uint64':
      return b(BigUint64Array.from(t.uint64_data ?? [], (v) => BigInt(v)));
    case 'int32':
      return b(Int32Array.from(t.int32_data ?? []));
    case 'int16':
      return b(Int16Array.from(t.int32_data ?? []));
    case 'uint16':
    case 'float16':
    case 'bfloat16':
      return b(Uint16Array.from(t.int32_data ?? []));
    case 'int8':
      return b(Int8Array.from(t.int32_data ?? []));
    case 'uint8':
    case 'bool':
      return Uint8Array.from(t.int32_data ?? []);
    default:
      throw new EdgefitError('UNSUPPORTED', `tensor '${t.name ?? ''}' has unsupported data type ${t.data_type}`);
  }
}

// ---------------- encode ----------------

export function modelToProto(m: Model): PModel {
  const extra = (m.extra ?? {}) as { training_info?: unknown[]; functions?: unknown[]; bareOpsets?: string[] };
  const p: PModel = {
    ir_version: m.irVersion,
    opset_import: [...m.opsets].map(([domain, version]) =>
      domain === '' && extra.bareOpsets?.includes('') ? { version } : { domain, version },
    ),
    graph: graphToProto(m.graph),
  };
  if (m.producerName) p.producer_name = m.producerName;
  if (m.producerVersion) p.producer_version = m.producerVersion;
  if (m.domain) p.domain = m.domain;
  if (m.modelVersion) p.model_version = m.modelVersion;
  if (m.docString) p.doc_string = m.docString;
  if (m.metadata.size) p.metadata_props = [...m.metadata].map(([key, value]) => ({ key, value }));
  if (extra.training_info?.length) p.training_info = extra.training_info;
  if (extra.functions?.length) p.functions = extra.functions;
  return p;
}

function graphToProto(g: Graph): PGraph {
  const extra = (g.extra ?? {}) as { sparse_initializer?: unknown[]; quantization_annotation?: unknown[]; metadata_props?: PEntry[] };
  const p: PGraph = {
    node: g.nodes.map(nodeToProto),
    name: g.name,
    initializer: [...g.initializers()].map(tensorToProto),
    input: g.inputs.map(valueInfoToProto),
    output: g.outputs.map(valueInfoToProto),
  };
  if (g.docString !== undefined) p.doc_string = g.docString;
  const vi: PValueInfo[] = [];
  for (const name of g.declaredValueInfo) {
    const t = g.valueTypes.get(name);
    if (t) vi.push(valueInfoToProto({ name, type: t }));
  }
  if (vi.length) p.value_info = vi;
  if (extra.sparse_initializer?.length) p.sparse_initializer = extra.sparse_initializer;
  if (extra.quantization_annotation?.length) p.quantization_annotation = extra.quantization_annotation;
  if (extra.metadata_props?.length) p.metadata_props = extra.metadata_props;
  return p;
}

function nodeToProto(n: Node): PNode {
  const extra = (n.extra ?? {}) as { overload?: string; metadata_props?: PEntry[]; hasDomain?: boolean; hasName?: boolean };
  const p: PNode = { input: n.inputs, output: n.outputs, op_type: n.opType };
  if (n.name || extra.hasName) p.name = n.name;
  if (n.domain || extra.hasDomain) p.domain = n.domain;
  if (extra.overload) p.overload = extra.overload;
  if (n.attrs.size) p.attribute = [...n.attrs].map(([name, a]) => attrToProto(name, a));
  if (n.docString !== undefined) p.doc_string = n.docString;
  if (extra.metadata_props?.length) p.metadata_props = extra.metadata_props;
  return p;
}

function attrToProto(name: string, a: AttrValue): PAttr {
  switch (a.type) {
    case 'float':
      return { name, f: a.value, type: ATTR.FLOAT };
    case 'int':
      return { name, i: a.value, type: ATTR.INT };
    case 'string':
      return { name, s: utf8e.encode(a.value), type: ATTR.STRING };
    case 'tensor':
      return { name, t: tensorToProto(a.value), type: ATTR.TENSOR };
    case 'graph':
      return { name, g: a.value.proto as PGraph, type: ATTR.GRAPH };
    case 'floats':
      return { name, floats: a.value, type: ATTR.FLOATS };
    case 'ints':
      return { name, ints: a.value, type: ATTR.INTS };
    case 'strings':
      return { name, strings: a.value.map((s) => utf8e.encode(s)), type: ATTR.STRINGS };
    case 'graphs':
      return { name, graphs: a.value.map((g) => g.proto as PGraph), type: ATTR.GRAPHS };
    case 'opaque':
      return a.value as PAttr;
  }
}

function valueInfoToProto(v: ValueInfo): PValueInfo {
  const p: PValueInfo = { name: v.name };
  if (v.opaqueType) p.type = v.opaqueType as PTypeProto;
  else if (v.type) p.type = { tensor_type: typeToProto(v.type) };
  if (v.docString !== undefined) p.doc_string = v.docString;
  return p;
}

function typeToProto(t: TensorType): NonNullable<PTypeProto['tensor_type']> {
  const out: NonNullable<PTypeProto['tensor_type']> = { elem_type: dtypeToOnnx(t.dtype) };
  if (t.shape)
    out.shape = { dim: t.shape.map((d) => (typeof d === 'number' ? { dim_value: d } : typeof d === 'string' ? { dim_param: d } : {})) };
  return out;
}

export function tensorToProto(t: Tensor): PTensor {
  const p: PTensor = { dims: [...t.dims], data_type: dtypeToOnnx(t.dtype), name: t.name };
  if (t.docString !== undefined) p.doc_string = t.docString;
  if (t.dtype === 'string') {
    p.string_data = [...(t.strings ?? [])];
    return p;
  }
  if (t.encoding === 'raw') {
    p.raw_data = t.bytes();
    return p;
  }
  const bytes = t.bytes();
  const view = <T>(C: { new (b: ArrayBufferLike, o: number, n: number): T; BYTES_PER_ELEMENT: number }): T => {
    const src = bytes.byteOffset % C.BYTES_PER_ELEMENT === 0 ? bytes : Uint8Array.prototype.slice.call(bytes);
    return new C(src.buffer, src.byteOffset, src.byteLength / C.BYTES_PER_ELEMENT);
  };
  switch (t.dtype) {
    case 'float32':
      p.float_data = Array.from(view(Float32Array));
      break;
    case 'float64':
      p.double_data = Array.from(view(Float64Array));
      break;
    case 'int64':
      p.int64_data = Array.from(view(BigInt64Array), Number);
      break;
    case 'uint32':
      p.uint64_data = Array.from(view(Uint32Array));
      break;
    case 'uint64':
      p.uint64_data = Array.from(view(BigUint64Array), Number);
      break;
    case 'int32':
      p.int32_data = Array.from(view(Int32Array));
      break;
    case 'int16':
      p.int32_data = Array.from(view(Int16Array));
      break;
    case 'uint16':
    case 'float16':
    case 'bfloat16':
      p.int32_data = Array.from(view(Uint16Array));
      break;
    case 'int8':
      p.int32_data = Array.from(view(Int8Array));
      break;
    case 'uint8':
    case 'bool':
      p.int32_data = Array.from(bytes);
      break;
    default:
      p.raw_data = bytes;
  }
  return p;
}
