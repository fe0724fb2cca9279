// A candidate's outputs judged by its task's metric over samples, and that judgement joined to
// eval's fidelity report, so the task, its metric and its figures travel with every figure
// (issue 16). Statistics are summed over samples, as the TaskDef contract says.
import { EdgefitError } from '../errors.js';
import type { ReadonlyGraph } from '../ir/graph.js';
import { finiteOr, outputsBroken, type Outputs } from './compare.js';
import type { TaskDef, TaskFigures } from './task-def.js';
import type { FidelityReport, HeadlineMetric } from './report.js';
import { resolveTask, TASKS, type Task } from './tasks.js';

export interface TaskFidelity {
  task: Task;
  /** True when the task was detected from the model rather than given. */
  auto: boolean;
  /** Why this task (detected), or 'given'. */
  reason: string;
  /** The headline's name ('top1', 'boxF1', 'textAgreement', 'cosine'). */
  metric: string;
  /** The headline, in [0, 1]. */
  value: number;
  figures: TaskFigures;
  samples: number;
  /** What one counted item moves the headline by on these samples (TaskDef.unit); absent for continuous metrics. */
  unit?: number;
  /** The task's finer figure (TaskDef.finer), 0 when the headline failed; absent when it has none. */
  finer?: number;
}

const shape = (d: readonly number[]): string => d.join('x') || 'scalar';

/**
 * Judge `got[i]` against `ref[i]` (same inputs) by the task given, or the one detected from the
 * reference's graph and first outputs. A given task whose layout the outputs do not have is a
 * usage error (text-det on a classifier says nothing); a detected one falls back to raw cosine.
 */
export function compareTask(
  task: Task | 'auto' | undefined,
  graph: ReadonlyGraph | undefined,
  ref: readonly Outputs[],
  got: readonly Outputs[],
): TaskFidelity {
  if (ref.length !== got.length) throw new EdgefitError('INTERNAL', `compareTask: ${got.length} vs ${ref.length} samples`);
  let r = resolveTask(task, graph, ref[0]);
  // a guess the concrete outputs contradict (the graph's dims were symbolic) is no error: raw cosine
  if (r.auto && ref.length > 0 && !r.def.applies(ref[0]!))
    r = { ...resolveTask('raw', graph), auto: true, reason: `${r.reason}, but the outputs do not fit ${r.task}; raw cosine` };
  if (ref.length > 0 && !r.def.applies(ref[0]!)) {
    const outs = Object.entries(ref[0]!).map(([n, t]) => `${n} ${shape(t.dims)}`);
    throw new EdgefitError('USAGE', `task ${r.task} does not fit this model's outputs (${outs.join(', ')}): ${r.def.describe}`, {
      remedy: { option: 'task' },
    });
  }
  let sum: number[] | undefined;
  let broken = 0;
  for (let i = 0; i < ref.length; i++) {
    for (const [name, a] of Object.entries(ref[i]!)) {
      const b = got[i]![name];
      // detectors with built-in NMS keep as many boxes as they find: their shapes may differ
      if (!b || (r.task !== 'detect' && shape(a.dims) !== shape(b.dims)))
        throw new EdgefitError('EVAL', `output '${name}' has shape ${b ? shape(b.dims) : 'none'} but the reference's is ${shape(a.dims)}`);
    }
    if (outputsBroken(ref[i]!, got[i]!)) broken++;
    const s = r.def.stats(ref[i]!, got[i]!);
    if (!sum) sum = s;
    else for (let k = 0; k < s.length; k++) sum[k]! += s[k]!;
  }
  // no samples: nothing differs
  const figures = taskFigures(r.def, sum, broken);
  const unit = r.def.unit && sum ? r.def.unit(sum) : undefined;
  const finer = r.def.finer !== undefined ? (broken ? 0 : finiteOr(figures[r.def.finer] ?? 1, 0)) : undefined;
  return {
    task: r.task,
    auto: r.auto,
    reason: r.reason,
    metric: r.def.metric,
    value: figures.value,
    figures,
    samples: ref.length,
    ...(unit !== undefined ? { unit } : {}),
    ...(finer !== undefined ? { finer } : {}),
  };
}

/**
 * A task's figures from summed statistics (none: nothing differs), failing (headline 0) when the
 * candidate put out NaN or infinity on any of the `broken` samples, or when the headline is NaN.
 */
export function taskFigures(def: TaskDef, sum: readonly number[] | undefined, broken = 0): TaskFigures {
  const f = sum ? def.figures(sum) : { value: 1 };
  return { ...f, value: broken ? 0 : finiteOr(f.value, 0) };
}

const LABELS: Readonly<Record<string, string>> = {
  boxF1: 'box F1',
  maskIoU: 'mask IoU',
  textAgreement: 'text agreement',
  top1: 'top-1 agreement',
  top5: 'top-5',
  lineExact: 'lines exact',
  cer: 'CER',
  detF1: 'detection F1',
  mAP50: 'mAP@0.5',
};

/** A figure held-out before training and of the weights kept. */
export interface JudgedPair {
  name: string;
  before: number;
  after: number;
}

/** A training judge's figures: its score, and its finer figure (TaskDef.finer) when it has one. */
export type Judged = JudgedPair & { finer?: JudgedPair };

/**
 * A training judge's scores in a line: "boxF1 0.9709 -> 0.9745 (maskIoU 0.9012 -> 0.9195)", the
 * finer figure (TaskDef.finer) in parentheses when there is one. `arrow` and `name` let HTML callers
 * use an entity and escape the names.
 */
export function describeJudged(j: Judged, arrow = '->', name: (s: string) => string = (s) => s): string {
  const pair = (x: JudgedPair): string => `${name(x.name)} ${x.before.toFixed(4)} ${arrow} ${x.after.toFixed(4)}`;
  return pair(j) + (j.finer ? ` (${pair(j.finer)})` : '');
}

/** A task's figures in a line, its headline first: "box F1 0.9530, precision 0.9600, recall 0.9500, ...". */
export function describeFigures(task: Task, f: TaskFigures): string {
  const metric = TASKS[task]?.metric ?? 'value';
  const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(4));
  const rest = Object.keys(f).filter((k) => k !== 'value' && k !== metric && k !== 'refBoxes' && k !== 'boxes');
  const parts = [`${LABELS[metric] ?? metric} ${num(f.value)}`, ...rest.map((k) => `${LABELS[k] ?? k} ${num(f[k]!)}`)];
  if (f.refBoxes !== undefined) parts.push(`${f.boxes} boxes vs ${f.refBoxes} in the reference`);
  return parts.join(', ');
}

/**
 * Eval's report judged by task: the task and its figures are stored with it, and the headline is
 * the task's metric unless a raw metric was asked for by name (`metric` other than 'auto').
 */
export function withTask(report: FidelityReport, t: TaskFidelity, metric: HeadlineMetric = 'auto'): FidelityReport {
  const r: FidelityReport = { ...report, task: t.task, taskAuto: t.auto, taskReason: t.reason, taskFigures: t.figures };
  if (metric === 'auto') {
    r.metric = t.metric;
    r.value = t.value;
  }
  return r;
}
