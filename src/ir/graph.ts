import { Node } from './node.js';
import type { Tensor } from './tensor.js';
import type { NodeInit, TensorType, ValueInfo } from './types.js';
import { EdgefitError } from '../errors.js';

/** What analysis may use: lookups only, no mutation. */
export interface ReadonlyGraph {
  readonly name: string;
  readonly nodes: readonly Node[];
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  initializer(name: string): Tensor | undefined;
  initializerNames(): IterableIterator<string>;
  producer(value: string): Node | undefined;
  consumers(value: string): readonly Node[];
  type(value: string): TensorType | null;
  isGraphInput(value: string): boolean;
  isGraphOutput(value: string): boolean;
  topoOrder(): Node[];
  /** A constant known at load time: an initializer that is not also an overridable graph input. */
  constant(value: string): Tensor | undefined;
}

/**
 * The mutable graph. Producer/consumer indices are rebuilt lazily after a mutation, so passes
 * may mutate freely and read consistent indices afterwards.
 */
export class Graph implements ReadonlyGraph {
  name = '';
  docString: string | undefined;
  nodes: Node[] = [];
  inputs: ValueInfo[] = [];
  outputs: ValueInfo[] = [];
  /** Known types of intermediate values (value_info plus what shape inference adds). */
  valueTypes = new Map<string, TensorType>();
  /** value_info entries to write back on encode (those of the file; passes may add or delete). */
  declaredValueInfo = new Set<string>();
  private inits = new Map<string, Tensor>();
  /** Codec-private fields (sparse initializers, quantization annotations, metadata) passed through. */
  extra: unknown;

  // The index (producers, consumers) is rebuilt on the next read after any mutation: callers edit
  // nodes' inputs in place and count on the next addNode or setInitializer to mark it stale. A pass
  // that makes every edit through these methods can say so ({ indexed: true }): a node appended last
  // and an initializer set are then followed in place, so emitting nodes one by one and reading the
  // graph between them is linear, not quadratic (QAT det's training graph, 2,557 nodes emitted
  // over 1,285, took 9.5 s to build, 7 s of it rebuilding this index). Graph inputs and outputs are
  // public arrays: their names are re-read after every mutation, as a full rebuild would.
  private dirty = true;
  private ioDirty = true;
  private producers = new Map<string, Node>();
  private consumerMap = new Map<string, Node[]>();
  private inputNames = new Set<string>();
  private outputNames = new Set<string>();

  // ---- reads ----
  initializer(name: string): Tensor | undefined {
    return this.inits.get(name);
  }
  initializerNames(): IterableIterator<string> {
    return this.inits.keys();
  }
  get initializerCount(): number {
    return this.inits.size;
  }
  initializers(): IterableIterator<Tensor> {
    return this.inits.values();
  }
  producer(value: string): Node | undefined {
    this.reindex();
    return this.producers.get(value);
  }
  consumers(value: string): readonly Node[] {
    this.reindex();
    return this.consumerMap.get(value) ?? [];
  }
  isGraphInput(value: string): boolean {
    this.reindex();
    return this.inputNames.has(value);
  }
  isGraphOutput(value: string): boolean {
    this.reindex();
    return this.outputNames.has(value);
  }
  constant(value: string): Tensor | undefined {
    if (this.isGraphInput(value)) return undefined;
    return this.inits.get(value);
  }
  type(value: string): TensorType | null {
    const t = this.valueTypes.get(value);
    if (t) return t;
    const init = this.inits.get(value);
    if (init) return { dtype: init.dtype, shape: [...init.dims] };
    const io = this.inputs.find((v) => v.name === value) ?? this.outputs.find((v) => v.name === value);
    return io?.type ?? null;
  }

  /** Runtime inputs: graph inputs that are not initializers (older exporters list weights as inputs too). */
  runtimeInputs(): ValueInfo[] {
    return this.inputs.filter((v) => !this.inits.has(v.name));
  }

  topoOrder(): Node[] {
    this.reindex();
    const indeg = new Map<Node, number>();
    const ready: Node[] = [];
    for (const n of this.nodes) {
      let d = 0;
      // count each produced value once: a node reading the same value twice (Add(x, x)) is one edge
      for (const v of new Set(this.nodeReads(n))) if (this.producers.has(v)) d++;
      indeg.set(n, d);
      if (d === 0) ready.push(n);
    }
    const order: Node[] = [];
    // keep file order among ready nodes: a stable topological order reads better in reports
    const pos = new Map(this.nodes.map((n, i) => [n, i]));
    while (ready.length) {
      ready.sort((a, b) => pos.get(a)! - pos.get(b)!);
      const n = ready.shift()!;
      order.push(n);
      for (const out of n.outputs) {
        if (!out) continue;
        for (const c of this.consumerMap.get(out) ?? []) {
          const d = indeg.get(c)! - 1;
          indeg.set(c, d);
          if (d === 0) ready.push(c);
        }
      }
    }
    if (order.length !== this.nodes.length) {
      const stuck = this.nodes.find((n) => !order.includes(n));
      throw new EdgefitError('INVALID_GRAPH', `graph has a cycle through ${stuck ? stuck.label() : 'unknown node'}`);
    }
    return order;
  }

  /** Every value a node reads, including the outer-scope reads of its subgraphs. */
  nodeReads(n: Node): string[] {
    const r = n.inputs.filter((i) => i !== '');
    const s = n.subgraphRefs();
    return s.length ? [...r, ...s] : r;
  }

  /**
   * An independent deep copy (nodes, initializers, value types), for passes and probes that must
   * leave the original as it was. Cheaper than an encode/decode round trip and keeps the recorded
   * value types. Codec extras are shared: only the codec reads them.
   */
  clone(): Graph {
    const g = new Graph();
    g.name = this.name;
    g.docString = this.docString;
    g.nodes = this.nodes.map((n) => n.clone());
    g.inputs = this.inputs.map(cloneValueInfo);
    g.outputs = this.outputs.map(cloneValueInfo);
    for (const [k, t] of this.valueTypes) g.valueTypes.set(k, cloneType(t));
    g.declaredValueInfo = new Set(this.declaredValueInfo);
    for (const t of this.inits.values()) g.inits.set(t.name, t.clone());
    g.extra = this.extra;
    return g;
  }

  // ---- mutation ----
  touch(): void {
    this.dirty = true;
  }
  /** Set (add or replace) an initializer. `indexed`: see the index's note above (initializers are not in it). */
  setInitializer(t: Tensor, opts: { indexed?: boolean } = {}): void {
    this.inits.set(t.name, t);
    if (opts.indexed) this.ioDirty = true;
    else this.dirty = true;
  }
  removeInitializer(name: string): void {
    this.inits.delete(name);
    this.inputs = this.inputs.filter((v) => v.name !== name);
    this.dirty = true;
  }
  /**
   * The initializer `name` turned into a graph input of its type, fed at run time instead (how a
   * training graph takes the weights it trains); its tensor returned, undefined when there is none.
   */
  initializerToInput(name: string): Tensor | undefined {
    const t = this.inits.get(name);
    if (!t) return undefined;
    this.removeInitializer(name);
    this.inputs.push({ name, type: { dtype: t.dtype, shape: [...t.dims] } });
    return t;
  }
  /** Add a node (last unless placed). `indexed`, for a node appended last: see the index's note above. */
  addNode(init: NodeInit | Node, opts: { before?: Node; after?: Node; indexed?: boolean } = {}): Node {
    const n = init instanceof Node ? init : new Node(init);
    if (opts.before) this.nodes.splice(this.nodes.indexOf(opts.before), 0, n);
    else if (opts.after) this.nodes.splice(this.nodes.indexOf(opts.after) + 1, 0, n);
    else {
      this.nodes.push(n);
      if (opts.indexed && !this.dirty) {
        // appended last: it is the last producer of its outputs and the last reader in each
        // consumer list, exactly where a rebuild in node order would put it
        this.indexNode(n);
        this.ioDirty = true;
        return n;
      }
    }
    this.dirty = true;
    return n;
  }
  removeNode(n: Node): void {
    const i = this.nodes.indexOf(n);
    if (i >= 0) this.nodes.splice(i, 1);
    this.dirty = true;
  }
  /** Point every reader of `from` (nodes and graph outputs) at `to`. */
  replaceAllUses(from: string, to: string): void {
    for (const n of this.nodes) {
      for (let i = 0; i < n.inputs.length; i++) if (n.inputs[i] === from) n.inputs[i] = to;
    }
    for (const o of this.outputs) if (o.name === from) o.name = to;
    this.dirty = true;
  }
  /** A fresh value name not used anywhere in the graph. */
  uniqueName(base: string): string {
    this.reindex();
    let name = base;
    for (let k = 1; this.taken(name); k++) name = `${base}_${k}`;
    return name;
  }
  /** Whether a value, initializer or graph input has this name (the index as last built). */
  private taken(name: string): boolean {
    return (
      this.producers.has(name) ||
      this.inits.has(name) ||
      this.inputNames.has(name) ||
      this.consumerMap.has(name) ||
      this.valueTypes.has(name)
    );
  }

  /**
   * Fresh value names for a pass that adds many values: unique against every name in the graph now
   * and every name this namer has given (uniqueName's rule, without a read of the index per name,
   * which a pass inserting nodes mid-graph rebuilds each time). Names the pass adds by other means
   * are not known to it.
   */
  namer(): (base: string) => string {
    this.reindex();
    // the index as built now holds every name the graph has now (a later rebuild, every name then)
    const given = new Set<string>();
    return (base) => {
      let name = base;
      for (let k = 1; this.taken(name) || given.has(name); k++) name = `${base}_${k}`;
      given.add(name);
      return name;
    };
  }

  private reindex(): void {
    if (this.dirty) {
      this.producers.clear();
      this.consumerMap.clear();
      for (const n of this.nodes) this.indexNode(n);
      this.dirty = false;
      this.ioDirty = true;
    }
    if (this.ioDirty) {
      this.inputNames = new Set(this.inputs.map((v) => v.name));
      this.outputNames = new Set(this.outputs.map((v) => v.name));
      this.ioDirty = false;
    }
  }
  private indexNode(n: Node): void {
    for (const o of n.outputs) if (o) this.producers.set(o, n);
    for (const v of this.nodeReads(n)) {
      let list = this.consumerMap.get(v);
      if (!list) this.consumerMap.set(v, (list = []));
      if (!list.includes(n)) list.push(n);
    }
  }
}

function cloneType(t: TensorType): TensorType {
  return { dtype: t.dtype, shape: t.shape ? [...t.shape] : null };
}

function cloneValueInfo(v: ValueInfo): ValueInfo {
  return { ...v, type: v.type ? cloneType(v.type) : null };
}
