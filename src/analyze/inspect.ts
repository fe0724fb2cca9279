// The data behind `edgefit inspect`: the JSON object and the human table.
import type { Model } from '../ir/model.js';
import { analyzeModel, type Analysis } from './index.js';
import { EdgefitError } from '../errors.js';

export interface InspectReport {
  file: string;
  irVersion: number;
  producer: string;
  opsets: Record<string, number>;
  inputs: { name: string; dtype: string; shape: (number | string | null)[] | null }[];
  outputs: { name: string; dtype: string; shape: (number | string | null)[] | null }[];
  nodes: number;
  params: number;
  macs: number | null;
  weightBytes: number;
  peakActivationBytes: number | null;
  layers: {
    name: string;
    op: string;
    outputShape: (number | string | null)[] | null;
    params: number;
    macs: number | null;
    share: number | null;
  }[];
  opCounts: Record<string, number>;
  unresolved: string[];
  issues: string[];
}

/** `model` as loaded and normalised (constants lifted) by the caller; `path` names it in the report. */
export async function inspectModel(path: string, model: Model, shapes: Map<string, number[]>): Promise<InspectReport> {
  const originalInputs = model.graph
    .runtimeInputs()
    .map((i) => ({ name: i.name, dtype: i.type?.dtype ?? 'undefined', shape: i.type?.shape ?? null }));
  const a = await analyzeModel(model, shapes);
  if (a.issues.length)
    throw new EdgefitError(
      'INVALID_GRAPH',
      `${path}: ${a.issues[0]!.message}${a.issues.length > 1 ? ` (and ${a.issues.length - 1} more problems)` : ''}`,
    );
  return buildReport(path, model, a, originalInputs);
}

function buildReport(file: string, m: Model, a: Analysis, inputs: InspectReport['inputs']): InspectReport {
  const g = m.graph;
  const opCounts: Record<string, number> = {};
  for (const n of g.nodes) opCounts[n.opType] = (opCounts[n.opType] ?? 0) + 1;
  const totalMacs = a.macs;
  return {
    file,
    irVersion: m.irVersion,
    producer: [m.producerName, m.producerVersion].filter(Boolean).join(' '),
    opsets: Object.fromEntries([...m.opsets].map(([d, v]) => [d || 'ai.onnx', v])),
    inputs,
    outputs: g.outputs.map((o) => ({ name: o.name, dtype: g.type(o.name)?.dtype ?? 'undefined', shape: g.type(o.name)?.shape ?? null })),
    nodes: g.nodes.length,
    params: a.params,
    macs: a.macs,
    weightBytes: a.weightBytes,
    peakActivationBytes: a.peakActivationBytes,
    layers: a.layers.map((l) => ({ ...l, share: totalMacs && l.macs !== null ? l.macs / totalMacs : null })),
    opCounts,
    unresolved: a.unresolved,
    issues: a.issues.map((i) => i.message),
  };
}

const human = (n: number | null, unit = ''): string => {
  if (n === null) return '?';
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(2)} G${unit}`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(2)} M${unit}`;
  if (abs >= 1e3) return `${(n / 1e3).toFixed(1)} k${unit}`;
  return `${n}${unit ? ` ${unit}` : ''}`;
};
const shapeStr = (s: (number | string | null)[] | null): string => (s ? s.map((d) => (d === null ? '?' : d)).join('x') : '?');

export function formatInspect(r: InspectReport, opts: { all?: boolean } = {}): string {
  const lines: string[] = [];
  lines.push(`${r.file}`);
  lines.push(
    `  IR ${r.irVersion}, opsets ${Object.entries(r.opsets)
      .map(([d, v]) => `${d} ${v}`)
      .join(', ')}${r.producer ? `, producer ${r.producer}` : ''}`,
  );
  for (const i of r.inputs) lines.push(`  input  ${i.name}: ${i.dtype}[${shapeStr(i.shape)}]`);
  for (const o of r.outputs) lines.push(`  output ${o.name}: ${o.dtype}[${shapeStr(o.shape)}]`);
  lines.push('');
  const rows = r.layers.filter((l) => opts.all || l.params > 0 || (l.macs ?? 0) > 0);
  const head = ['layer', 'op', 'output', 'params', 'MACs', 'share'];
  const body = rows.map((l) => [
    l.name.slice(0, 40),
    l.op,
    shapeStr(l.outputShape),
    human(l.params),
    human(l.macs),
    l.share === null ? '?' : `${(l.share * 100).toFixed(1)}%`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const fmt = (cols: string[]) => `  ${cols.map((c, i) => (i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ')}`;
  lines.push(fmt(head));
  for (const b of body) lines.push(fmt(b));
  if (!opts.all && rows.length < r.layers.length)
    lines.push(`  (${r.layers.length - rows.length} layers without weights or MACs not shown; --all shows them)`);
  lines.push('');
  lines.push(
    `  nodes ${r.nodes}   params ${human(r.params)} (${r.params})   MACs ${human(r.macs)}   weights ${human(r.weightBytes, 'B')}   peak activations ${human(r.peakActivationBytes, 'B')}`,
  );
  lines.push(
    `  ops ${Object.entries(r.opCounts)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k}:${v}`)
      .join(' ')}`,
  );
  for (const u of r.unresolved) lines.push(`  note: ${u}`);
  return lines.join('\n');
}
