// Bounded training RAM (issue 18: "bound peak RSS ... when a RAM budget says so; Pi-class boxes
// have 2-8 GB"). Saved activations dominate a training step's memory and grow with the rows per
// onnxruntime run, so the trainer measures, in its own process, what one step costs at one row and
// at more (peak RSS growth over creating the session, with those of the held-out loss and the
// timed inference beside it, and running each twice), scales it in proportion to the rows,
// measures the size so chosen (shrinking it until it fits), and runs the largest micro-batch the
// budget holds, accumulating gradients over micro-batches to keep the asked-for rows per Adam
// step. When even one row does not fit it refuses, saying what one row needs.
import { writeFileSync } from 'node:fs';
import { freemem } from 'node:os';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ND_DTYPES, type NdData, type NdDType } from '../../data/ndarray.js';
import { EdgefitError } from '../../errors.js';
import type { Model } from '../../ir/model.js';
import type { Tensor } from '../../ir/tensor.js';
import { floatTensor, openSession, toTensor, type Feeds } from '../../runtime/runner.js';
import { rssMb } from '../../util/rss.js';

/** Share of the free memory a training run takes when no budget is given (the box keeps serving meanwhile). */
export const FREE_MEMORY_SHARE = 0.6;
/** Headroom over the fitted prediction: the held-out and timing sessions, JS buffers, allocator slack. */
const MARGIN = 1.15;

export { rssMb };

/** The default budget for the process's peak RSS while training: what it holds now plus a share of the free memory. */
export function defaultTrainRamMb(): number {
  return Math.round(rssMb() + FREE_MEMORY_SHARE * (freemem() / (1 << 20)));
}

/** A training graph at some micro-batch: the model and the values of its weight inputs. */
export interface StepGraph {
  model: Model;
  initial: ReadonlyMap<string, Tensor>;
  /** Static dims of runtime inputs the model leaves open or declares at another batch. */
  shapes?: ReadonlyMap<string, readonly number[]>;
  /**
   * Graphs whose sessions live beside the step's through the run (the held-out loss, the
   * student's timed inference), at the same rows: measured with it, fed the same way.
   */
  beside?: readonly { model: Model; shapes?: ReadonlyMap<string, readonly number[]> }[];
}

/** Zeros for every runtime input (the memory a step needs does not depend on the values, nor does its time), weights at their values. */
export function feedsFor(step: StepGraph): Feeds {
  const feeds: Feeds = {};
  for (const v of step.model.graph.inputs) {
    const w = step.initial.get(v.name);
    if (w) {
      feeds[v.name] = floatTensor(w.toFloat32().slice(), w.dims);
      continue;
    }
    if (step.model.graph.initializer(v.name)) continue;
    const shape = [...(step.shapes?.get(v.name) ?? (v.type?.shape ?? []).map((d) => (typeof d === 'number' ? d : 1)))];
    const dtype = (v.type?.dtype ?? 'float32') as NdDType;
    if (!(dtype in ND_DTYPES)) throw new EdgefitError('UNSUPPORTED', `measuring training memory: input '${v.name}' has dtype ${dtype}`);
    const data = new ND_DTYPES[dtype].ctor(shape.reduce((a, b) => a * b, 1)) as NdData;
    feeds[v.name] = toTensor({ dtype, shape, data });
  }
  return feeds;
}

/**
 * Resets this process's peak RSS (Linux: /proc/self/clear_refs 5, which getrusage's maxRSS
 * follows); false where that is not possible (the peak then includes earlier ones: an over-estimate).
 */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * A full V8 collection: the graphs just built leave hundreds of MB of garbage, whose collection
 * during a probe would hide the probe's growth (a det step read 2 MB a row).
 */
export function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** This process's peak RSS since start or the last reset, MB. */
export const peakRssMb = (): number => process.resourceUsage().maxRSS / 1024;

/**
 * Peak RSS growth, MB, over opening `step`'s session (and those beside it) and running each once,
 * from `baseMb`. The peak, not the RSS after the run: onnxruntime hands large activation buffers
 * back to the system when a run ends (RSS after a det step read 12 MB a row where its peak grew by
 * over 100).
 */
export async function measureStepMb(step: StepGraph, threads: number, baseMb: number): Promise<number> {
  collectGarbage();
  resetPeakRss();
  const graphs = [step, ...(step.beside ?? []).map((b) => ({ ...step, ...b, beside: undefined }))];
  const sessions: Awaited<ReturnType<typeof openSession>>[] = [];
  try {
    for (const g of graphs) {
      // as train() opens them (no memory pattern), run twice: a second run is where a planned block would show
      const s = await openSession(g.model, { threads, level: 'all', memPattern: false });
      sessions.push(s);
      const feeds = feedsFor(g);
      await s.run(feeds);
      await s.run(feeds);
    }
    return Math.max(0, peakRssMb() - baseMb);
  } finally {
    await Promise.all(sessions.map((s) => s.release()));
  }
}

export interface RamPlan {
  /** Rows per onnxruntime run and runs per Adam step. */
  micro: number;
  accumulate: number;
  budgetMb: number;
  /** Memory of a step as planned: fixed + perRow * rows, MB above the process's RSS before the probes (fixed 0: scaled in proportion from a probe). */
  fixedMb: number;
  perRowMb: number;
  /** RSS before the probes plus the step at the chosen micro-batch, with the margin, MB. */
  predictedPeakMb: number;
  /** RSS before the probes, MB: what a step measured later (measureStepMb) is counted from. */
  baseMb: number;
}

/** Whether a step that measured `stepMb` over the plan's base fits its budget, with the plan's margin. */
export const fitsPlan = (plan: RamPlan, stepMb: number): boolean => plan.baseMb + MARGIN * stepMb <= plan.budgetMb;

export interface RamPlanInput {
  budgetMb: number;
  /** Rows per Adam step asked for. */
  batch: number;
  /** The model's batch dim when fixed (the micro-batch cannot change), else undefined. */
  fixedBatch?: number;
  threads: number;
  /** The training graph at `rows` rows per run. */
  graphAt(rows: number): StepGraph;
}

/** The micro-batch and accumulation that keep the training step within the budget; see the module comment. */
export async function planRam(o: RamPlanInput): Promise<RamPlan> {
  if (!(o.budgetMb > 0) || !Number.isFinite(o.budgetMb))
    throw new EdgefitError('USAGE', `a training RAM budget must be a positive number of MB, got ${o.budgetMb}`);
  collectGarbage();
  const base = rssMb();
  const refuse = (needMb: number, rows: number): EdgefitError =>
    new EdgefitError(
      'OVER_BUDGET',
      `training needs about ${Math.round(needMb)} MB at ${rows} row${rows > 1 ? 's' : ''} per step (measured on this box), ` +
        `over the training RAM budget of ${Math.round(o.budgetMb)} MB: give it more RAM or train on smaller crops`,
    );
  const m1 = await measureStepMb(o.graphAt(o.fixedBatch ?? 1), o.threads, base);
  if (o.fixedBatch !== undefined) {
    const peak = base + MARGIN * m1;
    if (peak > o.budgetMb) throw refuse(peak, o.fixedBatch);
    return {
      micro: o.fixedBatch,
      accumulate: Math.max(1, Math.round(o.batch / o.fixedBatch)),
      budgetMb: o.budgetMb,
      fixedMb: m1,
      perRowMb: 0,
      predictedPeakMb: Math.round(peak),
      baseMb: base,
    };
  }
  if (base + MARGIN * m1 > o.budgetMb) throw refuse(base + MARGIN * m1, 1);
  // memory scaled in proportion from a measured step over-counts the part that does not grow with
  // the rows, so it errs on the safe side (a fitted slope from two noisy probes once read 35 MB a
  // row where det needs about 100). From one row: when even that holds the batch, no second probe;
  // else the second probe runs at as many rows as that bound lets the budget hold (the probe itself
  // stays within it), and the plan scales from it
  let perRow = m1;
  let measuredRows = 1;
  let measuredMb = m1;
  const r2 = Math.min(o.batch, Math.floor((o.budgetMb - base) / (MARGIN * m1)));
  if (o.batch > 1 && r2 < o.batch && r2 >= 2) {
    measuredMb = await measureStepMb(o.graphAt(r2), o.threads, base);
    measuredRows = r2;
    perRow = measuredMb / r2;
  }
  // as many runs as needed, rows spread evenly over them (8 rows where 7 fit: 4 + 4, not 7 + 7)
  const split = (fits: number): [number, number] => {
    const acc = Math.ceil(o.batch / Math.max(1, Math.min(o.batch, fits)));
    return [Math.ceil(o.batch / acc), acc];
  };
  let [micro, accumulate] = split(Math.floor((o.budgetMb - base) / MARGIN / perRow));
  // a probe can grow RSS less than it needs by reusing pages the process holds free, and scaling
  // that growth under-counts larger steps (det: one row read 45 MB, four then peaked 300 MB over
  // the plan): the chosen size is measured itself, and shrunk in proportion until it fits
  for (let tries = 0; micro > measuredRows && tries < 3; tries++) {
    const m = await measureStepMb(o.graphAt(micro), o.threads, base);
    measuredRows = micro;
    measuredMb = m;
    perRow = m / micro;
    if (base + MARGIN * m <= o.budgetMb) break;
    [micro, accumulate] = split(Math.floor((micro * (o.budgetMb - base)) / (MARGIN * m)));
    if (micro === 1) break;
  }
  return {
    micro,
    accumulate,
    budgetMb: o.budgetMb,
    fixedMb: 0,
    perRowMb: +perRow.toFixed(2),
    predictedPeakMb: Math.round(base + MARGIN * (micro === measuredRows ? measuredMb : perRow * micro)),
    baseMb: base,
  };
}
