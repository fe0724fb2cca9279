// Child-process isolation: a model that allocates past the RSS cap is killed and reported as
// over budget, a job past its time limit and a child killed from outside are reported too, and
// after each the same Evaluator answers the next request.
import t from 'tap';
import { join } from 'node:path';
import { Evaluator, EvalAbort, evaluateModel, DEFAULT_SESSION } from '../../src/evaluate/index.js';
import { Graph } from '../../src/ir/graph.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { serializeModel } from '../../src/onnx/index.js';
import { ROOT, OCR_MODELS } from '../../devkit/paths.js';

const MNIST = join(ROOT, 'models/mnist-cnn.onnx');
const ev = new Evaluator();
t.teardown(() => ev.close());

/** x[1,1] -> Expand to [side, side] float32 -> ReduceSum: tiny file, side^2*4 bytes at run time. */
function hog(side: number): Uint8Array {
  const g = new Graph();
  g.inputs = [{ name: 'x', type: { dtype: 'float32', shape: [1, 1] } }];
  g.outputs = [{ name: 'y', type: { dtype: 'float32', shape: [1, 1] } }];
  g.setInitializer(Tensor.fromInt64('shape', [2], [side, side]));
  g.addNode({ opType: 'Expand', inputs: ['x', 'shape'], outputs: ['big'] });
  g.addNode({ opType: 'ReduceSum', inputs: ['big'], outputs: ['y'], attrs: { keepdims: { type: 'int', value: 1 } } });
  const m: Model = {
    irVersion: 8,
    opsets: new Map([['', 13]]),
    producerName: 'edgefit-test',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    docString: '',
    metadata: new Map(),
    graph: g,
    extra: undefined,
  };
  return serializeModel(m);
}

const one = { x: { dtype: 'float32' as const, shape: [1, 1], data: Float32Array.of(1) } };

/** Runs of a normal evaluation on the same Evaluator: 3 when it still answers. */
async function nextRuns(): Promise<number> {
  const r = await evaluateModel({ model: MNIST, runs: 3, baseline: false }, ev);
  return r.latencyMs.runs;
}

t.test('a small allocation passes the same cap (the hog graph itself is sound)', async (t) => {
  const r = await ev.run({
    model: { bytes: hog(256) },
    session: DEFAULT_SESSION,
    limits: { timeoutMs: 60_000, rssCapMb: 400 },
    infer: [one],
  });
  t.equal((r.outputs![0]!.y!.data as Float32Array)[0], 256 * 256, 'ReduceSum of 256x256 ones');
});

t.test('over the RSS cap: killed, reported as over budget, parent carries on', async (t) => {
  // 16384^2 floats = 1 GiB, against a 300 MiB cap
  const err = await ev
    .run({ model: { bytes: hog(16384) }, session: DEFAULT_SESSION, limits: { timeoutMs: 120_000, rssCapMb: 300 }, infer: [one] })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  t.ok(err instanceof EvalAbort, 'rejected with EvalAbort');
  const a = err as EvalAbort;
  t.equal(a.kind, 'rss-cap');
  t.equal(a.code, 'OVER_BUDGET');
  t.equal(a.exitCode, 3);
  t.ok(a.observedMb! > 300, `observed ${a.observedMb?.toFixed(0)} MiB`);
  t.match(a.message, /over the 300 MiB cap; killed/);
  t.equal(await nextRuns(), 3, 'the evaluator answers the next request');
});

t.test('past the time limit: killed and reported, parent carries on', async (t) => {
  const err = await evaluateModel(
    {
      model: OCR_MODELS.det.file,
      shapes: new Map([['x', [1, 3, 640, 640]]]),
      runs: 1000,
      warmup: 0,
      baseline: false,
      limits: { timeoutMs: 1500 },
    },
    ev,
  ).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof EvalAbort && err.kind === 'timeout' && err.code === 'EVAL', String(err));
  t.match((err as Error).message, /did not finish within 1500 ms/);
  t.equal(await nextRuns(), 3, 'the evaluator answers the next request');
});

t.test('a child that dies is reported as a crash, parent carries on', async (t) => {
  const p = evaluateModel(
    { model: OCR_MODELS.det.file, shapes: new Map([['x', [1, 3, 640, 640]]]), runs: 1000, warmup: 0, baseline: false },
    ev,
  );
  // wait for the child to exist, then kill it from outside as the OOM killer would
  let pid: number | undefined;
  for (let i = 0; i < 200 && pid === undefined; i++) {
    await new Promise((r) => setTimeout(r, 25));
    pid = ev.childPid;
  }
  t.ok(pid, 'child started');
  process.kill(pid!, 'SIGKILL');
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof EvalAbort && err.kind === 'crash', String(err));
  t.match((err as Error).message, /evaluation child died \(SIGKILL\)/);
  t.equal(await nextRuns(), 3, 'the evaluator answers the next request');
});

t.test('concurrent requests queue and all complete', async (t) => {
  const rs = await Promise.all([0, 1, 2].map(() => evaluateModel({ model: MNIST, runs: 2, baseline: false }, ev)));
  t.same(
    rs.map((r) => r.latencyMs.runs),
    [2, 2, 2],
  );
});
