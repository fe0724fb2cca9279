import type { DType } from './dtype.js';
import type { Tensor } from './tensor.js';

/** A dimension: a known size, a symbolic name (dim_param), or unknown. */
export type Dim = number | string | null;

export interface TensorType {
  dtype: DType;
  /** null when even the rank is unknown. */
  shape: Dim[] | null;
}

export interface ValueInfo {
  name: string;
  type: TensorType | null;
  /** Non-tensor types (sequence, map, optional) are carried opaquely by the codec. */
  opaqueType?: unknown;
  docString?: string;
}

/**
 * A subgraph attribute (If/Loop/Scan bodies). edgefit never rewrites subgraphs: the codec
 * keeps them as they were and lists the outer-scope names they read, so that the IR counts
 * those reads as uses and no pass deletes or renames a value a subgraph needs.
 */
export interface OpaqueGraph {
  readonly proto: unknown;
  readonly outerRefs: readonly string[];
  /**
   * The weights the subgraph holds (its initializers and Constant tensors, nested subgraphs
   * included), counted by the codec so analysis can report them: If/Loop/Scan bodies (silero-VAD
   * keeps its whole network in If branches) are parameters too.
   */
  readonly weights?: { readonly params: number; readonly bytes: number };
}

export type AttrValue =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: Tensor }
  | { type: 'graph'; value: OpaqueGraph }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'graphs'; value: OpaqueGraph[] }
  /** Anything else (sparse tensors, type protos, ref_attr_name) passes through untouched. */
  | { type: 'opaque'; value: unknown };

export interface NodeInit {
  name?: string;
  opType: string;
  domain?: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttrValue>;
  docString?: string;
}
