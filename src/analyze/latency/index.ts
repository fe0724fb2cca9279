// Latency tables (issue 17): build them for a model on this box (measured, cached per model,
// hardware, threads and input shapes), and predict a pruned copy's latency from them.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cloneModel, type Model } from '../../ir/model.js';
import { annotateShapes, applyShapes, isStatic } from '../../ir/shapes.js';
import { EdgefitError } from '../../errors.js';
import { serializeModel } from '../../onnx/index.js';
import { writeFileAtomic } from '../../util/fs.js';
import { shapesFromOrt } from '../ort-shapes.js';
import { discoverBlock, type BlockResult } from './block.js';
import { buildUnit, weightLayers, widthsFor, type WeightLayer } from './extract.js';
import { cpuFacts, hardwareId } from './hardware.js';
import { LoadGauge } from './gauge.js';
import { callOverhead, FeedBuffer, timeModel, UNIT_PROTOCOL, UnitTimer } from './measure.js';
import { layerMs, predictMs } from './predict.js';
import type { LatencyTables, LayerTable, TableKey } from './types.js';

export type { LatencyTables, LayerTable, BlockEvidence, TableKey } from './types.js';
export { calibratedMs, layerMs, predictMs, rawForCalibratedMs } from './predict.js';
export { weightLayers, buildUnit, widthsFor, type WeightLayer, type Unit } from './extract.js';
export { discoverBlock, blockFromEvidence, padShare, stepShare, type BlockResult } from './block.js';
export { blockFromCpu, cpuFacts, hardwareId, type CpuFacts } from './hardware.js';
export { formatLatencyTables } from './format.js';

export interface BuildOptions {
  /** Input shapes (every runtime input with a dynamic dim must be named). */
  shapes: Map<string, number[]>;
  threads: number;
  /** Where tables are cached (a JSON file per key); none: always measure. */
  cacheDir?: string;
  /** Called after each measurement (units, the block probe, the whole model): done of total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Where tables are cached unless told: latency/ under edgefit's cache root, the fit's rule
 * ($EDGEFIT_CACHE_DIR, else $XDG_CACHE_HOME/edgefit, else ~/.cache/edgefit; see fit/run.ts).
 */
export function defaultLatencyCacheDir(): string {
  const root = process.env.EDGEFIT_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'edgefit');
  return join(root, 'latency');
}

/** The name tables know a weight node by: its name, or its first output where the exporter left it unnamed. */
export function layerId(n: { name: string; outputs: readonly string[] }): string {
  return n.name || n.outputs[0]!;
}

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined; // absent, torn or not JSON: a miss
  }
}

/** Tables read from `path` if they are version 1 tables for exactly `key` (a foreign or torn file is a miss). */
function cached(path: string, key: TableKey): LatencyTables | undefined {
  const t = readJson(path) as Partial<LatencyTables> | undefined;
  if (!t || t.version !== 1 || JSON.stringify(t.key) !== JSON.stringify(key)) return undefined;
  if (!Array.isArray(t.layers) || typeof t.modelMs !== 'number' || typeof t.block !== 'number') return undefined;
  return t as LatencyTables;
}

/** The block probe depends on the box and the threads only: cached beside the tables, shared by every model. */
async function blockFor(threads: number, hardware: string, cacheDir: string | undefined): Promise<BlockResult> {
  const path = cacheDir && join(cacheDir, `block-${sha256(`${hardware}|${threads}`).slice(0, 24)}.json`);
  const hit = path ? (readJson(path) as (BlockResult & { hardware?: string; threads?: number }) | undefined) : undefined;
  if (hit && hit.hardware === hardware && hit.threads === threads && typeof hit.block === 'number' && Array.isArray(hit.blockEvidence)) {
    return { block: hit.block, blockSource: hit.blockSource, blockEvidence: hit.blockEvidence };
  }
  const r = await discoverBlock(threads);
  if (path) writeFileAtomic(path, JSON.stringify({ hardware, threads, ...r }));
  return r;
}

/** The runtime inputs with the shapes they are measured at (a dynamic dim without --shape is a clear error). */
function inputShapes(model: Model, shapes: Map<string, number[]>): Array<{ name: string; dtype: 'float32'; shape: number[] }> {
  return model.graph.runtimeInputs().map((i) => {
    const shape = shapes.get(i.name) ?? (i.type && isStatic(i.type.shape) ? i.type.shape : null);
    if (!shape) {
      throw new EdgefitError('USAGE', `input '${i.name}' has dynamic dims [${(i.type?.shape ?? []).join(', ')}]`, {
        remedy: { option: 'shapes', input: i.name },
      });
    }
    return { name: i.name, dtype: (i.type?.dtype ?? 'float32') as 'float32', shape };
  });
}

/** What one layer's table needs measured: its units at each width on each side. */
function plan(model: Model, l: WeightLayer, block: number) {
  const side = (full: number, on: boolean): number[] => (on ? widthsFor(full, block) : []);
  // a grouped layer narrows by whole groups: its widths are multiples of the group width
  const outWidths = l.groupWidth ? (l.outPrunable ? widthsFor(l.outChannels, l.groupWidth) : []) : side(l.outChannels, l.outPrunable);
  const inWidths = l.depthwise ? [] : side(l.inChannels, l.inPrunable);
  // both sides narrowed at once, at their middle points: how the sides combine (interaction)
  const both =
    inWidths.length > 1 && outWidths.length > 1
      ? ([inWidths[(inWidths.length - 1) >> 1]!, outWidths[(outWidths.length - 1) >> 1]!] as const)
      : null;
  return {
    full: buildUnit(model, l, l.inChannels, l.outChannels),
    ins: inWidths.map((w) => ({ w, unit: buildUnit(model, l, w, l.outChannels) })),
    outs: outWidths.map((w) => ({ w, unit: buildUnit(model, l, l.depthwise ? w : l.inChannels, w) })),
    both: both && { cin: both[0], cout: both[1], unit: buildUnit(model, l, both[0], both[1]) },
  };
}

/**
 * The interaction k that makes layerMs match a unit timed with both sides narrowed (see
 * predict.ts), kept within [0, 1.5]: noise must not turn a saving into a cost. 1 when the
 * measurement cannot tell (no saving on a side).
 */
function interactionOf(t: LayerTable, cin: number, cout: number, bothMs: number): number {
  const probe = { ...t, interaction: 0 };
  const additive = layerMs(probe, cin, cout);
  const product = layerMs({ ...t, interaction: 1 }, cin, cout);
  const inter = product - additive;
  if (!(t.fullMs > 0) || inter < 0.02 * t.fullMs) return 1;
  return Math.min(1.5, Math.max(0, (bothMs - additive) / inter));
}

/**
 * Measure `model`'s latency tables on this box: the block the kernels prefer, every weight
 * layer's time by kept width (each side narrowed alone), and the whole model's time (the
 * anchor predictions subtract savings from). Cached in `cacheDir` per (model bytes, hardware,
 * threads, shapes). The model is not modified.
 */
export async function buildLatencyTables(model: Model, o: BuildOptions): Promise<LatencyTables> {
  const t0 = performance.now();
  const hardware = hardwareId(cpuFacts());
  const inputs = inputShapes(model, o.shapes);
  const key: TableKey = {
    model: sha256(serializeModel(model)),
    hardware,
    threads: o.threads,
    shapes: Object.fromEntries(inputs.map((i) => [i.name, i.shape])),
  };
  const path = o.cacheDir && join(o.cacheDir, `${sha256(JSON.stringify(key)).slice(0, 32)}.json`);
  if (path) {
    const hit = cached(path, key);
    if (hit) return hit;
    mkdirSync(o.cacheDir!, { recursive: true });
  }

  const work = cloneModel(model);
  const inf = annotateShapes(work, { shapes: new Map(inputs.map((i) => [i.name, i.shape])) });
  if (inf.unresolved.length) {
    // what the static rules miss, onnxruntime knows once (analyze's own fallback)
    const found = await shapesFromOrt(work, new Map(inputs.map((i) => [i.name, i.shape])), inf.unresolved);
    applyShapes(work.graph, found);
  }
  const layers = weightLayers(work);

  const blockRes = await blockFor(o.threads, hardware, o.cacheDir);
  const plans = layers.map((l) => plan(work, l, blockRes.block));
  const distinct = new Set(
    plans.flatMap((p) =>
      [p.full, ...p.ins.map((x) => x.unit), ...p.outs.map((x) => x.unit), ...(p.both ? [p.both.unit] : [])].map((u) => u.key),
    ),
  );
  const total = distinct.size + 2;
  const gauge = await LoadGauge.open(o.threads, new FeedBuffer());
  try {
    return await measureTables(model, o, { t0, key, path, inputs, layers, plans, blockRes, total }, gauge);
  } finally {
    await gauge.close();
  }
}

/** The most of the model's time its weight layers' units are taken to hold (the rest: other ops, the run itself). */
const UNIT_SHARE_MAX = 0.9;

/**
 * The tables scaled down where their full-width units add up to more than UNIT_SHARE_MAX of the
 * model: a unit timed alone pays what the model pays once or not at all (a run's input and output,
 * NCHWc reorders at its edges), and on small models (cls, 64x64 zoo nets: 0.1-1 ms) that is most
 * of a unit's time. Unscaled, their savings exceeded the whole model (predictions below zero).
 */
function capToModel(layers: LayerTable[], modelMs: number): LayerTable[] {
  const sum = layers.reduce((a, l) => a + l.fullMs, 0);
  if (!(sum > UNIT_SHARE_MAX * modelMs)) return layers;
  const k = (UNIT_SHARE_MAX * modelMs) / sum;
  const sc = (ms: number[]) => ms.map((x) => x * k);
  return layers.map((l) => ({ ...l, inMs: sc(l.inMs), outMs: sc(l.outMs), fullMs: l.fullMs * k }));
}

/** The measuring half of buildLatencyTables: the model (twice, as the anchor) and every layer's units, all divided by the box's load. */
async function measureTables(
  model: Model,
  o: BuildOptions,
  c: {
    t0: number;
    key: TableKey;
    path: string | undefined;
    inputs: ReturnType<typeof inputShapes>;
    layers: WeightLayer[];
    plans: Array<ReturnType<typeof plan>>;
    blockRes: BlockResult;
    total: number;
  },
  gauge: LoadGauge,
): Promise<LatencyTables> {
  const { t0, key, path, inputs, layers, plans, blockRes, total } = c;
  let done = 0;
  const timer = new UnitTimer(
    o.threads,
    () => o.onProgress?.(++done, total),
    UNIT_PROTOCOL,
    () => gauge.factor(),
  );
  const feeds = timer.feeds;
  timer.overheadMs = await callOverhead(o.threads, feeds);
  const bytes = serializeModel(model);
  // the model is long: the box's load taken before and after it
  const timeWhole = async (): Promise<number> => {
    const before = await gauge.factor();
    const ms = await timeModel(bytes, inputs, o.threads, feeds);
    return ms / ((before + (await gauge.factor())) / 2);
  };
  const first = await timeWhole();
  o.onProgress?.(++done, total);

  const tables: LayerTable[] = [];
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i]!,
      p = plans[i]!;
    const fullMs = await timer.time(p.full);
    const inMs: number[] = [];
    for (const x of p.ins) inMs.push(x.w === l.inChannels ? fullMs : await timer.time(x.unit));
    const outMs: number[] = [];
    for (const x of p.outs) outMs.push(x.w === l.outChannels ? fullMs : await timer.time(x.unit));
    const table: LayerTable = {
      node: layerId(l.node),
      op: l.op,
      inChannels: l.inChannels,
      outChannels: l.outChannels,
      depthwise: l.depthwise,
      ...(l.groupWidth ? { groupWidth: l.groupWidth } : {}),
      inWidths: p.ins.map((x) => x.w),
      inMs,
      outWidths: p.outs.map((x) => x.w),
      outMs,
      fullMs,
    };
    if (p.both) table.interaction = interactionOf(table, p.both.cin, p.both.cout, await timer.time(p.both.unit));
    tables.push(table);
  }

  // the anchor is timed again after the layers and the faster figure kept: a burst of other
  // work on the box during one of them must not inflate the time every prediction starts from
  const modelMs = Math.min(first, await timeWhole());
  o.onProgress?.(++done, total);

  const result: LatencyTables = {
    version: 1,
    key,
    ...blockRes,
    layers: capToModel(tables, modelMs),
    modelMs,
    buildMs: performance.now() - t0,
  };
  if (path) writeFileAtomic(path, JSON.stringify(result));
  return result;
}

/** A weight node's (cin, cout) read from its weight's shape (the layouts weightLayers reads). */
function widthsOf(
  n: { opType: string; attrInt(name: string, d: number): number },
  dims: readonly number[],
): { cin: number; cout: number } | null {
  const group = n.attrInt('group', 1);
  switch (n.opType) {
    case 'Conv':
      return { cin: dims[1]! * group, cout: dims[0]! };
    case 'ConvTranspose':
      return { cin: dims[0]!, cout: dims[1]! * group };
    case 'Gemm':
      return n.attrInt('transB', 0) ? { cin: dims[1]!, cout: dims[0]! } : { cin: dims[0]!, cout: dims[1]! };
    case 'MatMul':
      return dims.length === 2 ? { cin: dims[0]!, cout: dims[1]! } : null;
    default:
      return null;
  }
}

/**
 * Predicted latency of `model` (a pruned copy of the model the tables were built for), ms: each
 * table layer's widths read from its weight's shape by node name. A layer whose node is gone
 * was removed by the pruning: all of its time is saved (width 0 on both sides).
 */
export function predictModelMs(tables: LatencyTables, model: Model): number {
  const g = model.graph;
  const nodes = new Map(g.nodes.map((n) => [layerId(n), n]));
  const widths = new Map<string, { cin: number; cout: number }>();
  for (const t of tables.layers) {
    const n = nodes.get(t.node);
    const w = n && g.constant(n.inputs[1] ?? '');
    const found = n && w ? widthsOf(n, w.dims) : null;
    widths.set(t.node, found ?? { cin: 0, cout: 0 });
  }
  return predictMs(tables, widths);
}
