// train(): fit a student's chosen weights to a teacher's outputs on the box. The training graph is
// the student with the loss appended (loss.ts), differentiated by buildGradients into one ONNX
// graph whose outputs are the loss and the weights' gradients; onnxruntime runs it with its
// threads, Adam (adam.ts) updates the weights in TypeScript and re-feeds them next step. The
// held-out loss is measured before, a few times during and after the run; the best weights seen
// are kept (with a judge: the lowest loss among those scored within the judge's tolerance of the
// best score seen), and a run that never beats the input on held-out rows returns the input unchanged.
import { availableParallelism } from 'node:os';
import type * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import type { Sample } from '../../data/inputs.js';
import { ND_DTYPES, splitAxis0, type NdArray, type NdData } from '../../data/ndarray.js';
import { cloneModel, type Model } from '../../ir/model.js';
import { Tensor } from '../../ir/tensor.js';
import { ModelRunner, openSession, toTensor, floatTensor, firstLine, type Feeds } from '../../runtime/runner.js';
import { rng } from '../../util/rng.js';
import { rssMb } from '../../util/rss.js';
import { buildGradients } from './grad/backward.js';
import { GRAD_RULES } from './grad/rules/index.js';
import { Adam, learningRate } from './adam.js';
import { appendAdam, GraphAdamState } from './adam-graph.js';
import { appendLoss, LOSS_GRADS, resolveLoss, specFor, teacherTarget } from './loss.js';
import { defaultTrainRamMb, fitsPlan, measureStepMb, planRam } from './ram.js';
import { chooseStepKernels } from './nchwc.js';
import { freezeStem, isFreezeStride } from './freeze.js';
import type { CurvePoint, HeldOutJudge, JudgeScore, ResolvedLoss, TrainReport, TrainResult, TrainSpec } from './types.js';

export const DEFAULT_LR = 5e-4;
export const DEFAULT_BATCH = 8;
/** Steps between two timed inferences of the student (about 1/4 of a step each: a few % of the run). */
const FORWARD_EVERY = 8;

const median = (xs: readonly number[]): number => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[(s.length - 1) >> 1]!;
};

/** Every sample as rows of batch 1 (views): a stacked sample of n rows gives n. */
export function rowsOf(samples: readonly Sample[]): Sample[] {
  const out: Sample[] = [];
  for (const s of samples) {
    const names = Object.keys(s);
    const n = s[names[0]!]?.shape[0] ?? 1;
    if (n <= 1) {
      out.push(s);
      continue;
    }
    const parts = names.map((k) => splitAxis0(s[k]!, 1));
    for (let i = 0; i < n; i++) out.push(Object.fromEntries(names.map((k, j) => [k, parts[j]![i]!])));
  }
  return out;
}

/** Rows stacked along axis 0 (one copy per input). */
function stack(rows: readonly Sample[], names: readonly string[]): Sample {
  const out: Sample = {};
  for (const k of names) {
    const first = rows[0]![k];
    if (!first) throw new EdgefitError('DATA', `no data for model input '${k}'`);
    const len = first.data.length;
    const data = new ND_DTYPES[first.dtype].ctor(len * rows.length) as NdData;
    rows.forEach((r, i) => {
      const a = r[k]!;
      if (a.data.length !== len)
        throw new EdgefitError(
          'DATA',
          `input '${k}': training rows differ in shape ([${a.shape.join(',')}] vs [${first.shape.join(',')}])`,
        );
      (data as Float32Array).set(a.data as Float32Array, i * len);
    });
    out[k] = { dtype: first.dtype, shape: [rows.length, ...first.shape.slice(1)], data };
  }
  return out;
}

function concatF32(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Copies of a set of weights (what a kept or averaged set must be: the trainer's own arrays change every step). */
export const copyWeights = (w: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> =>
  new Map([...w].map(([k, v]) => [k, Float32Array.from(v)]));

/** TrainSpec.drawWeights as a draw: u in [0, 1) -> a row index, each in proportion to its weight. */
function drawTable(weights: readonly number[], rows: number): (u: number) => number {
  if (weights.length !== rows)
    throw new EdgefitError('USAGE', `draw weights are given for ${weights.length} rows, but the training set has ${rows}`);
  if (!weights.every((w) => w >= 0 && Number.isFinite(w)) || !weights.some((w) => w > 0))
    throw new EdgefitError('USAGE', 'draw weights must be finite, none negative and one at least positive');
  const cum: number[] = [];
  let sum = 0;
  for (const w of weights) cum.push((sum += w));
  return (u) => {
    const x = u * sum;
    let lo = 0;
    let hi = cum.length - 1;
    // the first row whose cumulative weight passes x (a zero-weight row is never it)
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

function check(spec: TrainSpec): void {
  const usage = (msg: string) => new EdgefitError('USAGE', msg);
  if (!(spec.minutes > 0) || !Number.isFinite(spec.minutes)) throw usage(`training minutes must be a positive number, got ${spec.minutes}`);
  if (spec.ema !== undefined && !(spec.ema >= 0 && spec.ema < 1)) throw usage(`ema must be a decay in [0, 1), got ${spec.ema}`);
  if (spec.maxSteps !== undefined && !(Number.isInteger(spec.maxSteps) && spec.maxSteps >= 1))
    throw usage(`training steps must be a positive integer, got ${spec.maxSteps}`);
  if (spec.batch !== undefined && !(Number.isInteger(spec.batch) && spec.batch >= 1))
    throw usage(`a training batch must be a positive integer, got ${spec.batch}`);
  if (spec.freezeStride !== undefined && !isFreezeStride(spec.freezeStride))
    throw usage(`a freeze stride must be 0 (train every layer) or an integer from 2, got ${spec.freezeStride}`);
  if (spec.lr !== undefined && !(spec.lr > 0)) throw usage(`a learning rate must be positive, got ${spec.lr}`);
  for (const [w, f] of spec.lrFactors ?? []) {
    if (!(f > 0) || !Number.isFinite(f)) throw usage(`a learning-rate factor must be a positive number, got ${f} for '${w}'`);
    if (!spec.trainable.includes(w)) throw usage(`a learning-rate factor names '${w}', which is not trained`);
  }
  if (spec.lrFactors?.size && spec.optimizer === 'graph') throw usage('per-parameter learning-rate factors need the TypeScript optimizer');
  if (!spec.train.length || !spec.heldOut.length)
    throw new EdgefitError('DATA', `training needs training and held-out samples (got ${spec.train.length} and ${spec.heldOut.length})`, {
      remedy: { option: 'calib' },
    });
  if (!spec.trainable.length) throw usage('nothing to train: no trainable weights were given');
  for (const o of spec.judge?.outputs ?? [])
    if (!spec.student.graph.outputs.some((v) => v.name === o)) throw usage(`the judge reads '${o}', which is no output of the student`);
  for (const w of spec.trainable) {
    const t = spec.student.graph.initializer(w);
    if (!t) throw usage(`cannot train '${w}': it is not a weight of the student`);
    if (t.dtype !== 'float32') throw usage(`cannot train '${w}': it is ${t.dtype}, the trainer trains float32 weights`);
  }
}

/**
 * The loss graph with the trainable weights as inputs (held-out evaluation at any shape, current
 * weights fed), and the student's outputs a judge reads as outputs beside the loss.
 */
function withWeightInputs(m: Model, trainable: readonly string[], student: Model, judged: readonly string[]): Model {
  const c = cloneModel(m);
  const g = c.graph;
  for (const w of trainable) g.initializerToInput(w);
  for (const o of judged) if (!g.outputs.some((v) => v.name === o)) g.outputs.push(student.graph.outputs.find((v) => v.name === o)!);
  g.touch();
  return c;
}

/**
 * A held-out evaluation: the loss, and the judge's score and finer figure when there is a judge
 * (NaN counts as the worst).
 */
interface HeldOutFigures {
  loss: number;
  score?: number;
  finer?: number;
}

/** Between two tied scores: the higher finer figure where both have one and they differ, else the lower loss. */
function tieBeats(a: HeldOutFigures, b: HeldOutFigures): boolean {
  if (a.finer !== undefined && b.finer !== undefined && a.finer !== b.finer) return a.finer > b.finer;
  return a.loss < b.loss;
}

/**
 * Whether `a` is better than `b`: the higher score where both have one and they differ by more
 * than `tolerance`, else as tieBeats.
 */
export function beats(a: HeldOutFigures, b: HeldOutFigures, tolerance = 0): boolean {
  if (a.score !== undefined && b.score !== undefined && Math.abs(a.score - b.score) > tolerance) return a.score > b.score;
  return tieBeats(a, b);
}

/** TrainReport.judged: the judge's figures before training and of the weights kept. */
function judgedFigures(judge: HeldOutJudge, before: HeldOutFigures, after: HeldOutFigures): NonNullable<TrainReport['judged']> {
  const finer =
    judge.finer !== undefined && before.finer !== undefined && after.finer !== undefined
      ? { finer: { name: judge.finer, before: before.finer, after: after.finer } }
      : {};
  return { name: judge.name, before: before.score!, after: after.score!, ...finer };
}

/** A curve point's judge figures. */
const judgedPoint = (h: HeldOutFigures): Pick<CurvePoint, 'score' | 'finer'> => ({
  ...(h.score !== undefined ? { score: h.score } : {}),
  ...(h.finer !== undefined ? { finer: h.finer } : {}),
});

/** A judge's verdict as figures: NaN or infinity the worst. */
function verdict(v: number | JudgeScore): { score: number; finer?: number } {
  const { value, finer } = typeof v === 'number' ? { value: v, finer: undefined } : v;
  const worst = (x: number): number => (Number.isFinite(x) ? x : -Infinity);
  return { score: worst(value), ...(finer !== undefined ? { finer: worst(finer) } : {}) };
}

/** Each row's values of `names` from one run over a stack of `n` rows (copies: the run's buffers go). */
function splitRows(out: ort.InferenceSession.OnnxValueMapType, names: readonly string[], n: number): Record<string, NdArray>[] {
  const rows: Record<string, NdArray>[] = Array.from({ length: n }, () => ({}));
  for (const name of names) {
    const v = out[name]!;
    const data = v.data as Float32Array;
    const per = data.length / n;
    const shape = [1, ...v.dims.slice(1)];
    for (let i = 0; i < n; i++) rows[i]![name] = { dtype: 'float32', shape, data: data.slice(i * per, (i + 1) * per) };
  }
  return rows;
}

async function run(s: ort.InferenceSession, feeds: Feeds, what: string): Promise<ort.InferenceSession.OnnxValueMapType> {
  try {
    return await s.run(feeds);
  } catch (e) {
    throw new EdgefitError('EVAL', `${what} failed: ${firstLine(e)}`, { cause: e });
  }
}

export async function train(spec: TrainSpec): Promise<TrainResult> {
  check(spec);
  const t0 = performance.now();
  const budgetMs = spec.minutes * 60_000;
  const threads = Math.max(1, spec.threads ?? availableParallelism());
  const next = rng(spec.seed ?? 1);
  const student = spec.student;
  const g = student.graph;
  const inputNames = g.runtimeInputs().map((i) => i.name);
  const outputs = g.outputs.map((o) => o.name);
  const trainRows = rowsOf(spec.train);
  const heldRows = rowsOf(spec.heldOut);
  const draw = spec.drawWeights && drawTable(spec.drawWeights, trainRows.length);
  const judge = spec.judge;

  // batch: a fixed batch dim > 1 is the micro-batch; fixed at 1, gradients accumulate over rows
  const dim0 = g.runtimeInputs()[0]?.type?.shape?.[0];
  const batch = Math.min(spec.batch ?? DEFAULT_BATCH, trainRows.length);
  // (both chosen by the RAM plan below, from a measured step)
  let micro = typeof dim0 === 'number' ? dim0 : batch;
  let accumulate = Math.max(1, Math.round(batch / micro));

  // the teacher's targets: a session of the teacher model, or the caller's function
  let teacherRunner: ModelRunner | undefined;
  const teach = async (row: Sample): Promise<Record<string, NdArray>> => {
    if (typeof spec.teacher === 'function') return spec.teacher(row);
    teacherRunner ??= await ModelRunner.create(spec.teacher, { threads, optimization: 'all', spinning: false });
    const out = await teacherRunner.run(row, outputs);
    const r: Record<string, NdArray> = {};
    for (const o of outputs) {
      const v = out.get(o);
      if (!v) throw new EdgefitError('DATA', `the teacher has no float output '${o}' to match the student's`);
      r[o] = { dtype: 'float32', shape: v.shape, data: Float32Array.from(v.data) };
    }
    return r;
  };
  const probe = await Promise.all(trainRows.slice(0, 4).map((r) => teach(r)));
  const losses = new Map<string, ResolvedLoss>();
  const ranks = new Map<string, number>();
  for (const o of outputs) {
    const vals = probe.map((p) => p[o]).filter((v): v is NdArray => !!v);
    if (!vals.length) throw new EdgefitError('DATA', `the teacher gives no target for output '${o}'`);
    losses.set(o, resolveLoss(specFor(spec.loss, o), vals));
    ranks.set(o, vals[0]!.shape.length);
  }
  // targets of rows that are never augmented (held-out; training rows when no augmentation) are computed once
  type Targets = Record<string, { data: Float32Array; dims: number[] }>;
  const cache = new Map<Sample, Targets>();
  const targetsOf = async (row: Sample, keep: boolean): Promise<Targets> => {
    const hit = cache.get(row);
    if (hit) return hit;
    const t = await teach(row);
    const r: Targets = {};
    for (const [o, l] of losses) r[o] = { data: teacherTarget(l, t[o]!), dims: t[o]!.shape };
    if (keep) cache.set(row, r);
    return r;
  };
  const drawRow = (i: number): Sample => (spec.augment ? spec.augment(trainRows[i]!, next) : trainRows[i]!);

  // the training graph at the micro-batch's static shapes (augmentation may crop: its shape rules)
  const shapeRow = drawRow(0);
  // the stem stays frozen when asked (freeze.ts)
  const frz = freezeStem(student, spec.trainable, new Map(inputNames.map((k) => [k, [...shapeRow[k]!.shape]])), spec.freezeStride ?? 0);
  const trainable = frz.trainable;
  const frozen = frz.frozen.length ? { weights: frz.frozen.length, layers: frz.layers, stride: frz.stride } : undefined;
  const lossGraph = appendLoss(student, losses, ranks);
  const shapeTargets = await teach(shapeRow);
  const evalGraph = withWeightInputs(lossGraph.model, trainable, student, judge?.outputs ?? []);
  // the held-out loss runs at least one held-out row at a time, often larger than a training crop
  const bigHeld = heldRows.reduce((a, r) =>
    inputNames.reduce((n, k) => n + (r[k]?.data.length ?? 0) - (a[k]?.data.length ?? 0), 0) > 0 ? r : a,
  );
  const bigTargets = await teach(bigHeld);
  const evalShapes = new Map<string, number[]>();
  for (const k of inputNames) evalShapes.set(k, [1, ...bigHeld[k]!.shape.slice(1)]);
  for (const [o, t] of lossGraph.targets) evalShapes.set(t, [1, ...bigTargets[o]!.shape.slice(1)]);
  type StepAt = ReturnType<typeof buildGradients> & {
    shapes: Map<string, number[]>;
    beside: { model: Model; shapes?: Map<string, number[]> }[];
  };
  const graphAt = (rows: number): StepAt => {
    const shapes = new Map<string, number[]>();
    for (const k of inputNames) shapes.set(k, [rows, ...shapeRow[k]!.shape.slice(1)]);
    for (const [o, t] of lossGraph.targets) shapes.set(t, [rows, ...shapeTargets[o]!.shape.slice(1)]);
    const rules = { ...LOSS_GRADS, ...spec.rules, ...GRAD_RULES };
    // the held-out loss and the student's inference run beside the step all along: measured with it
    return {
      ...buildGradients(lossGraph.model, { loss: lossGraph.loss, wrt: trainable, shapes, rules }),
      shapes,
      beside: [{ model: evalGraph, shapes: evalShapes }, { model: student }],
    };
  };
  const ram = await planRam({
    budgetMb: spec.ramMb ?? defaultTrainRamMb(),
    batch,
    fixedBatch: typeof dim0 === 'number' ? dim0 : undefined,
    threads,
    graphAt,
  });
  micro = ram.micro;
  accumulate = ram.accumulate;
  // the step's convs on onnxruntime's NCHWc kernels when that measures faster here (nchwc.ts)
  const plain = graphAt(micro);
  const chosen = await chooseStepKernels(plain, threads, async (alt) => fitsPlan(ram, await measureStepMb(alt, threads, ram.baseMb)));
  const built = { ...plain, model: chosen.step.model };
  // no memory pattern: from its second run onnxruntime allocates the planned block beside the
  // arena's chunks of the first, and a det step's peak RSS nearly doubled (545 -> 927 MB at 4x320x320), no faster.
  // No spinning: the teacher's, the step's and the timed inference's sessions take turns, and on
  // a 2-core box the idle pools spinning after their run starved the next one (a det step with its
  // teacher run took 2.4-3.3x as long)
  const quiet = { threads, level: 'all' as const, spinning: false };
  const inGraph =
    spec.optimizer === 'graph' && accumulate === 1 ? appendAdam(built.model, built.grads, { weightDecay: spec.weightDecay }) : undefined;
  const trainSession = await openSession(inGraph?.model ?? built.model, { ...quiet, memPattern: false });
  const evalSession = await openSession(evalGraph, { ...quiet, memPattern: false });
  const forwardSession = await openSession(student, quiet);
  try {
    return await loop();
  } finally {
    await Promise.all([trainSession.release(), evalSession.release(), forwardSession.release(), teacherRunner?.release()]);
  }

  // the run proper (a function, so the sessions above are released however it ends)
  async function loop(): Promise<TrainResult> {
    const params = new Map<string, Float32Array>();
    for (const w of trainable) params.set(w, Float32Array.from(g.initializer(w)!.toFloat32()));
    const dimsOf = new Map(trainable.map((w) => [w, [...g.initializer(w)!.dims]]));
    const weightFeeds = (f: Feeds, from: ReadonlyMap<string, Float32Array> = params): Feeds => {
      for (const [w, p] of from) f[w] = floatTensor(p, dimsOf.get(w)!);
      return f;
    };
    let peakRss = rssMb();

    const shapeKey = (r: Sample): string => inputNames.map((k) => r[k]?.shape.join('x')).join(';');
    // as many held-out rows per run as hold the elements of one training micro-batch: full-size
    // images held out while training runs on crops go one by one (peak memory stays the training's)
    const rowElems = (r: Sample): number => inputNames.reduce((a, k) => a + (r[k]?.data.length ?? 0), 0);
    const trainElems = micro * rowElems(shapeRow);
    const heldStack = (r: Sample): number => Math.max(1, Math.min(micro, Math.floor(trainElems / rowElems(r))));
    const heldChunks: Sample[][] = [];
    for (const r of heldRows) {
      const last = heldChunks[heldChunks.length - 1];
      if (last && last.length < heldStack(r) && shapeKey(last[0]!) === shapeKey(r)) last.push(r);
      else heldChunks.push([r]);
    }
    // the moving average of the weights (spec.ema): what evaluations judge and what is kept
    const decay = spec.ema ?? 0;
    const ema = decay > 0 ? copyWeights(params) : undefined;
    const judged = ema ?? params;
    // held-out rows in stacks of the micro-batch (rows of one shape; the loss is a mean per stack,
    // weighted by its rows), and the judge's score of the student's outputs on all of them
    const heldOut = async (): Promise<HeldOutFigures> => {
      let sum = 0;
      const got: Record<string, NdArray>[] = [];
      for (const rows of heldChunks) {
        const f = await feedsOf(rows, true);
        const out = await run(evalSession, weightFeeds(f, judged), 'the held-out loss');
        sum += rows.length * Number(out[lossGraph.heldOut]!.data[0]);
        if (judge) got.push(...splitRows(out, judge.outputs, rows.length));
      }
      peakRss = Math.max(peakRss, rssMb());
      const loss = sum / heldRows.length;
      if (!judge) return { loss };
      return { loss, ...verdict(judge.score(got)) };
    };
    // TrainSpec.onEvaluation: the figures of an evaluation and the weights it judged
    const handOver = (h: HeldOutFigures, at: number): void =>
      spec.onEvaluation?.({
        step: at,
        heldOut: h.loss,
        ...(h.score !== undefined ? { score: h.score } : {}),
        ...(h.finer !== undefined ? { finer: h.finer } : {}),
        weights: judged,
      });
    const keep = (h: HeldOutFigures, at: number) => ({
      ...h,
      step: at,
      params: copyWeights(judged),
    });

    // one micro-batch of training rows: stacked inputs and targets
    let order: number[] = [];
    const nextRows = (): Sample[] => {
      const rows: Sample[] = [];
      while (rows.length < micro) {
        if (draw) {
          rows.push(drawRow(draw(next())));
          continue;
        }
        if (!order.length) {
          order = trainRows.map((_, i) => i);
          for (let i = order.length - 1; i > 0; i--) {
            const j = Math.floor(next() * (i + 1));
            [order[i], order[j]] = [order[j]!, order[i]!];
          }
        }
        rows.push(drawRow(order.pop()!));
      }
      return rows;
    };
    const feedsOf = async (rows: readonly Sample[], keep = !spec.augment): Promise<Feeds> => {
      const x = stack(rows, inputNames);
      const f: Feeds = {};
      for (const k of inputNames) f[k] = toTensor(x[k]!);
      const tgs = await Promise.all(rows.map((r) => targetsOf(r, keep)));
      for (const [o, t] of lossGraph.targets) {
        const d = tgs[0]![o]!.dims;
        f[t] = floatTensor(concatF32(tgs.map((tg) => tg[o]!.data)), [rows.length, ...d.slice(1)]);
      }
      return f;
    };

    // the student's own inference of the same micro-batch, for the step/forward ratio: timed beside
    // the training runs through the run (every FORWARD_EVERY-th step), so both see the same load
    const forwardMsList: number[] = [];
    {
      const f = await feedsOf(nextRows());
      const xf: Feeds = {};
      for (const k of inputNames) xf[k] = f[k]!;
      for (let i = 0; i < 3; i++) await run(forwardSession, xf, 'the student');
      order = [];
    }

    const heldStart = performance.now();
    const before = await heldOut();
    handOver(before, 0);
    const curve: CurvePoint[] = [{ step: 0, loss: NaN, heldOut: before.loss, ...judgedPoint(before) }];
    let best = keep(before, 0);
    const tolerance = judge?.tolerance ?? 0;
    let top = before.score ?? -Infinity;
    const adam = new Adam(params, { weightDecay: spec.weightDecay, lrFactors: spec.lrFactors });
    const graphAdam = inGraph && new GraphAdamState(inGraph, params, { weightDecay: spec.weightDecay });
    const peak = spec.lr ?? DEFAULT_LR;
    const schedule = spec.schedule ?? 'cosine';
    const evaluations = Math.max(1, spec.evaluations ?? 8);
    const stepMs: number[] = [];
    const graphMs: number[] = [];
    // what a held-out evaluation costs (the setup before it, RAM probes included, is not one)
    let evalMs = performance.now() - heldStart;
    let lastEval = 0;
    let lastSlot = 0;
    let step = 0;
    let stopped: TrainReport['stopped'] = 'time';
    let heldMs = 0;
    const elapsed = (): number => performance.now() - t0 - heldMs;
    const progress = (): number => Math.max(spec.maxSteps ? step / spec.maxSteps : 0, elapsed() / budgetMs);

    const evaluate = async (): Promise<HeldOutFigures> => {
      const s = performance.now();
      const h = await heldOut();
      evalMs = performance.now() - s;
      // with a judge, the weights kept are the best by tieBeats (finer figure, else loss) among
      // evaluations scored within its tolerance of the best score seen (so a chain of small drops
      // cannot slide down), else the best score
      if (judge) top = Math.max(top, h.score!);
      const ok = (x: HeldOutFigures): boolean => !judge || x.score! >= top - tolerance;
      if (ok(h) ? !ok(best) || tieBeats(h, best) : !ok(best) && h.score! > best.score!) best = keep(h, step);
      lastEval = step;
      handOver(h, step);
      return h;
    };

    for (;;) {
      if (spec.maxSteps !== undefined && step >= spec.maxSteps) {
        stopped = 'steps';
        break;
      }
      if (spec.gate) {
        const h0 = performance.now();
        await spec.gate();
        heldMs += performance.now() - h0;
      }
      // the last held-out evaluation must fit in the budget too
      if (elapsed() + median(stepMs) + evalMs > budgetMs) break;
      let stepStart = performance.now();
      const sums = new Map<string, Float32Array>();
      let lossSum = 0;
      for (let a = 0; a < accumulate; a++) {
        // in-graph Adam: the weights and moments its last run gave, and this step's learning rate
        const feeds = graphAdam
          ? { ...(await feedsOf(nextRows())), ...graphAdam.feeds(learningRate(peak, progress(), schedule)) }
          : weightFeeds(await feedsOf(nextRows()));
        const r0 = performance.now();
        const out = await run(trainSession, feeds, 'a training step');
        graphMs.push(performance.now() - r0);
        if (a === 0 && step % FORWARD_EVERY === 0) {
          const xf: Feeds = {};
          for (const k of inputNames) xf[k] = feeds[k]!;
          const f0 = performance.now();
          await run(forwardSession, xf, 'the student');
          forwardMsList.push(performance.now() - f0);
        }
        lossSum += Number(out[built.model.graph.outputs[0]!.name]!.data[0]);
        if (graphAdam) {
          graphAdam.take(out);
          continue;
        }
        for (const [w, gname] of built.grads) {
          const gd = out[gname]!.data as Float32Array;
          const acc = sums.get(w);
          if (!acc) sums.set(w, accumulate === 1 ? gd : Float32Array.from(gd));
          else for (let i = 0; i < acc.length; i++) acc[i]! += gd[i]!;
        }
      }
      if (accumulate > 1) for (const acc of sums.values()) for (let i = 0; i < acc.length; i++) acc[i]! /= accumulate;
      // the forward timing is not part of the step
      if (step % FORWARD_EVERY === 0) stepStart += forwardMsList[forwardMsList.length - 1] ?? 0;
      const lr = learningRate(peak, progress(), schedule);
      if (graphAdam) graphAdam.copyInto(params);
      else adam.step(sums, lr);
      if (ema) {
        const d = Math.min(decay, (1 + step) / (10 + step));
        for (const [w, e] of ema) {
          const p = params.get(w)!;
          for (let i = 0; i < e.length; i++) e[i] = d * e[i]! + (1 - d) * p[i]!;
        }
      }
      step++;
      stepMs.push(performance.now() - stepStart);
      peakRss = Math.max(peakRss, rssMb());
      const loss = lossSum / accumulate;
      const point: CurvePoint = { step, loss };
      // evenly over the run: by steps when capped, else by the time slot (of `evaluations`) this step reached
      const slot = Math.floor(progress() * evaluations);
      const due = spec.maxSteps ? step - lastEval >= Math.max(1, Math.floor(spec.maxSteps / evaluations)) : slot > lastSlot;
      if (due) lastSlot = slot;
      if (due) {
        const h = await evaluate();
        Object.assign(point, { heldOut: h.loss, ...judgedPoint(h) });
      }
      curve.push(point);
      spec.onProgress?.({
        step,
        maxSteps: spec.maxSteps,
        seconds: elapsed() / 1000,
        budgetSeconds: budgetMs / 1000,
        loss,
        heldOut: point.heldOut,
        ...(point.score !== undefined ? { score: point.score } : {}),
        ...(point.finer !== undefined ? { finer: point.finer } : {}),
        lr,
      });
    }
    if (lastEval !== step) {
      const h = await evaluate();
      const last = curve[curve.length - 1]!;
      if (last.step === step) Object.assign(last, { heldOut: h.loss, ...judgedPoint(h) });
    }
    const improved = best.step > 0;
    const model = cloneModel(student);
    if (improved) {
      for (const [w, p] of best.params) model.graph.setInitializer(Tensor.fromFloat32(w, dimsOf.get(w)!, p));
      model.graph.touch();
    }
    const report: TrainReport = {
      steps: step,
      seconds: +(elapsed() / 1000).toFixed(2),
      stepMs: +median(stepMs).toFixed(2),
      graphMs: +(median(graphMs) * accumulate).toFixed(2),
      forwardMs: +(median(forwardMsList) * accumulate).toFixed(2),
      batch: micro * accumulate,
      microBatch: micro,
      curve,
      ...(heldMs > 0 ? { heldS: +(heldMs / 1000).toFixed(2) } : {}),
      heldOutBefore: before.loss,
      heldOutAfter: improved ? best.loss : before.loss,
      bestStep: improved ? best.step : 0,
      improved,
      ...(judge ? { judged: judgedFigures(judge, before, improved ? best : before) } : {}),
      peakRssMb: Math.round(peakRss),
      ram: { budgetMb: Math.round(ram.budgetMb), fixedMb: ram.fixedMb, perRowMb: ram.perRowMb, predictedPeakMb: ram.predictedPeakMb },
      kernels: chosen.choice,
      ...(frozen ? { frozen } : {}),
      trainedParams: [...params.values()].reduce((a, p) => a + p.length, 0),
      losses: Object.fromEntries(losses),
      lr: peak,
      threads,
      stopped,
    };
    return { model, report };
  }
}
