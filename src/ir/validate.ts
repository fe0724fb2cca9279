// Finds what onnxruntime would reject, naming the node: dangling inputs, duplicate producers,
// cycles, missing graph outputs, and type/shape clashes on the tensors we can check statically.
import type { Model } from './model.js';
import type { Graph } from './graph.js';

export interface ValidationIssue {
  kind: 'dangling-input' | 'duplicate-name' | 'cycle' | 'missing-output' | 'type-mismatch' | 'shape-mismatch' | 'empty-op';
  node?: string;
  value?: string;
  message: string;
}

function nodeLabel(g: Graph, i: number): string {
  const n = g.nodes[i]!;
  return n.name ? `${n.opType} '${n.name}'` : `${n.opType} #${i}`;
}

export function validateGraph(model: Model): ValidationIssue[] {
  const g = model.graph;
  const issues: ValidationIssue[] = [];
  const defined = new Set<string>();
  for (const v of g.inputs) {
    if (defined.has(v.name)) issues.push({ kind: 'duplicate-name', value: v.name, message: `graph input '${v.name}' is declared twice` });
    defined.add(v.name);
  }
  for (const name of g.initializerNames()) defined.add(name);
  const producedBy = new Map<string, string>();
  g.nodes.forEach((n, i) => {
    if (!n.opType) issues.push({ kind: 'empty-op', node: nodeLabel(g, i), message: `${nodeLabel(g, i)} has no op_type` });
    for (const o of n.outputs) {
      if (!o) continue;
      const prev = producedBy.get(o);
      if (prev !== undefined || g.isGraphInput(o) || g.initializer(o)) {
        issues.push({
          kind: 'duplicate-name',
          node: nodeLabel(g, i),
          value: o,
          message: `${nodeLabel(g, i)} writes '${o}', which ${prev ? `${prev} also writes` : 'is already an input or initializer'}`,
        });
      }
      producedBy.set(o, nodeLabel(g, i));
    }
  });
  for (const o of producedBy.keys()) defined.add(o);
  g.nodes.forEach((n, i) => {
    for (const v of g.nodeReads(n)) {
      if (!defined.has(v))
        issues.push({
          kind: 'dangling-input',
          node: nodeLabel(g, i),
          value: v,
          message: `${nodeLabel(g, i)} reads '${v}', which nothing produces`,
        });
    }
  });
  for (const o of g.outputs) {
    if (!defined.has(o.name))
      issues.push({ kind: 'missing-output', value: o.name, message: `graph output '${o.name}' is produced by no node` });
  }
  try {
    g.topoOrder();
  } catch (e) {
    issues.push({ kind: 'cycle', message: (e as Error).message });
  }
  // Static checks of the ops whose weights fix their input widths.
  g.nodes.forEach((n, i) => {
    const label = nodeLabel(g, i);
    if (n.opType === 'Conv' || n.opType === 'ConvTranspose') {
      const x = g.type(n.inputs[0] ?? '');
      const w = g.initializer(n.inputs[1] ?? '');
      const b = n.inputs[2] ? g.initializer(n.inputs[2]) : undefined;
      const group = n.attrInt('group', 1);
      if (w && x?.shape && typeof x.shape[1] === 'number') {
        const inC = n.opType === 'Conv' ? w.dims[1]! * group : w.dims[0]!;
        if (inC !== x.shape[1])
          issues.push({
            kind: 'shape-mismatch',
            node: label,
            value: n.inputs[0],
            message: `${label}: input has ${x.shape[1]} channels, weights expect ${inC}`,
          });
      }
      if (w && b) {
        const outC = n.opType === 'Conv' ? w.dims[0]! : w.dims[1]! * group;
        if (b.dims[0] !== outC)
          issues.push({
            kind: 'shape-mismatch',
            node: label,
            value: n.inputs[2],
            message: `${label}: bias has ${b.dims[0]} entries for ${outC} output channels`,
          });
      }
      if (w && x && x.dtype !== 'undefined' && w.dtype !== x.dtype)
        issues.push({ kind: 'type-mismatch', node: label, message: `${label}: input is ${x.dtype}, weights are ${w.dtype}` });
    } else if (n.opType === 'BatchNormalization') {
      const x = g.type(n.inputs[0] ?? '');
      const c = x?.shape?.[1];
      for (const p of n.inputs.slice(1, 5)) {
        const t = g.initializer(p);
        if (t && typeof c === 'number' && t.dims[0] !== c)
          issues.push({
            kind: 'shape-mismatch',
            node: label,
            value: p,
            message: `${label}: '${p}' has ${t.dims[0]} entries for ${c} channels`,
          });
      }
    } else if (n.opType === 'Gemm' || n.opType === 'MatMul') {
      const a = g.type(n.inputs[0] ?? '')?.shape;
      const b = g.type(n.inputs[1] ?? '')?.shape;
      if (a && b && a.length >= 2 && b.length >= 2) {
        const k1 = n.opType === 'Gemm' && n.attrInt('transA', 0) ? a[0] : a[a.length - 1];
        const k2 = n.opType === 'Gemm' && n.attrInt('transB', 0) ? b[b.length - 1] : b[b.length - 2];
        if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2)
          issues.push({ kind: 'shape-mismatch', node: label, message: `${label}: inner dimensions differ (${k1} vs ${k2})` });
      }
    }
  });
  return issues;
}
