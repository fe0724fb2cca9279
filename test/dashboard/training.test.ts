// A candidate trained on the box (issue 18) carries its loss curve to the device page: the
// frontier entry's training summary survives adaptation (malformed parts dropped), its label
// says how it was trained, and the chart draws both curves.
import t from 'tap';
import { adaptFrontier, candidateLabel } from '../../src/dashboard/adapt.js';
import { lossChart } from '../../src/dashboard/web/charts.js';
import { PAYLOAD_VERSION, type ResponsePayload } from '../../src/telemetry/payloads.js';

const curve = Array.from({ length: 30 }, (_, i) => ({
  step: i * 10,
  loss: 1 / (1 + i),
  ...(i % 5 === 0 ? { heldOut: 1.2 / (1 + i) } : {}),
}));
const entry = (id: string, extra: Record<string, unknown>) => ({
  id,
  config: {
    structured: 0.3,
    structuredBy: 'latency',
    unstructured: 0,
    quant: 'none',
    threads: 2,
    ...(extra.train ? { train: extra.train } : {}),
  },
  sha256: '0'.repeat(64),
  sizeBytes: 1,
  latencyP50Ms: id === 'a' ? 20 : 10,
  latencyP95Ms: 21,
  modelRssMb: 50,
  fidelity: 0.97,
  meets: { latency: true, ram: true, fidelity: true },
  ...extra,
});
const resp = (frontier: unknown[]): ResponsePayload => ({
  v: PAYLOAD_VERSION,
  deviceId: 'd',
  txn: 'x',
  verb: 'get-frontier',
  ok: true,
  ts: new Date().toISOString(),
  result: { chosenId: 'b', frontier },
});

t.test('a trained entry keeps its training summary and is labelled by how it was trained', async (t) => {
  const training = { kind: 'distill', minutes: 5, seconds: 290, steps: 300, heldOutBefore: 0.4, heldOutAfter: 0.1, improved: true, curve };
  const f = adaptFrontier(resp([entry('a', {}), entry('b', { train: 5, training })]), null);
  t.equal(f[0]!.training, undefined, 'an untrained entry has none');
  t.same(f[1]!.training?.curve.length, 30);
  t.equal(f[1]!.training?.heldOutAfter, 0.1);
  t.equal(f[1]!.label, 'fp32 pruned 30% latency distilled');
  t.equal(candidateLabel({ config: { structured: 0, unstructured: 0, quant: 'int8-static', threads: 2, train: 5 } }), 'int8-static QAT');
  const bad = adaptFrontier(resp([entry('b', { train: 5, training: { kind: 'distill', minutes: 'x', curve } })]), null);
  t.equal(bad[0]!.training, undefined, 'a summary with a non-numeric field is dropped');
  const odd = adaptFrontier(
    resp([entry('b', { train: 5, training: { ...training, curve: [{ step: 1 }, { step: 2, loss: 0.5 }, 'x'] } })]),
    null,
  );
  t.same(odd[0]!.training?.curve, [{ step: 2, loss: 0.5 }], 'malformed curve points are dropped');
});

t.test("the task's held-out score that picked the weights is kept, and a malformed one dropped", async (t) => {
  const training = { kind: 'distill', minutes: 5, seconds: 290, steps: 300, heldOutBefore: 0.4, heldOutAfter: 0.1, improved: true, curve };
  const judged = { name: 'boxF1', before: 0.9709, after: 0.9745 };
  const f = adaptFrontier(resp([entry('b', { train: 5, training: { ...training, judged } })]), null);
  t.same(f[0]!.training?.judged, judged);
  for (const bad of [{ ...judged, before: 'x' }, { ...judged, name: '<img src=x>' }, 'boxF1']) {
    const g = adaptFrontier(resp([entry('b', { train: 5, training: { ...training, judged: bad } })]), null);
    t.equal(g[0]!.training?.judged, undefined, `dropped: ${JSON.stringify(bad)}`);
    t.equal(g[0]!.training?.heldOutAfter, 0.1, 'the rest of the summary stays');
  }
});

t.test('the frozen stem is kept as two whole numbers, and a malformed one dropped', async (t) => {
  const training = { kind: 'distill', minutes: 5, seconds: 290, steps: 300, heldOutBefore: 0.4, heldOutAfter: 0.1, improved: true, curve };
  const f = adaptFrontier(resp([entry('b', { train: 5, training: { ...training, frozen: { layers: 12, stride: 16 } } })]), null);
  t.same(f[0]!.training?.frozen, { layers: 12, stride: 16 });
  for (const bad of [{ layers: '12', stride: 16 }, { layers: 1.5, stride: 16 }, { layers: 12, stride: 1 }, { layers: 0, stride: 8 }, 12]) {
    const g = adaptFrontier(resp([entry('b', { train: 5, training: { ...training, frozen: bad } })]), null);
    t.equal(g[0]!.training?.frozen, undefined, `dropped: ${JSON.stringify(bad)}`);
    t.equal(g[0]!.training?.steps, 300, 'the rest of the summary stays');
  }
});

t.test('the loss chart draws the batch loss and the held-out points', async (t) => {
  const svg = lossChart(curve);
  t.match(svg, /class="loss-train"/);
  t.match(svg, /class="loss-held"/);
  t.equal((svg.match(/<circle/g) ?? []).length, 6, 'one dot per held-out measurement');
  t.match(svg, /step 290/, 'the step axis ends at the last step');
  t.match(lossChart([]), /no curve/);
});

t.test("the held-out loss before training is the held-out line's first dot, at step 0", async (t) => {
  const svg = lossChart(curve, 520, 200, 2);
  t.equal((svg.match(/<circle/g) ?? []).length, 7, 'one dot more than the evaluations');
  t.match(svg, />step 0</, 'the step axis starts at 0');
  // the dot at step 0 sits at the left edge (x = 52) and is the highest one (smallest y): 2 > every loss
  const dots = [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
  t.equal(dots[0]![0], 52);
  t.ok(
    dots.slice(1).every(([, cy]) => cy > dots[0]![1]),
    'drawn above the later held-out dots',
  );
  t.equal((lossChart(curve, 520, 200, NaN).match(/<circle/g) ?? []).length, 6, 'a non-finite one is left out');
});
