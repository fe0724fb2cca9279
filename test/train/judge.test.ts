// The held-out judge's tolerance (issue 18): scores within TASK_TOLERANCE, or TIE_ITEMS counted
// items (boxes, rows, characters) when that is more, of the best seen are ties the loss decides.
// A small held-out set cannot tell two weights apart by a couple of items.
import t from 'tap';
import { FIXTURES, randn, rng } from '../../devkit/builder.js';
import type { Sample } from '../../src/data/inputs.js';
import { TASK_TOLERANCE, TIE_ITEMS, taskJudge } from '../../src/passes/train/judge.js';

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
