// The checkable pre- and post-conditions of passes, one table that every pass names its
// contract from. runPass (pass.ts) checks `requires` on the input before a pass runs and
// `guarantees` on its output after, so a pass that breaks its word fails at once, naming itself,
// instead of as a wrong figure or an onnxruntime refusal three steps later.
import type { ErrorCode } from '../errors.js';
import type { Model } from '../ir/model.js';
import { opsetVersion } from '../ir/model.js';
import { validateGraph, type ValidationIssue } from '../ir/validate.js';
import { isFloatDType } from '../ir/dtype.js';

/** Issues that make a graph unrunnable whatever its shapes: what a pass may require of its input. */
const STRUCTURAL: ReadonlySet<ValidationIssue['kind']> = new Set([
  'dangling-input',
  'duplicate-name',
  'cycle',
  'missing-output',
  'empty-op',
]);

/** Ops only a quantized graph has: a model holding any of them is not a float model. */
export const QUANT_OPS: ReadonlySet<string> = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'QLinearConv',
  'QLinearMatMul',
  'MatMulInteger',
  'ConvInteger',
  'DynamicQuantizeMatMul',
  'MatMulIntegerToFloat',
  'QGemm',
  'DynamicQuantizeLSTM',
]);

export interface Condition<S = unknown> {
  /** What holds, in words (error messages and --help). */
  readonly text: string;
  /** Why the input fails it, or undefined. */
  readonly pre?: (m: Model) => string | undefined;
  /** Error code when the input fails it: the model handed to the pass is at fault, not edgefit. */
  readonly code?: ErrorCode;
  /** State of the input that the post-check compares against. */
  readonly capture?: (m: Model) => S;
  /** Why the output fails it (given the captured input state and the pass's details), or undefined. */
  readonly post?: (m: Model, before: S, details: unknown) => string | undefined;
}

/** A condition whatever its captured state: runPass hands each post-check what its own capture made. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCondition = Condition<any>;

function condition<S>(c: Condition<S>): Condition<S> {
  return c;
}

function issueCounts(m: Model): Map<string, number> {
  const counts = new Map<string, number>();
  for (const i of validateGraph(m)) counts.set(i.kind, (counts.get(i.kind) ?? 0) + 1);
  return counts;
}

function outputSignature(m: Model): string[] {
  return m.graph.outputs.map((o) => `${o.name}: ${o.type ? `${o.type.dtype}[${o.type.shape ? o.type.shape.join(',') : '?'}]` : 'untyped'}`);
}

function weightElements(m: Model): number {
  let n = 0;
  for (const t of m.graph.initializers()) n += t.size;
  return n;
}

/** Nodes whose outputs nobody reads, and initializers nobody reads. */
function deadCode(m: Model): string[] {
  const g = m.graph;
  const dead: string[] = [];
  for (const n of g.nodes) {
    if (!n.outputs.some((o) => o && (g.consumers(o).length > 0 || g.isGraphOutput(o)))) dead.push(n.label());
  }
  for (const name of g.initializerNames()) {
    if (g.consumers(name).length === 0 && !g.isGraphOutput(name) && !g.isGraphInput(name)) dead.push(`initializer '${name}'`);
  }
  return dead;
}

function list(xs: readonly string[], max = 3): string {
  return xs.length > max ? `${xs.slice(0, max).join(', ')} and ${xs.length - max} more` : xs.join(', ');
}

export const CONDITIONS = {
  'valid-graph': condition({
    text: 'the graph is well formed (no dangling input, duplicate name, cycle or missing output)',
    code: 'INVALID_GRAPH',
    pre: (m) => {
      const bad = validateGraph(m).filter((i) => STRUCTURAL.has(i.kind));
      return bad.length
        ? list(
            bad.map((i) => i.message),
            2,
          )
        : undefined;
    },
  }),
  'opset-known': condition({
    text: 'the model imports a version of the default ONNX domain',
    code: 'UNSUPPORTED',
    pre: (m) => (opsetVersion(m) > 0 ? undefined : 'no ai.onnx opset import'),
  }),
  'float-model': condition({
    text: 'the model is not quantized yet',
    code: 'UNSUPPORTED',
    pre: (m) => {
      const q = m.graph.nodes.find((n) => QUANT_OPS.has(n.opType));
      return q ? `it already contains ${q.label()}` : undefined;
    },
  }),
  'stays-valid': condition({
    text: 'the graph still validates: no validation issue of a kind more often than before',
    capture: issueCounts,
    post: (m, before: Map<string, number>) => {
      const after = validateGraph(m);
      const grew = [...new Set(after.map((i) => i.kind))].filter((k) => after.filter((i) => i.kind === k).length > (before.get(k) ?? 0));
      return grew.length
        ? list(
            after.filter((i) => grew.includes(i.kind)).map((i) => i.message),
            2,
          )
        : undefined;
    },
  }),
  'outputs-kept': condition({
    text: 'graph outputs keep their names, order, dtypes and shapes',
    capture: outputSignature,
    post: (m, before: string[]) => {
      const after = outputSignature(m);
      if (after.length !== before.length) return `${before.length} graph outputs became ${after.length}`;
      const i = after.findIndex((s, k) => s !== before[k]);
      return i >= 0 ? `graph output ${before[i]} became ${after[i]}` : undefined;
    },
  }),
  'no-dead-code': condition({
    text: 'no node whose outputs nobody reads and no unread initializer remains',
    post: (m) => {
      const dead = deadCode(m);
      return dead.length ? `left dead ${list(dead)}` : undefined;
    },
  }),
  'only-shrinks': condition({
    text: 'the graph only shrank: no more nodes or weight elements than before, no new op types',
    capture: (m) => ({ nodes: m.graph.nodes.length, weights: weightElements(m), ops: new Set(m.graph.nodes.map((n) => n.kind)) }),
    post: (m, b: { nodes: number; weights: number; ops: Set<string> }) => {
      if (m.graph.nodes.length > b.nodes) return `nodes grew from ${b.nodes} to ${m.graph.nodes.length}`;
      const w = weightElements(m);
      if (w > b.weights) return `weight elements grew from ${b.weights} to ${w}`;
      const added = [...new Set(m.graph.nodes.map((n) => n.kind))].filter((k) => !b.ops.has(k));
      return added.length ? `new op types ${list(added)}` : undefined;
    },
  }),
  'int8-as-claimed': condition({
    text: 'no layer the pass reports as int8 still reads a float weight, and int8 weights are stored',
    post: (m, _b, details) => {
      const g = m.graph;
      const layers = (details as { layers?: readonly { node: string; int8: boolean; kind?: string; op: string }[] }).layers ?? [];
      // layers of kind 'elementwise'/'passthrough' have no weight; dynamic mode leaves kind unset
      const claimed = layers.filter((l) => l.int8 && (l.kind === undefined || l.kind === 'weighted') && l.op !== 'initializer');
      if (claimed.length === 0) return undefined;
      const stored = [...g.initializers()].some((t) => t.dtype === 'int8' || t.dtype === 'uint8');
      if (!stored) return `reports ${claimed.length} int8 layers but stores no int8 tensor`;
      // a layer is keyed by its name, or its first output when unnamed (quantize/qdq.ts nodeKey);
      // one replaced by another op (dynamic mode) is checked through the int8 tensor above only
      const byKey = new Map(g.nodes.map((n) => [n.name || n.outputs[0] || '', n]));
      for (const l of claimed) {
        const n = byKey.get(l.node);
        // Conv, ConvTranspose, Gemm and MatMul all read their weight at input 1
        const w = n ? g.constant(n.inputs[1] ?? '') : undefined;
        if (n && w && isFloatDType(w.dtype)) return `${n.label()} is reported int8 but reads the ${w.dtype} weight '${w.name}'`;
      }
      return undefined;
    },
  }),
  'no-dense-constants': condition({
    text: 'no Constant node holding a dense tensor remains: weights are initializers',
    post: (m) => {
      const c = m.graph.nodes.find(
        (n) =>
          n.opType === 'Constant' &&
          (n.domain === '' || n.domain === 'ai.onnx') &&
          !m.graph.isGraphOutput(n.outputs[0] ?? '') &&
          ['value', 'value_float', 'value_floats', 'value_int', 'value_ints'].some(
            (a) => n.attrs.get(a)?.type === (a === 'value' ? 'tensor' : a.slice(6)),
          ),
      );
      return c ? `${c.label()} is still a Constant node` : undefined;
    },
  }),
} as const satisfies Record<string, AnyCondition>;

export type ConditionName = keyof typeof CONDITIONS;
