// The agent's typed bus: payloads arrive as emitted, report() is the one way to raise a
// reportable event, and components attach in start() and detach in stop().
import t from 'tap';
import { Adaptation } from '../../src/agent/adaptation.js';
import { AgentBus } from '../../src/agent/bus.js';
import type { ModelVersion } from '../../src/agent/model-store.js';
import { Prober, type LatencySource } from '../../src/agent/prober.js';
import type { FrontierEntry } from '../../src/fit/types.js';

t.test('typed events carry their payloads; report() fills defaults', async (t) => {
  const bus = new AgentBus();
  const seen: unknown[] = [];
  bus.on('event', (...a) => seen.push(['event', ...a]));
  bus.on('latency', (s) => seen.push(['latency', s]));
  bus.report('agent-started', 'up');
  bus.report('deployed', 'deployed v1', { version: 'v1' }, 'txn-1');
  bus.emit('latency', { p50: 1.5, p95: 2, runs: 5 });
  bus.emit('latency', null);
  t.same(seen, [
    ['event', 'agent-started', 'up', {}, undefined],
    ['event', 'deployed', 'deployed v1', { version: 'v1' }, 'txn-1'],
    ['latency', { p50: 1.5, p95: 2, runs: 5 }],
    ['latency', null],
  ]);
});

t.test('prober: resets adaptation on deployed, emits latency, detaches on stop', async (t) => {
  const bus = new AgentBus();
  const adaptation = new Adaptation(3, 3, 0.9);
  const loaded: Array<number | null> = [];
  const source: LatencySource = {
    loaded: false,
    modelRssMb: 0,
    async load(_p, _s, threads) {
      loaded.push(threads);
      (this as { loaded: boolean }).loaded = true;
    },
    async measure(runs) {
      return { p50: 20, p95: 20, runs };
    },
    async close() {
      (this as { loaded: boolean }).loaded = false;
    },
  };
  const prober = new Prober({
    bus,
    source,
    adaptation,
    probe: { intervalS: 3600, runs: 5, maxCpuPercent: 100 },
    shapes: {},
    threads: () => 4,
    fits: { current: () => undefined, level: () => null, frontier: () => [] },
    budgets: () => ({}),
    step: async () => undefined,
    log: () => undefined,
  });
  const lat: unknown[] = [];
  bus.on('latency', (s) => lat.push(s));
  prober.start();
  const v: ModelVersion = { version: 'v1', sha256: 'a', file: '/nowhere.onnx', candidateId: null, fitId: null, source: 'command' };
  await prober.load(v);
  t.same(loaded, [4], 'a shipped model gets the configured threads');
  await prober.tick();
  t.same(lat, [null, { p50: 20, p95: 20, runs: 5, source: 'probe' }], 'null on load, then the probe result, said to be one');
  adaptation.observe(20, 10, [{ latencyP50Ms: 10 }, { latencyP50Ms: 5 }] as FrontierEntry[], 0, 0);
  t.ok(adaptation.confirming);
  bus.emit('deployed', { version: v, source: 'command', txn: undefined });
  t.notOk(adaptation.confirming, 'a new deployment starts a fresh run of observations');
  prober.stop();
  t.equal(bus.listenerCount('deployed'), 0);
});
