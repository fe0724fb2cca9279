// The dashboard's SQLite store: bounded ring-buffer history, persistence across reopen,
// responses matched to our own requests only.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DashboardStore, STORE_LIMITS } from '../../src/dashboard/store.js';
import { Fleet } from '../../src/dashboard/fleet.js';
import type { MetricPoint } from '../../src/dashboard/model.js';
import { SimDevice } from '../../devkit/sim.js';
import type { MetricsPayload } from '../../src/telemetry/payloads.js';

/** A real metrics payload (the simulator's, schema-checked in sim.test) with chosen figures. */
function metrics(seq: number, latencyMs: number, budgetMs?: number): MetricsPayload {
  const m = new SimDevice(1, { broker: 'mqtt://127.0.0.1:1', prefix: 'edgefit', rate: 1 }).metricsPayload();
  m.seq = seq;
  m.model.latencyP50Ms = latencyMs;
  m.budgets = { effectiveLatencyMs: budgetMs ?? null, ...(budgetMs ? { latencyMs: budgetMs } : {}) };
  m.meets = { latency: budgetMs ? latencyMs <= budgetMs : null, ram: null, fidelity: null };
  return m;
}

function dir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'edgefit-dash-store-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const point = (ts: number, lat: number): MetricPoint => ({
  ts,
  latencyMs: lat,
  latencyP95Ms: lat * 1.2,
  ramMb: 40,
  tempC: 50,
  cpuLoad: 0.3,
  fidelity: 0.98,
});

t.test('metric history is a ring: capped per device, newest kept, in order', async (t) => {
  const s = new DashboardStore(dir(t));
  t.teardown(() => s.close());
  const n = STORE_LIMITS.metricsPerDevice + 250;
  s.batch(() => {
    for (let i = 0; i < n; i++) s.addMetrics('dev-a', { seq: i }, point(1000 + i, i));
  });
  s.batch(() => {
    for (let i = 0; i < 10; i++) s.addMetrics('dev-b', { seq: i }, point(1000 + i, i));
  });
  const rows = s.db.prepare('SELECT device, COUNT(*) AS c FROM metrics GROUP BY device ORDER BY device').all() as {
    device: string;
    c: number;
  }[];
  t.same(rows, [
    { device: 'dev-a', c: STORE_LIMITS.metricsPerDevice },
    { device: 'dev-b', c: 10 },
  ]);
  const h = s.history('dev-a', 0, STORE_LIMITS.metricsPerDevice);
  t.equal(h.length, STORE_LIMITS.metricsPerDevice);
  t.equal(h[0]!.latencyMs, 250, 'the oldest 250 were overwritten');
  t.equal(h.at(-1)!.latencyMs, n - 1, 'the newest is last');
  t.ok(
    h.every((p, i) => i === 0 || p.ts > h[i - 1]!.ts),
    'oldest first, strictly increasing',
  );
  t.same(
    s.history('dev-a', 1000 + n - 5, 100).map((p) => p.latencyMs),
    [n - 5, n - 4, n - 3, n - 2, n - 1],
    'since filter',
  );
});

t.test('events are a ring too; state and counters survive reopen', async (t) => {
  const d = dir(t);
  let s = new DashboardStore(d);
  s.batch(() => {
    s.setStatus('dev-a', { state: 'online' }, true, 5);
    s.setProfile('dev-a', { board: 'raspberry-pi-4' }, 6);
    for (let i = 0; i < STORE_LIMITS.eventsPerDevice + 5; i++) s.addEvent('dev-a', i, { type: 'e', i });
    s.addMetrics('dev-a', { seq: 1 }, point(7, 10));
  });
  s.close();
  s = new DashboardStore(d);
  t.teardown(() => s.close());
  const [dev] = s.devices();
  t.equal(dev!.id, 'dev-a');
  t.equal(dev!.online, true);
  t.same(dev!.profile, { board: 'raspberry-pi-4' });
  t.same(dev!.metrics, { seq: 1 });
  const ev = s.events('dev-a', 1000);
  t.equal(ev.length, STORE_LIMITS.eventsPerDevice);
  t.same(ev[0]!.payload, { type: 'e', i: STORE_LIMITS.eventsPerDevice + 4 }, 'newest first');
  // counters continue after reopen: a new point does not overwrite the one at slot 0
  s.batch(() => s.addMetrics('dev-a', { seq: 2 }, point(8, 11)));
  t.same(
    s.history('dev-a', 0, 10).map((p) => p.latencyMs),
    [10, 11],
  );
});

t.test('a response is recorded only for a request we sent to that device', async (t) => {
  const s = new DashboardStore(dir(t));
  t.teardown(() => s.close());
  s.addAction({ tx: 'tx-1', device: 'dev-a', verb: 'ping', ts: 1, request: { tx: 'tx-1' } });
  t.equal(s.answerAction('dev-b', 'tx-1', { ok: true }, 2), false, 'other device cannot answer');
  t.equal(s.answerAction('dev-a', 'tx-unknown', { ok: true }, 2), false, 'unknown tx ignored');
  t.equal(s.answerAction('dev-a', 'tx-1', { tx: 'tx-1', ok: true }, 3), true);
  t.same(s.action('tx-1'), {
    tx: 'tx-1',
    device: 'dev-a',
    verb: 'ping',
    ts: 1,
    request: { tx: 'tx-1' },
    response: { tx: 'tx-1', ok: true },
    responseTs: 3,
  });
});

t.test('fleet batches: messages only mark dirty; flush writes once and emits one fleet update', async (t) => {
  const s = new DashboardStore(dir(t));
  t.teardown(() => s.close());
  const f = new Fleet(s);
  for (let i = 0; i < 50; i++) {
    f.onMetrics('dev-a', metrics(i + 1, 100 + i, 120), 1000 + i);
    f.onMetrics('dev-b', metrics(i + 1, 10), 1000 + i);
  }
  t.equal(s.history('dev-a', 0, 100).length, 0, 'nothing written before the flush');
  const out = f.flush();
  const fleet = out.filter((m) => m.kind === 'fleet');
  t.equal(fleet.length, 1, 'one fleet message for 100 updates');
  t.equal(fleet[0]!.kind === 'fleet' && fleet[0]!.devices.length, 2);
  t.equal(s.history('dev-a', 0, 100).length, 50);
  const a = f.state('dev-a')!.summary;
  t.equal(a.last!.latencyMs, 149);
  t.ok(Math.abs(a.violation - (149 / 120 - 1)) < 1e-9, 'violation = relative overshoot of the latency budget');
  t.same(a.met, { latency: false });
  t.same(f.flush(), [], 'nothing new, nothing sent');
  // a fresh Fleet on the same store warms up from it
  const g = new Fleet(s);
  t.equal(g.state('dev-a')!.summary.spark.lat.at(-1), 149);
});
