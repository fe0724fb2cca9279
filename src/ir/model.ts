import type { Graph } from './graph.js';

/** A whole model: the graph plus the ModelProto fields edgefit reads or must keep. */
export interface Model {
  irVersion: number;
  /** domain ('' = ai.onnx) -> version */
  opsets: Map<string, number>;
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  metadata: Map<string, string>;
  graph: Graph;
  /** Codec-private fields (functions, training info) passed through untouched. */
  extra: unknown;
  /**
   * Input shapes the analyses work at where the model leaves dims open (prune sets the shapes it
   * was given, so a dynamic batch stays dynamic in the file while the analysis sees sizes). In
   * memory only: the codec never writes it.
   */
  analysisShapes?: ReadonlyMap<string, readonly number[]>;
}

/** An independent deep copy of a model (see Graph.clone); replaces encode/decode round trips. */
export function cloneModel(m: Model): Model {
  return { ...m, opsets: new Map(m.opsets), metadata: new Map(m.metadata), graph: m.graph.clone() };
}

export function opsetVersion(m: Model, domain = ''): number {
  return m.opsets.get(domain) ?? m.opsets.get('ai.onnx') ?? 0;
}

/** A model around `graph` that edgefit builds itself (a probe, a unit to time, a helper graph). */
export function modelOf(graph: Graph, o: { producer: string; opset?: number; irVersion?: number }): Model {
  return {
    irVersion: o.irVersion ?? 8,
    opsets: new Map([['', o.opset ?? 13]]),
    producerName: o.producer,
    producerVersion: '1',
    domain: '',
    modelVersion: 1,
    docString: '',
    metadata: new Map(),
    graph,
    extra: undefined,
  };
}
