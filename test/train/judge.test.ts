// The held-out judge's tolerance (issue 18): scores within TASK_TOLERANCE, or TIE_ITEMS counted
// items (boxes, rows, characters) when that is more, of the best seen are ties its finer figure (text-det: mask IoU) or the loss decides.
// A small held-out set cannot tell two weights apart by a couple of items.
import t from 'tap';
import { FIXTURES, ModelBuilder, randn, rng } from '../../devkit/builder.js';
import type { Sample } from '../../src/data/inputs.js';
import { cloneModel } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { ModelRunner, runFirstOutput } from '../../src/runtime/runner.js';
import { hardestSamples, TASK_TOLERANCE, TIE_ITEMS, taskJudge } from '../../src/passes/train/judge.js';

const rows = (n: number, seed: number): Sample[] => {
  const next = rng(seed);
  return Array.from({ length: n }, () => ({
    x: { dtype: 'float32' as const, shape: [1, 1, 8, 8], data: randn(next, 64) as Float32Array<ArrayBuffer> },
  }));
};

t.test("a judge's tolerance is TIE_ITEMS of its metric's items on the held-out set, at least TASK_TOLERANCE", async (t) => {
  const teacher = FIXTURES.mlp();
  t.equal(TIE_ITEMS, 3);
  const few = await taskJudge(teacher, rows(8, 1), 'classify', 1);
  t.equal(few.name, 'top1');
  t.equal(few.tolerance, TIE_ITEMS / 8, 'eight held-out rows: three rows are a tie');
  const many = await taskJudge(teacher, rows(1000, 2), 'classify', 1);
  t.equal(many.tolerance, TASK_TOLERANCE, 'a thousand rows: three rows (0.003) are less than the floor');
  t.ok(TASK_TOLERANCE > TIE_ITEMS / 1000);
  // it scores the student's copy of the teacher's output
  const out = teacher.graph.outputs[0]!.name;
  t.same(few.outputs, [out]);
});

t.test('hardestSamples: the rows a student disagrees on by the task, at most k, none for an exact copy', async (t) => {
  const teacher = FIXTURES.mlp();
  const set = rows(40, 3);
  t.same(await hardestSamples(teacher, cloneModel(teacher), set, 'classify', 5, 1), [], 'a copy of the teacher agrees everywhere');
  // a student whose first layer is perturbed: some rows change their top class
  const student = cloneModel(teacher);
  const w = student.graph.initializer('fc_w_2')!;
  const next = rng(9);
  const noise = randn(next, w.size);
  const noisy = w.toFloat32().map((v, i) => v + 0.6 * noise[i]!);
  student.graph.setInitializer(Tensor.fromFloat32('fc_w_2', w.dims, noisy));
  const argmax = (d: ArrayLike<number>) => Array.prototype.indexOf.call(d, Math.max(...Array.from(d)));
  const [a, b] = [await runFirstOutput(teacher, set, 1), await runFirstOutput(student, set, 1)];
  const differ = a.flatMap((o, i) => (argmax(o.data) !== argmax(b[i]!.data) ? [i] : []));
  t.ok(differ.length > 2, `the perturbed student changes ${differ.length} of 40 rows`);
  const two = await hardestSamples(teacher, student, set, 'classify', 2, 1);
  t.same(two, differ.slice(0, 2), 'top-1 is 0 or 1 per row: the first two rows it gets wrong');
  t.same(await hardestSamples(teacher, student, set, 'classify', 100, 1), differ, 'never a row it gets right');
});

t.test("a text-det judge scores box F1 with the maps' mask IoU as its finer figure", async (t) => {
  // a tiny detector: a 3x3 conv and a sigmoid give a [1, 1, 16, 16] probability map
  const b = new ModelBuilder({ seed: 3 });
  const map = b.unary('Sigmoid', b.conv(b.input('x', [1, 1, 16, 16]), 1, { k: 3 }));
  b.output(map);
  const teacher = b.build();
  const held = Array.from({ length: 4 }, (_, i) => ({
    x: { dtype: 'float32' as const, shape: [1, 1, 16, 16], data: randn(rng(10 + i), 256, 2) as Float32Array<ArrayBuffer> },
  }));
  const judge = await taskJudge(teacher, held, 'text-det', 1);
  t.equal(judge.name, 'boxF1');
  t.equal(judge.finer, 'maskIoU');
  const runner = await ModelRunner.create(teacher);
  const own = await Promise.all(held.map(async (r) => ({ [map]: (await runner.run(r)).get(map)! })));
  await runner.release();
  t.ok(
    own.some((o) => (o[map]!.data as Float32Array).some((v) => v > 0.3)),
    'the maps have text pixels',
  );
  t.same(judge.score(own), { value: 1, finer: 1 }, "the teacher's own maps: box F1 1, mask IoU 1");
  const blank = own.map((o) => ({ [map]: { ...o[map]!, data: new Float32Array(256) } }));
  const s = judge.score(blank) as { value: number; finer: number };
  t.equal(s.finer, 0, 'empty maps share no text pixel: mask IoU 0');
});
