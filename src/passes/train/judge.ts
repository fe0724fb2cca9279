// The held-out judge by task (issue 18): the trainer keeps the weights whose held-out outputs
// agree best with the teacher's by what the model is for (fidelity's task metric: box F1, top-1,
// text agreement), not by the loss. The loss is what the gradient needs; the task is what the
// user gets, and the two part ways (PP-OCRv4 det: held-out loss down, box F1 0.971 -> 0.957).
import { isEdgefitError } from '../../errors.js';
import type { NdArray } from '../../data/ndarray.js';
import type { Sample } from '../../data/inputs.js';
import type { Outputs } from '../../fidelity/compare.js';
import { compareTask } from '../../fidelity/index.js';
import { taskDef, type Task } from '../../fidelity/tasks.js';
import type { Model } from '../../ir/model.js';
import { ModelRunner } from '../../runtime/runner.js';
import { rowsOf } from './train.js';
import type { HeldOutJudge } from './types.js';

/**
 * Task scores within this of the best seen are ties (HeldOutJudge.tolerance): the task's finer
 * figure (text-det's mask IoU), else the loss, picks among
 * them. Judged to the last box, a distillation whose held-out loss fell 29 % was thrown away
 * because the lsq start matched every held-out box and each trained step one box fewer (F1 1.000
 * against 0.997).
 */
export const TASK_TOLERANCE = 0.005;
/**
 * ... or this many counted items (boxes, rows, characters: TaskFidelity.unit) when that is more.
 * A held-out set is small: det's 16 images hold ~150 boxes, one box moving F1 by 0.0033, and a
 * difference of two boxes between two weights is within what 16 other images would change. With
 * 0.005 alone, a run whose held-out loss fell 33 % kept its untrained start for two boxes (F1
 * 1.000 against 0.9934), where every run the loss picked ended better on the judge images. A
 * drop like the one the judge exists for (box F1 0.971 -> 0.957: ~5 boxes of 173) stays beyond it.
 */
export const TIE_ITEMS = 3;

const asOutputs = (r: Readonly<Record<string, NdArray>>): Outputs =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { dims: v.shape, data: v.data as Float32Array }]));

/** A runner that scores held-out rows: every graph optimisation, thread pools that sleep between runs. */
const scoringRunner = (m: Model, threads?: number): Promise<ModelRunner> =>
  ModelRunner.create(m, { threads, optimization: 'all', spinning: false });

/** One row's outputs named `names`, as the task metrics read them (those the runner does not return, such as int64 labels, left out). */
async function outputsOf(r: ModelRunner, row: Sample, names: readonly string[]): Promise<Outputs> {
  const out = await r.run(row, names);
  return Object.fromEntries(names.flatMap((n) => (out.has(n) ? [[n, { dims: out.get(n)!.shape, data: out.get(n)!.data }]] : [])));
}

/**
 * A judge scoring the student's outputs on `heldOut` by `task` against the teacher's (computed
 * once here). The task is resolved once, on the teacher's outputs ('auto': detected as the fit
 * detects it); a task that does not fit the outputs is refused now, not at the first evaluation.
 */
export async function taskJudge(teacher: Model, heldOut: readonly Sample[], task: Task | 'auto', threads?: number): Promise<HeldOutJudge> {
  const names = teacher.graph.outputs.map((o) => o.name);
  const runner = await scoringRunner(teacher, threads);
  const ref: Outputs[] = [];
  try {
    for (const row of rowsOf(heldOut)) ref.push(await outputsOf(runner, row, names));
  } finally {
    await runner.release();
  }
  // only the float outputs the runner returns are judged (a detector's int64 labels are not trained)
  const judged = Object.keys(ref[0] ?? {});
  const resolved = compareTask(task, teacher.graph, ref, ref);
  const finer = taskDef(resolved.task).finer;
  return {
    name: resolved.metric,
    outputs: judged,
    tolerance: Math.max(TASK_TOLERANCE, TIE_ITEMS * (resolved.unit ?? 0)),
    ...(finer !== undefined ? { finer } : {}),
    score: (got) => {
      const r = compareTask(resolved.task, teacher.graph, ref, got.map(asOutputs));
      return r.finer !== undefined ? { value: r.value, finer: r.finer } : r.value;
    },
  };
}

/**
 * taskJudge, or none when the task does not fit the outputs (what the fit and the CLIs already
 * refuse when the user names the task): the held-out loss picks then, the run does not fail.
 */
export async function judgeOrLoss(
  teacher: Model,
  heldOut: readonly Sample[],
  task: Task | 'auto' | undefined,
  threads?: number,
): Promise<HeldOutJudge | undefined> {
  if (task === undefined) return undefined;
  try {
    return await taskJudge(teacher, heldOut, task, threads);
  } catch (e) {
    if (isEdgefitError(e) && e.code === 'USAGE') return undefined;
    throw e;
  }
}

/**
 * Each of `samples` scored alone by `task`: how well `student` agrees with `teacher` on it (1: as
 * the teacher). Empty when the samples are stacks the rows cannot be told apart in.
 */
export async function sampleScores(
  teacher: Model,
  student: Model,
  samples: readonly Sample[],
  task: Task | 'auto',
  threads?: number,
): Promise<number[]> {
  if (!samples.length) return [];
  const [t, s] = [await scoringRunner(teacher, threads), await scoringRunner(student, threads)];
  const names = teacher.graph.outputs.map((o) => o.name);
  const scores: number[] = [];
  try {
    const rows = rowsOf(samples);
    if (rows.length !== samples.length) return [];
    for (const row of rows) {
      const ref = await outputsOf(t, row, names);
      scores.push(compareTask(task, teacher.graph, [ref], [await outputsOf(s, row, names)]).value);
    }
  } finally {
    await Promise.all([t.release(), s.release()]);
  }
  return scores;
}

/**
 * The indices of at most `k` of `samples` on which `student` agrees least with `teacher` by `task`
 * (each sample scored alone; only scores short of 1, lowest first). Holding these out gives the
 * judge images it can tell weights apart on: det's calibration images all scored box F1 0.993-0.997
 * at every evaluation of a run, while all the boxes lost on the judge images sat on two images
 * of kinds (handwriting, large binarised print) that only the training set holds.
 */
export async function hardestSamples(
  teacher: Model,
  student: Model,
  samples: readonly Sample[],
  task: Task | 'auto',
  k: number,
  threads?: number,
): Promise<number[]> {
  if (k < 1) return [];
  return (await sampleScores(teacher, student, samples, task, threads))
    .map((score, i) => ({ i, score }))
    .filter((x) => x.score < 1)
    .sort((a, b) => a.score - b.score || a.i - b.i)
    .slice(0, k)
    .map((x) => x.i);
}
