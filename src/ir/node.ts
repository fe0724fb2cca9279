import type { AttrValue, NodeInit, OpaqueGraph } from './types.js';
import type { Tensor } from './tensor.js';

let nextId = 1;

/** A graph node. Inputs use '' for an omitted optional input, as ONNX does. */
export class Node {
  /** Process-unique id: stable under renames, used as a map key by passes. */
  readonly id: number;
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Map<string, AttrValue>;
  docString: string | undefined;
  /** Codec-private fields (overload, metadata_props) passed through untouched. */
  extra: unknown;

  constructor(init: NodeInit) {
    this.id = nextId++;
    this.name = init.name ?? '';
    this.opType = init.opType;
    this.domain = init.domain ?? '';
    this.inputs = [...init.inputs];
    this.outputs = [...init.outputs];
    this.attrs = new Map(Object.entries(init.attrs ?? {}));
    this.docString = init.docString;
  }

  /** The op as a qualified key: 'Conv' for the default domain, 'com.microsoft.QGemm' otherwise. */
  get kind(): string {
    return this.domain === '' || this.domain === 'ai.onnx' ? this.opType : `${this.domain}.${this.opType}`;
  }

  label(): string {
    return this.name ? `${this.opType} '${this.name}'` : `${this.opType} -> '${this.outputs[0] ?? '?'}'`;
  }

  attrInt(name: string, dflt: number): number;
  attrInt(name: string): number | undefined;
  attrInt(name: string, dflt?: number): number | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'int' ? a.value : dflt;
  }

  attrFloat(name: string, dflt: number): number;
  attrFloat(name: string): number | undefined;
  attrFloat(name: string, dflt?: number): number | undefined {
    const a = this.attrs.get(name);
    if (a && a.type === 'float') return a.value;
    if (a && a.type === 'int') return a.value;
    return dflt;
  }

  attrInts(name: string): number[] | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'ints' ? a.value : undefined;
  }

  attrFloats(name: string): number[] | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'floats' ? a.value : undefined;
  }

  attrString(name: string): string | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'string' ? a.value : undefined;
  }

  attrTensor(name: string): Tensor | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'tensor' ? a.value : undefined;
  }

  setInt(name: string, v: number): void {
    this.attrs.set(name, { type: 'int', value: v });
  }

  setInts(name: string, v: number[]): void {
    this.attrs.set(name, { type: 'ints', value: v });
  }

  setFloat(name: string, v: number): void {
    this.attrs.set(name, { type: 'float', value: v });
  }

  /**
   * An independent copy with a fresh id: list attributes and tensor values are copied, so a pass
   * editing one cannot reach the other. Subgraph protos and codec extras are shared: nothing in
   * edgefit rewrites them (see OpaqueGraph).
   */
  clone(): Node {
    const n = new Node({
      name: this.name,
      opType: this.opType,
      domain: this.domain,
      inputs: this.inputs,
      outputs: this.outputs,
      docString: this.docString,
    });
    for (const [k, a] of this.attrs) n.attrs.set(k, cloneAttr(a));
    n.extra = this.extra;
    return n;
  }

  /** Outer-scope names read by this node's subgraphs. */
  subgraphRefs(): string[] {
    const refs: string[] = [];
    for (const a of this.attrs.values()) {
      if (a.type === 'graph') refs.push(...a.value.outerRefs);
      else if (a.type === 'graphs') for (const g of a.value as OpaqueGraph[]) refs.push(...g.outerRefs);
    }
    return refs;
  }
}

function cloneAttr(a: AttrValue): AttrValue {
  switch (a.type) {
    case 'floats':
    case 'ints':
      return { type: a.type, value: [...a.value] };
    case 'strings':
      return { type: a.type, value: [...a.value] };
    case 'tensor':
      return { type: 'tensor', value: a.value.clone() };
    default:
      return a; // scalars are immutable values; graphs and opaque attributes are never rewritten
  }
}
