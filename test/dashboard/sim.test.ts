// The simulated fleet speaks the agent's wire format: every payload passes the agent's schemas.
import t from 'tap';
import { SimDevice, SIM_BOARDS } from '../../devkit/sim.js';
import { adaptFrontier, adaptMetrics, candidateLabel } from '../../src/dashboard/adapt.js';
import { checkPayload } from '../../src/telemetry/validate.js';
import { frontierPlot, rebaseFrontier } from '../../src/dashboard/web/charts.js';
import { PAYLOAD_VERSION, type ResponsePayload } from '../../src/telemetry/payloads.js';
import type { FrontierPoint } from '../../src/dashboard/model.js';

t.test('status, profile, metrics and frontier of every simulated board pass the agent schemas', async (t) => {
  for (let n = 1; n <= Object.keys(SIM_BOARDS).length; n++) {
    const d = new SimDevice(n, { broker: 'mqtt://127.0.0.1:1', prefix: 'edgefit', rate: 1 });
    t.doesNotThrow(() => checkPayload('status', d.statusPayload('online', 'start')), `${d.id} status`);
    t.doesNotThrow(() => checkPayload('status', d.statusPayload('offline', 'lwt')), `${d.id} Last Will`);
    t.doesNotThrow(() => checkPayload('profile', d.profilePayload()), `${d.id} profile`);
    for (let i = 0; i < 5; i++) {
      const m = d.metricsPayload();
      t.doesNotThrow(() => checkPayload('metrics', m), `${d.id} metrics ${m.seq}`);
      const a = adaptMetrics(m, 0);
      t.equal(a.point.latencyMs, m.model.latencyP50Ms);
      t.equal(a.budgets.latencyMs, m.budgets.effectiveLatencyMs);
    }
    const resp: ResponsePayload = {
      v: PAYLOAD_VERSION,
      deviceId: d.id,
      txn: 'x',
      verb: 'get-frontier',
      ok: true,
      ts: new Date().toISOString(),
      result: { frontier: d.frontierPayload() },
    };
    t.doesNotThrow(() => checkPayload('response', resp));
    const f = adaptFrontier(resp, 2);
    t.equal(f.length, 5);
    t.ok(
      f.every((p, i) => p.level === i && p.chosen === (i === 2)),
      'level = frontier index; chosen = deployed level',
    );
    t.ok(
      f.every((p, i) => i === 0 || p.latencyMs < f[i - 1]!.latencyMs),
      'frontier from slowest to fastest',
    );
    t.equal(f[3]!.label, 'int8-static pruned 30% ch');
  }
});

t.test('the schema rejects what the simulator must never send', async (t) => {
  const d = new SimDevice(1, { broker: 'mqtt://127.0.0.1:1', prefix: 'edgefit', rate: 1 });
  const m = d.metricsPayload() as unknown as Record<string, unknown>;
  t.throws(() => checkPayload('metrics', { ...m, extra: 1 }), { code: 'DATA' });
  t.throws(() => checkPayload('metrics', { ...m, seq: 0 }), { code: 'DATA' });
});

t.test('frontier labels say what the pruned fraction is of', async (t) => {
  const cfg = { unstructured: 0, threads: 2 };
  t.equal(candidateLabel({ config: { ...cfg, structured: 0.3, quant: 'int8-static' } }), 'int8-static pruned 30% ch');
  t.equal(candidateLabel({ config: { ...cfg, structured: 0.25, structuredBy: 'macs', quant: 'none' } }), 'fp32 pruned 25% MACs');
  t.equal(candidateLabel({ config: { ...cfg, structured: 0.125, structuredBy: 'latency', quant: 'none' } }), 'fp32 pruned 13% latency');
  // the original with only its exact folds, beside the file as shipped
  t.equal(candidateLabel({ config: { ...cfg, structured: 0, quant: 'none', folded: true } }), 'fp32 folded');
  t.equal(candidateLabel({ config: { ...cfg, structured: 0, quant: 'none' } }), 'fp32');
});

t.test('the frontier plot places each level by its ratio to the original, re-based on the live original', async (t) => {
  const entry = (id: string, p50: number, ratio: number | undefined, fidelity: number) => ({
    id,
    config: { structured: 0.2, structuredBy: 'latency' as const, unstructured: 0, quant: 'none' as const, threads: 2 },
    sha256: 'x',
    sizeBytes: 1,
    latencyP50Ms: p50,
    latencyP95Ms: p50,
    modelRssMb: 100,
    fidelity,
    meets: { latency: true, ram: true, fidelity: true },
    ...(ratio !== undefined ? { latencyRatio: ratio } : {}),
  });
  // level 2 was timed while the box was loaded: 97 ms raw, 0.46x the original timed beside it
  const resp: ResponsePayload = {
    v: PAYLOAD_VERSION,
    deviceId: 'd1',
    txn: 't1',
    verb: 'get-frontier',
    ok: true,
    ts: new Date(0).toISOString(),
    result: {
      frontier: [entry('a', 52, 0.7, 1), entry('b', 39, 0.54, 0.98), entry('c', 97, 0.46, 0.979), entry('d', 30, undefined, 0.97)],
    },
  };
  const f = adaptFrontier(resp, 1);
  t.same(
    f.map((p) => p.ratio),
    [0.7, 0.54, 0.46, undefined],
    'the ratio travels with each level, absent where the fit had none',
  );
  const placed = rebaseFrontier(f, 75);
  t.same(
    placed.map((p) => +p.latencyMs.toFixed(1)),
    [52.5, 40.5, 34.5, 30],
    'ratio x the live original where known, else the raw p50',
  );
  t.same(rebaseFrontier(f, null), f, 'without a live original the raw p50s stay');
  t.match(frontierPlot(placed, { latencyMs: 45 }), /L2 fp32 pruned 20% latency: 34\.5 ms \(0\.46x the original\)/);
});

t.test("the deployed level's label stays inside the frontier plot", async (t) => {
  const pt = (level: number, latencyMs: number, fidelity: number, chosen: boolean): FrontierPoint => ({
    level,
    id: `c${level}`,
    label: 'fp32 pruned 13% latency distilled',
    latencyMs,
    fidelity,
    ramMb: null,
    chosen,
  });
  const label = (svg: string) => {
    const m = /<text class="chosen-label" x="([\d.]+)" y="([\d.]+)" text-anchor="(start|end)">([^<]*)<\/text>/.exec(svg);
    const c = /<circle class="pt chosen"[^>]* cx="([\d.]+)" cy="([\d.]+)"/.exec(svg);
    return { x: Number(m![1]), y: Number(m![2]), anchor: m![3], text: m![4], cx: Number(c![1]), cy: Number(c![2]) };
  };
  // a new-user run's plot (its label was cut at 'L1 fp32 pruned 13% laten'): the deployed level
  // at 36.8 ms of a 50 ms axis
  const near = label(frontierPlot([pt(0, 45, 1, false), pt(1, 36.8, 0.9971, true), pt(4, 31, 0.958, false)], { latencyMs: 39.1 }));
  t.equal(near.text, 'L1 fp32 pruned 13% latency distilled (deployed)');
  t.equal(near.anchor, 'end', 'right of the middle: the label ends left of its point');
  t.ok(near.x < near.cx && near.y < near.cy, 'above it, where there is room');
  // the top right corner: the original deployed at fidelity 1
  const right = label(frontierPlot([pt(0, 45, 1, true), pt(1, 36.8, 0.9971, false), pt(4, 31, 0.958, false)], { latencyMs: 39.1 }));
  t.equal(right.anchor, 'end', 'right of the middle: the label ends left of its point');
  t.ok(right.x < right.cx, `${right.x} < ${right.cx}`);
  t.ok(right.y > right.cy, 'at the top edge: below its point, not cut by the edge');
  const left = label(frontierPlot([pt(0, 45, 1, false), pt(3, 8, 0.97, true)], { latencyMs: 39.1, minFidelity: 0.95 }));
  t.equal(left.anchor, 'start', 'left of the middle: the label starts right of its point');
  t.ok(left.x > left.cx && left.y < left.cy, 'above it, where there is room');
});
