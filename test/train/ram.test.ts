// The training RAM plan (ram.ts) on the MNIST CNN's training graph: a step's memory measured in
// this process grows with the rows per run; a budget that holds the whole batch runs it in one
// go, one that holds part of it splits the batch into micro-batches that together keep the rows
// per Adam step, and one below what a single row needs is refused in one line, naming the need.
import { join } from 'node:path';
import t from 'tap';
import { ROOT } from '../../devkit/paths.js';
import { EdgefitError } from '../../src/errors.js';
import { cloneModel } from '../../src/ir/model.js';
import { Node } from '../../src/ir/node.js';
import { loadModel } from '../../src/onnx/index.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';
import { measureStepMb, planRam, rssMb, type StepGraph } from '../../src/passes/train/ram.js';

const mnist = loadModel(join(ROOT, 'models/mnist-cnn.onnx'));

/** MNIST's training step (sum of squares of its logits) at `rows` rows per run. */
function graphAt(rows: number): StepGraph {
  const m = cloneModel(mnist);
  const g = m.graph;
  const out = g.outputs[0]!.name;
  g.addNode(new Node({ opType: 'Mul', inputs: [out, out], outputs: ['sq'] }));
  g.addNode(new Node({ opType: 'ReduceMean', inputs: ['sq'], outputs: ['L'], attrs: { keepdims: { type: 'int', value: 0 } } }));
  g.outputs = [{ name: 'L', type: null }];
  g.touch();
  const wrt = [...g.initializers()].filter((w) => w.dtype === 'float32').map((w) => w.name);
  const shapes = new Map([['x', [rows, 1, 28, 28]]]);
  return { ...buildGradients(m, { loss: 'L', wrt, shapes }), shapes };
}

// first, while this process's RSS is not yet raised by larger steps' freed pages
t.test('a budget holding part of the batch: micro-batches that keep the rows per step, within the budget', async (t) => {
  const base = rssMb();
  const budget = base + 150;
  const plan = await planRam({ budgetMb: budget, batch: 4096, threads: 1, graphAt });
  t.ok(plan.micro < 4096 && plan.micro >= 2, `split: ${plan.micro} rows x ${plan.accumulate} (a row ${plan.perRowMb} MB)`);
  t.ok(plan.micro * plan.accumulate >= 4096, 'the micro-batches keep the rows per Adam step');
  t.ok(plan.predictedPeakMb <= budget, `predicted peak ${plan.predictedPeakMb} MB within the ${budget.toFixed(0)} MB budget`);
  const used = base + (await measureStepMb(graphAt(plan.micro), 1, base));
  t.ok(used <= budget, `measured: the step at ${plan.micro} rows peaks at ${used.toFixed(0)} MB`);
});

t.test('a roomy budget runs the whole batch; one below a single row is refused in one line', async (t) => {
  const roomy = await planRam({ budgetMb: rssMb() + 4096, batch: 64, threads: 1, graphAt });
  t.same([roomy.micro, roomy.accumulate], [64, 1], 'the whole batch at once');
  const refused = await planRam({ budgetMb: 1, batch: 8, threads: 1, graphAt }).catch((e: unknown) => e);
  t.ok(refused instanceof EdgefitError && refused.code === 'OVER_BUDGET', 'a budget below one row is refused');
  t.match((refused as Error).message, /needs about \d+ MB at 1 row per step .* over the training RAM budget of 1 MB/);
  t.notOk((refused as Error).message.includes('\n'), 'in one line');
});

t.test('a step at more rows measures more memory', async (t) => {
  const small = await measureStepMb(graphAt(2), 1, rssMb());
  const large = await measureStepMb(graphAt(512), 1, rssMb());
  t.ok(large > small + 20, `512 rows ${large.toFixed(0)} MB over 2 rows ${small.toFixed(0)} MB`);
});
