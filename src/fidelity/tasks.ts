// What a model is for, which decides how its fidelity is judged: a classifier by its labels, a
// text detector by its boxes, a recogniser by its decoded text (issue 16). Each task's metric is
// a TaskDef in its own module; this is the table of them and the guess of a model's task from
// its graph (the op that makes each output, and the outputs' shapes) and its first outputs.
import { EdgefitError } from '../errors.js';
import type { ReadonlyGraph } from '../ir/graph.js';
import type { Outputs } from './compare.js';
import type { TaskDef } from './task-def.js';
import { CLASSIFY_TASK } from './task-classify.js';
import { isProbabilityMap, TEXT_DET_TASK } from './task-textdet.js';
import { CTC_TASK, isSequenceShape } from './task-ctc.js';
import { EMBED_TASK, RAW_TASK } from './task-cosine.js';
import { DETECT_TASK } from './detect.js';

/** Tasks a user can name (`--task`); 'raw' compares raw outputs by cosine, like 'embed'. */
export const TASK_NAMES = ['classify', 'text-det', 'detect', 'ctc', 'embed', 'raw'] as const;
export type Task = (typeof TASK_NAMES)[number];

/** The metric of each task. */
export const TASKS: Partial<Record<Task, TaskDef>> = {
  classify: CLASSIFY_TASK,
  'text-det': TEXT_DET_TASK,
  detect: DETECT_TASK,
  ctc: CTC_TASK,
  embed: EMBED_TASK,
  raw: RAW_TASK,
};

/** A task name as given by a user or config ('auto' = detect it); a clear error otherwise. */
export function parseTask(s: string): Task | 'auto' {
  if (s === 'auto' || (TASK_NAMES as readonly string[]).includes(s)) return s as Task | 'auto';
  throw new EdgefitError('USAGE', `unknown task '${s}': expected auto or one of ${TASK_NAMES.join(', ')}`, { remedy: { option: 'task' } });
}

/** The metric of a task; a task without one in this build is refused. */
export function taskDef(task: Task): TaskDef {
  const def = TASKS[task];
  if (!def)
    throw new EdgefitError('USAGE', `task '${task}' has no fidelity metric in this build`, {
      remedy: { option: 'task' },
    });
  return def;
}

export interface TaskGuess {
  task: Task;
  /** Why, in a few words (printed beside the task). */
  reason: string;
}

// Ops between a head's last real op and the graph output that change no values' meaning (an
// int8 model's output is a DequantizeLinear of the head's quantized op).
const PASS_THROUGH = new Set([
  'Identity',
  'Cast',
  'Reshape',
  'Squeeze',
  'Unsqueeze',
  'Flatten',
  'Transpose',
  'DequantizeLinear',
  'QuantizeLinear',
]);
// (quantized forms, com.microsoft's QLinear*, count as the op they compute)
const headOp = (op: string): string => op.replace(/^QLinear/, '');

function lastOp(g: ReadonlyGraph, value: string): string | undefined {
  let v = value;
  for (let i = 0; i < 8; i++) {
    const p = g.producer(v);
    if (!p) return undefined;
    if (!PASS_THROUGH.has(p.opType)) return headOp(p.opType);
    v = p.inputs[0]!;
  }
  return undefined;
}

/** Dims with unknown (symbolic) ones as -1. */
type Dims = readonly number[];
const known = (d: number): boolean => d > 0;

interface OutputView {
  name: string;
  dims: Dims;
  op: string | undefined;
  values: ArrayLike<number> | undefined;
}

/** Whether the first row over the last axis is a distribution (a Softmax output seen without a graph). */
function rowSumsToOne(v: ArrayLike<number> | undefined, c: number): boolean {
  if (!v || !known(c) || v.length < c) return false;
  let s = 0;
  for (let i = 0; i < c; i++) {
    if (v[i]! < 0) return false;
    s += v[i]!;
  }
  return Math.abs(s - 1) < 1e-3;
}

const inUnit = (v: ArrayLike<number> | undefined): boolean => {
  if (!v || v.length === 0) return false;
  for (let i = 0; i < v.length; i++) if (!(v[i]! >= 0 && v[i]! <= 1)) return false;
  return true;
};

// The tasks' own shape rules decide the layout (a declared dim not known yet is taken to fit);
// the op that makes the output, or without a graph its values, is the evidence on top
const fits = (rule: (dims: readonly number[]) => boolean, d: readonly number[]): boolean => rule(d.map((x) => (known(x) ? x : 2)));

function isMap(o: OutputView): boolean {
  if (!fits(isProbabilityMap, o.dims)) return false;
  return o.op !== undefined ? o.op === 'Sigmoid' || o.op === 'HardSigmoid' : inUnit(o.values);
}

function isSequence(o: OutputView): boolean {
  if (!fits(isSequenceShape, o.dims)) return false;
  return o.op !== undefined ? o.op === 'Softmax' || o.op === 'LogSoftmax' : rowSumsToOne(o.values, o.dims[2]!);
}

/** YOLO/SSD-like: boxes [.., K, 4] beside scores, or one [N, A, 4+1+C] / [N, 4+C, A] tensor over many anchors. */
function isDetection(outs: readonly OutputView[]): boolean {
  if (outs.length >= 2 && outs.some((o) => o.dims.length >= 2 && o.dims[o.dims.length - 1] === 4)) return true;
  return outs.some((o) => {
    const d = o.dims;
    if (d.length !== 3 || !known(d[1]!) || !known(d[2]!)) return false;
    const small = Math.min(d[1]!, d[2]!);
    const big = Math.max(d[1]!, d[2]!);
    return small >= 5 && small <= 1024 && big >= 1000 && big >= 4 * small;
  });
}

function isScores(o: OutputView): boolean {
  const d = o.dims;
  const c = d[d.length - 1]!;
  return (d.length === 2 || (d.length === 3 && d[1] === 1)) && c >= 2 && c <= 100000;
}

/**
 * The task a model's outputs say it does. `graph` (the reference's) gives each output's op and
 * declared shape; `ref` (its outputs on the first sample) gives concrete shapes and, without a
 * graph, the values (a map in [0, 1], rows summing to 1). In order: one single-channel map after
 * a Sigmoid -> text-det (PP-OCR det); a [N, T, C] Softmax -> ctc (PP-OCR rec); box outputs ->
 * detect; [N, C] scores -> classify (PP-OCR cls [1, 2] too), embed when L2-normalised; else raw.
 */
export function detectTask(graph: ReadonlyGraph | undefined, ref?: Outputs): TaskGuess {
  const names = graph ? graph.outputs.map((o) => o.name) : Object.keys(ref ?? {});
  const outs: OutputView[] = names.map((name) => {
    const declared = graph?.outputs.find((o) => o.name === name)?.type?.shape ?? [];
    const dims = ref?.[name]?.dims ?? declared.map((d) => (typeof d === 'number' ? d : -1));
    return { name, dims, op: graph ? lastOp(graph, name) : undefined, values: ref?.[name]?.data };
  });
  if (outs.length === 0) return { task: 'raw', reason: 'no outputs to recognise' };
  const maps = outs.filter(isMap);
  if (maps.length === 1 && outs.length === 1) return { task: 'text-det', reason: `one [N,1,H,W] probability map '${maps[0]!.name}'` };
  const seq = outs.find(isSequence);
  if (seq) return { task: 'ctc', reason: `[N,T,C] per-step class distribution '${seq.name}'` };
  // (the detect task's own recogniser also knows small one-level heads the shape rule misses)
  if (isDetection(outs) || (ref !== undefined && DETECT_TASK.applies(ref)))
    return { task: 'detect', reason: 'box detector outputs (boxes and scores)' };
  const scores = outs.filter(isScores);
  if (scores.length > 0 && scores.length === outs.length) {
    if (scores.every((o) => o.op === 'LpNormalization')) return { task: 'embed', reason: 'L2-normalised vectors' };
    return { task: 'classify', reason: `[N,C] class scores '${scores[0]!.name}'` };
  }
  return { task: 'raw', reason: 'no known output layout' };
}

export interface ResolvedTask {
  task: Task;
  def: TaskDef;
  /** True when detected rather than given. */
  auto: boolean;
  reason: string;
}

/**
 * The task to judge by: the one given, or the detected one. A detected task this build has no
 * metric for falls back to raw cosine (and says so); a given one is refused.
 */
export function resolveTask(given: Task | 'auto' | undefined, graph: ReadonlyGraph | undefined, ref?: Outputs): ResolvedTask {
  if (given !== undefined && given !== 'auto') return { task: given, def: taskDef(given), auto: false, reason: 'given' };
  const g = detectTask(graph, ref);
  if (!TASKS[g.task])
    return { task: 'raw', def: taskDef('raw'), auto: true, reason: `${g.reason}; no '${g.task}' metric here, raw cosine` };
  return { task: g.task, def: taskDef(g.task), auto: true, reason: g.reason };
}
