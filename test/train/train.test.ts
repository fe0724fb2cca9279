// train() on a small model: a student that differs from its teacher (the unpruned fixture) learns
// to match it on held-out rows, the report is coherent, and a run that cannot help returns the input.
import t from 'tap';
import { FIXTURES, randn, rng } from '../../devkit/builder.js';
import type { Sample } from '../../src/data/inputs.js';
import type { NdArray } from '../../src/data/ndarray.js';
import { cloneModel, type Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { ModelRunner } from '../../src/runtime/runner.js';
import { train } from '../../src/passes/train/train.js';
import type { HeldOutJudge } from '../../src/passes/train/types.js';
import { TrainGate } from '../../src/agent/train-hold.js';

const rows = (n: number, seed: number): Sample[] => {
  const next = rng(seed);
  return Array.from({ length: n }, () => ({
    x: { dtype: 'float32' as const, shape: [1, 1, 8, 8], data: randn(next, 64) as Float32Array<ArrayBuffer> },
  }));
};

/** The fixture with every weight perturbed by relative noise: a student that is close to, not equal to, its teacher. */
function perturbed(m: Model, scale: number, seed: number): Model {
  const c = cloneModel(m);
  const next = rng(seed);
  for (const w of [...c.graph.initializers()]) {
    if (w.dtype !== 'float32') continue;
    const v = w.toFloat32();
    const noise = randn(next, v.length);
    c.graph.setInitializer(
      Tensor.fromFloat32(
        w.name,
        w.dims,
        v.map((x, i) => x * (1 + scale * noise[i]!)),
      ),
    );
  }
  return c;
}

const weights = (m: Model): string[] => [...m.graph.initializers()].filter((w) => w.dtype === 'float32').map((w) => w.name);

async function mse(a: Model, b: Model, samples: Sample[]): Promise<number> {
  const ra = await ModelRunner.create(a);
  const rb = await ModelRunner.create(b);
  let s = 0,
    n = 0;
  for (const x of samples) {
    const ya = [...(await ra.run(x)).values()][0]!.data;
    const yb = [...(await rb.run(x)).values()][0]!.data;
    for (let i = 0; i < ya.length; i++) s += (ya[i]! - yb[i]!) ** 2;
    n += ya.length;
  }
  await ra.release();
  await rb.release();
  return s / n;
}

t.test('a perturbed MLP distilled from the unperturbed one gets closer on held-out rows', async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.3, 5);
  const trainSet = rows(48, 1);
  const heldOut = rows(16, 2);
  const progress: number[] = [];
  const { model, report } = await train({
    student,
    trainable: weights(student),
    teacher,
    loss: 'mse',
    train: trainSet,
    heldOut,
    minutes: 1,
    maxSteps: 60,
    batch: 8,
    lr: 3e-3,
    threads: 1,
    evaluations: 4,
    onProgress: (p) => progress.push(p.step),
  });
  t.equal(report.steps, 60, 'stopped at the step cap');
  t.equal(report.stopped, 'steps');
  t.equal(report.microBatch, 1, 'the fixture has batch fixed at 1: gradients accumulate');
  t.equal(report.batch, 8);
  t.ok(report.improved, 'training helped');
  t.ok(
    report.heldOutAfter < report.heldOutBefore * 0.5,
    `held-out loss ${report.heldOutBefore.toExponential(2)} -> ${report.heldOutAfter.toExponential(2)}`,
  );
  t.equal(report.losses.y?.kind ?? Object.values(report.losses)[0]!.kind, 'mse');
  t.equal(progress.length, 60, 'one progress call per step');
  t.ok(report.curve.filter((c) => c.heldOut !== undefined).length >= 4, 'held-out loss measured during the run');
  t.ok(report.stepMs > 0 && report.forwardMs > 0 && report.peakRssMb > 0);
  t.equal(
    report.trainedParams,
    weights(student).reduce((a, w) => a + student.graph.initializer(w)!.size, 0),
  );
  // the returned model's held-out error against the teacher is the report's figure (MSE over every element)
  const after = await mse(model, teacher, heldOut);
  const before = await mse(student, teacher, heldOut);
  t.ok(Math.abs(after - report.heldOutAfter) < 1e-4 * Math.max(1, after), `returned model's MSE ${after} matches the report`);
  t.ok(after < before, 'and is below the input student');
});

t.test('a run that cannot help returns the input unchanged', async (t) => {
  const teacher = FIXTURES.mlp();
  // the student IS the teacher: any step can only move away from zero loss
  const { model, report } = await train({
    student: cloneModel(teacher),
    trainable: weights(teacher),
    teacher,
    train: rows(8, 3),
    heldOut: rows(4, 4),
    minutes: 1,
    maxSteps: 5,
    batch: 4,
    lr: 1e-2,
    threads: 1,
  });
  t.notOk(report.improved, 'not improved');
  t.equal(report.bestStep, 0);
  t.equal(report.heldOutAfter, report.heldOutBefore);
  for (const w of weights(teacher))
    t.same(model.graph.initializer(w)!.toFloat32(), teacher.graph.initializer(w)!.toFloat32(), `${w} unchanged`);
});

/** The judge tests' run: 40 steps of the perturbed MLP, held-out evaluated 4 times besides before and after. */
const judgedSpec = (student: Model, teacher: Model, heldOut: Sample[]) => ({
  student,
  trainable: weights(student),
  teacher,
  loss: 'mse' as const,
  train: rows(48, 1),
  heldOut,
  minutes: 1,
  maxSteps: 40,
  batch: 8,
  lr: 3e-3,
  threads: 1,
  evaluations: 4,
});

t.test('a judge picks the weights kept by its score, the loss only breaking ties', async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.3, 5);
  const out = student.graph.outputs[0]!.name;
  const heldOut = rows(12, 2);
  // the student's own held-out outputs before training: a judge that wants them kept as they are
  const runner = await ModelRunner.create(student);
  const start = await Promise.all(heldOut.map(async (r) => [...(await runner.run(r)).values()][0]!.data.slice()));
  await runner.release();
  const seen: number[] = [];
  const stay: HeldOutJudge = {
    name: 'stay',
    outputs: [out],
    score: (got) => {
      seen.push(got.length);
      let d = 0;
      got.forEach((g, i) => {
        t.same(g[out]!.shape.slice(0, 1), [1], 'rows of batch 1');
        const v = g[out]!.data as Float32Array;
        for (let k = 0; k < start[i]!.length; k++) d += (v[k]! - start[i]![k]!) ** 2;
      });
      return -d;
    },
  };
  const common = judgedSpec(student, teacher, heldOut);
  const kept = await train({ ...common, judge: stay });
  t.ok(seen.length >= 5 && seen.every((n) => n === heldOut.length), `scored at every evaluation, all ${heldOut.length} rows each time`);
  const lossAt = kept.report.curve.filter((c) => c.step > 0 && c.heldOut !== undefined).map((c) => c.heldOut!);
  t.ok(Math.min(...lossAt) < kept.report.heldOutBefore, 'the held-out loss fell (the loss alone would have kept a later step)');
  t.notOk(kept.report.improved, 'but the judge scored the input best: not improved');
  t.equal(kept.report.bestStep, 0);
  t.equal(kept.report.judged?.name, 'stay');
  t.equal(kept.report.judged?.after, kept.report.judged?.before, "the input's score");
  t.ok(kept.report.judged!.before > -1e-6, 'the input scored as itself (the training graph computes its outputs as the runner does)');
  for (const w of weights(student))
    t.same(kept.model.graph.initializer(w)!.toFloat32(), student.graph.initializer(w)!.toFloat32(), `${w} unchanged`);
  t.ok(kept.report.curve.filter((c) => c.score !== undefined).length >= 5, 'the curve carries the scores');

  // a judge that agrees with the loss: trained weights kept, its score higher
  const runT = await ModelRunner.create(teacher);
  const ref = await Promise.all(heldOut.map(async (r) => [...(await runT.run(r)).values()][0]!.data.slice()));
  await runT.release();
  const close: HeldOutJudge = {
    name: 'close',
    outputs: [out],
    score: (got) => -got.reduce((a, g, i) => a + ref[i]!.reduce((b, v, k) => b + ((g[out]!.data as Float32Array)[k]! - v) ** 2, 0), 0),
  };
  const better = await train({ ...common, judge: close });
  t.ok(better.report.improved, 'improved');
  t.ok(
    better.report.judged!.after > better.report.judged!.before,
    `score ${better.report.judged!.before} -> ${better.report.judged!.after}`,
  );

  await t.rejects(train({ ...common, judge: { ...stay, outputs: ['nope'] } }), /the judge reads 'nope', which is no output/);
});

t.test("a judge's tolerance: small score drops are ties the loss decides, and a chain of them cannot slide down", async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.3, 5);
  const out = student.graph.outputs[0]!.name;
  const common = judgedSpec(student, teacher, rows(12, 2));
  // every trained evaluation one "box" short of the input's perfect score (what det's held-out F1 did)
  let calls = 0;
  const oneShort = (tolerance: number): HeldOutJudge => ({
    name: 'f1',
    outputs: [out],
    tolerance,
    score: () => (calls++ === 0 ? 1 : 0.997),
  });
  const strict = await train({ ...common, judge: oneShort(0) });
  t.notOk(strict.report.improved, 'judged to the last box: the input is kept');
  calls = 0;
  const tolerant = await train({ ...common, judge: oneShort(0.005) });
  t.ok(tolerant.report.improved, 'within the tolerance: the lower loss wins');
  t.ok(tolerant.report.heldOutAfter < tolerant.report.heldOutBefore);
  t.equal(tolerant.report.judged?.after, 0.997);
  // each evaluation 0.003 below the last: within the tolerance of its neighbour, not of the best
  calls = 0;
  const sliding: HeldOutJudge = { name: 'f1', outputs: [out], tolerance: 0.005, score: () => 1 - 0.003 * calls++ };
  const slid = await train({ ...common, judge: sliding });
  t.ok(calls >= 5, `${calls} evaluations`);
  t.ok(slid.report.judged!.after >= 1 - 0.005, `kept a score within the tolerance of the best: ${slid.report.judged!.after}`);
  t.ok(slid.report.bestStep > 0 && slid.report.bestStep < common.maxSteps, `not the last, lowest-loss step (${slid.report.bestStep})`);
});

t.test("a judge's finer figure decides among tied scores before the loss, and never over a score beyond the tolerance", async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.3, 5);
  const out = student.graph.outputs[0]!.name;
  const heldOut = rows(12, 2);
  const outputsOf = async (m: Model) => {
    const r = await ModelRunner.create(m);
    const o = await Promise.all(heldOut.map(async (x) => Float32Array.from([...(await r.run(x)).values()][0]!.data as Float32Array)));
    await r.release();
    return o;
  };
  const [start, ref] = [await outputsOf(student), await outputsOf(teacher)];
  const dist = (got: readonly Record<string, NdArray>[], to: Float32Array[]): number =>
    got.reduce((a, g, i) => a + to[i]!.reduce((b, v, k) => b + ((g[out]!.data as Float32Array)[k]! - v) ** 2, 0), 0);
  const common = judgedSpec(student, teacher, heldOut);
  // every score tied at 1 (what det's held-out box F1 did), the finer figure wanting the start's outputs
  const stay: HeldOutJudge = {
    name: 'f1',
    finer: 'stay',
    outputs: [out],
    tolerance: 0.005,
    score: (got) => ({ value: 1, finer: -dist(got, start) }),
  };
  const kept = await train({ ...common, judge: stay });
  const lossAt = kept.report.curve.filter((c) => c.step > 0 && c.heldOut !== undefined).map((c) => c.heldOut!);
  t.ok(Math.min(...lossAt) < kept.report.heldOutBefore, 'the held-out loss fell (the loss would have kept a trained step)');
  t.notOk(kept.report.improved, 'but the finer figure was best at the input: not improved');
  t.equal(kept.report.bestStep, 0);
  t.equal(kept.report.judged?.finer?.name, 'stay');
  t.ok(
    kept.report.judged!.finer!.before > -1e-6 && kept.report.judged!.finer!.after === kept.report.judged!.finer!.before,
    "the input's finer figure",
  );
  // the finer figure wanting the teacher's outputs: the evaluation where it is highest is kept
  const close: HeldOutJudge = { ...stay, finer: 'close', score: (got) => ({ value: 1, finer: -dist(got, ref) }) };
  const r = await train({ ...common, judge: close });
  const judged = r.report.curve.filter((c) => c.finer !== undefined);
  t.ok(judged.length >= 5, `the curve carries the finer figure (${judged.length} evaluations)`);
  const top = judged.reduce((b, c) => (c.finer! > b.finer! ? c : b));
  t.ok(r.report.improved);
  t.equal(r.report.bestStep, top.step, `kept step ${r.report.bestStep}: the highest finer figure`);
  t.equal(r.report.judged?.finer?.after, top.finer);
  // a score beyond the tolerance wins whatever the finer figure says
  let calls = 0;
  const worse: HeldOutJudge = { ...close, score: (got) => ({ value: calls++ === 0 ? 1 : 0.99, finer: -dist(got, ref) }) };
  const w = await train({ ...common, judge: worse });
  t.notOk(w.report.improved, 'every trained evaluation scored 0.01 lower: the input is kept');
});

t.test('onEvaluation hands over each evaluated weight set: the start at step 0, the kept one at bestStep', async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.3, 5);
  const seen: { step: number; heldOut: number; weights: Map<string, Float32Array> }[] = [];
  const r = await train({
    ...judgedSpec(student, teacher, rows(12, 2)),
    onEvaluation: (e) => seen.push({ ...e, weights: new Map([...e.weights].map(([k, v]) => [k, Float32Array.from(v)])) }),
  });
  const evaluated = r.report.curve.filter((c) => c.heldOut !== undefined);
  t.same(
    seen.map((s) => [s.step, s.heldOut]),
    evaluated.map((c) => [c.step, c.heldOut]),
    'one call per held-out evaluation, with its step and loss',
  );
  t.equal(seen[0]!.step, 0);
  for (const w of weights(student)) t.same(seen[0]!.weights.get(w), student.graph.initializer(w)!.toFloat32(), `${w}: the start at step 0`);
  t.ok(r.report.improved && r.report.bestStep > 0, `training helped (kept step ${r.report.bestStep})`);
  const kept = seen.find((s) => s.step === r.report.bestStep)!;
  for (const w of weights(student))
    t.same(kept.weights.get(w), r.model.graph.initializer(w)!.toFloat32(), `${w}: the kept weights are the ones evaluated at that step`);
  t.notSame(seen[1]!.weights.get(weights(student)[0]!), seen[0]!.weights.get(weights(student)[0]!), 'later calls carry trained weights');
});

t.test("with ema, evaluations judge the weights' moving average and the result keeps it", async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.3, 8);
  const spec = {
    student,
    trainable: weights(student),
    teacher,
    loss: 'mse' as const,
    train: rows(8, 11),
    heldOut: rows(8, 12),
    minutes: 1,
    maxSteps: 1,
    batch: 4,
    lr: 1e-3,
    threads: 1,
    seed: 3,
  };
  // the warm-up rate depends on the time spent, so each run's one step is scaled by its own rate
  let lrPlain = 0;
  let lrAvg = 0;
  const plain = await train({ ...spec, onProgress: (p) => (lrPlain = p.lr) });
  const avg = await train({ ...spec, ema: 0.9, onProgress: (p) => (lrAvg = p.lr) });
  t.ok(plain.report.improved && avg.report.improved, 'both runs lowered the held-out loss');
  // one Adam step from the same weights on the same rows moves every weight by its rate times the
  // same factor; the average after one step is min(0.9, 1/10) x start + 0.9 x step (the step
  // itself would be off by a ninth of it, the 1 % bound below cannot pass it)
  const k = (0.9 * lrAvg) / lrPlain;
  let worst = 0;
  for (const w of spec.trainable) {
    const w0 = student.graph.initializer(w)!.toFloat32();
    const w1 = plain.model.graph.initializer(w)!.toFloat32();
    const wa = avg.model.graph.initializer(w)!.toFloat32();
    for (let i = 0; i < w0.length; i++) {
      const want = w0[i]! + k * (w1[i]! - w0[i]!);
      worst = Math.max(worst, Math.abs(wa[i]! - want) / Math.max(Math.abs(w1[i]! - w0[i]!), 1e-9));
    }
  }
  t.ok(worst < 1e-2, `the weights kept are 0.1 x start + 0.9 x the step (largest error ${(worst * 100).toFixed(3)} % of the step)`);
});

t.test('the time budget is kept', async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.3, 6);
  const s = performance.now();
  const { report } = await train({
    student,
    trainable: weights(student),
    teacher,
    train: rows(32, 5),
    heldOut: rows(8, 6),
    minutes: 0.05,
    threads: 1,
  });
  const wall = (performance.now() - s) / 1000;
  t.equal(report.stopped, 'time');
  t.ok(report.steps > 0, `${report.steps} steps`);
  t.ok(report.seconds <= 3 + 0.5, `reported ${report.seconds} s for a 3 s budget`);
  t.ok(wall < 3 + 2, `wall ${wall.toFixed(2)} s (session set-up included)`);
});

t.test('a held gate pauses training between steps, and the held time is not spent from the budget', async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.3, 7);
  const gate = new TrainGate();
  let calls = 0;
  let stepsWhenHeld = -1;
  let stepsAtRelease = -1;
  const progress: number[] = [];
  const run = train({
    student,
    trainable: weights(student),
    teacher,
    train: rows(16, 8),
    heldOut: rows(4, 9),
    minutes: 1,
    maxSteps: 8,
    batch: 4,
    threads: 1,
    gate: () => {
      calls++;
      // hold before the fourth step for 1.5 s
      if (calls === 4) {
        gate.set(true);
        stepsWhenHeld = progress.length;
        setTimeout(() => {
          stepsAtRelease = progress.length;
          gate.set(false);
        }, 1500);
      }
      return gate.wait();
    },
    onProgress: (p) => progress.push(p.step),
  });
  const s0 = performance.now();
  const { report } = await run;
  const wall = (performance.now() - s0) / 1000;
  t.equal(report.steps, 8, 'every step ran once released');
  t.equal(stepsWhenHeld, 3, 'held after three steps');
  t.equal(stepsAtRelease, 3, 'no step ran while held');
  t.ok((report.heldS ?? 0) >= 1.4, `held ${report.heldS} s reported`);
  t.ok(report.seconds <= wall - report.heldS! + 0.05, `training time ${report.seconds} s excludes the hold (wall ${wall.toFixed(2)} s)`);
});

t.test('bad input is refused with one clear line', async (t) => {
  const m = FIXTURES.mlp();
  const base = { student: m, trainable: weights(m), teacher: m, train: rows(4, 1), heldOut: rows(2, 2), minutes: 1 };
  await t.rejects(train({ ...base, minutes: -1 }), /training minutes must be a positive number/);
  await t.rejects(train({ ...base, heldOut: [] }), /training needs training and held-out samples/);
  await t.rejects(train({ ...base, trainable: ['nope'] }), /cannot train 'nope'/);
  await t.rejects(train({ ...base, trainable: [] }), /nothing to train/);
  await t.rejects(train({ ...base, ema: 1 }), /ema must be a decay in \[0, 1\), got 1/);
  await t.rejects(train({ ...base, lrFactors: new Map([['nope', 0.1]]) }), /a learning-rate factor names 'nope', which is not trained/);
  await t.rejects(train({ ...base, lrFactors: new Map([[weights(m)[0]!, 0]]) }), /a learning-rate factor must be a positive number, got 0/);
  await t.rejects(
    train({ ...base, lrFactors: new Map([[weights(m)[0]!, 0.1]]), optimizer: 'graph' }),
    /per-parameter learning-rate factors need the TypeScript optimizer/,
  );
});

t.test('augmentation is applied to training rows only', async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.2, 7);
  const trainSet = rows(8, 7);
  const heldOut = rows(4, 8);
  const seen = new Set<unknown>();
  await train({
    student,
    trainable: weights(student),
    teacher,
    train: trainSet,
    heldOut,
    minutes: 1,
    maxSteps: 4,
    batch: 4,
    threads: 1,
    augment: (s) => {
      seen.add(s.x!.data);
      return { x: { ...s.x!, data: (s.x!.data as Float32Array).map((v) => -v) } };
    },
  });
  t.ok(seen.size > 0, 'augment was called');
  t.ok(
    heldOut.every((h) => !seen.has(h.x!.data)),
    'never on a held-out row',
  );
  t.ok(
    [...seen].every((d) => trainSet.some((r) => r.x!.data === d)),
    'only on training rows',
  );
});

t.test('drawWeights: rows drawn in proportion to their weight, a zero weight never', async (t) => {
  const teacher = FIXTURES.mlp();
  const student = perturbed(teacher, 0.2, 7);
  const trainSet = rows(8, 7);
  const counts = new Map<unknown, number>();
  const base = {
    student,
    trainable: weights(student),
    teacher,
    train: trainSet,
    heldOut: rows(4, 8),
    minutes: 1,
    maxSteps: 60,
    batch: 4,
    threads: 1,
    lr: 1e-4,
    evaluations: 1,
  };
  // row 0 nine times as often as each of rows 1-3, rows 4-7 never (augment also sees row 0 once
  // as the trainer's shape probe)
  const drawWeights = [9, 1, 1, 1, 0, 0, 0, 0];
  await train({
    ...base,
    drawWeights,
    augment: (s) => {
      counts.set(s.x!.data, (counts.get(s.x!.data) ?? 0) + 1);
      return s;
    },
  });
  const n = trainSet.map((r) => counts.get(r.x!.data) ?? 0);
  const total = n.reduce((a, b) => a + b, 0);
  t.ok(total >= 240, `${total} rows drawn`);
  t.same(n.slice(4), [0, 0, 0, 0], 'no zero-weight row drawn');
  // row 0's share is 0.75 of the draws; binomial sd over 240+ draws is under 0.03
  t.ok(Math.abs(n[0]! / total - 0.75) < 0.1, `row 0 took ${((100 * n[0]!) / total).toFixed(1)} % of the draws (weight 9 of 12)`);
  t.ok(
    n.slice(1, 4).every((c) => c > 0),
    'every positive-weight row drawn',
  );
  await t.rejects(train({ ...base, drawWeights: [1, 1] }), /draw weights are given for 2 rows, but the training set has 8/);
  await t.rejects(train({ ...base, drawWeights: [1, 1, 1, 1, 1, 1, 1, -1] }), /none negative/);
  await t.rejects(train({ ...base, drawWeights: Array<number>(8).fill(0) }), /one at least positive/);
});
