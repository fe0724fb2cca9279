// A newly deployed model gets its first live figure within FRESH_PROBE_MS, not at the paced
// schedule's next turn (with the default 1 % CPU cap that turn came minutes after a hot-swap, and
// the dashboard showed '-' for the served model's latency until then). The prober runs on a
// scripted latency source with a schedule an hour long, so every probe the test sees is one the
// deploy asked for.
import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDir } from '../../devkit/broker.js';
import { Adaptation } from '../../src/agent/adaptation.js';
import { AgentBus } from '../../src/agent/bus.js';
import type { LatencyStats } from '../../src/agent/latency.js';
import type { ModelVersion } from '../../src/agent/model-store.js';
import { FRESH_PROBE_MS, Prober } from '../../src/agent/prober.js';
import { ScriptedLatency } from '../helpers/scripted.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-fresh-'));
t.teardown(() => cleanupDir(dir));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Setup {
  source: ScriptedLatency;
  prober: Prober;
  figures: (LatencyStats | null)[];
  deploy: (name: string) => Promise<void>;
}

/** `restart`: the model is loaded before the prober starts, as the deployer does on a restart. */
async function setup(t: Test, restart?: string): Promise<Setup> {
  const bus = new AgentBus();
  const source = new ScriptedLatency();
  source.p50 = { a: 4, b: 2 };
  const prober = new Prober({
    bus,
    source,
    adaptation: new Adaptation(3, 5, 0.9),
    probe: { intervalS: 3600, runs: 5, maxCpuPercent: 1 },
    shapes: { x: [1] },
    threads: () => 1,
    fits: { current: () => undefined, level: () => null, frontier: () => [] },
    budgets: () => ({}),
    step: async () => undefined,
    log: () => undefined,
  });
  const figures: (LatencyStats | null)[] = [];
  bus.on('latency', (l) => figures.push(l));
  // the deployer's order: load into the prober, then announce
  const deploy = async (name: string): Promise<void> => {
    const file = join(dir, `${name}.onnx`);
    writeFileSync(file, name);
    const version: ModelVersion = { version: name, sha256: name, file, candidateId: null, fitId: null, source: 'fit' };
    await prober.load(version);
    bus.emit('deployed', { version, source: 'fit', txn: undefined });
  };
  if (restart) await deploy(restart);
  prober.start();
  t.teardown(() => prober.stop());
  return { source, prober, figures, deploy };
}

t.test('a deployed model is probed at once; the next probe waits for the paced schedule', async (t) => {
  const { source, figures, deploy } = await setup(t);
  await deploy('a');
  t.same(figures, [null], 'loading clears the live figure');
  await sleep(FRESH_PROBE_MS + 500);
  t.same(source.probes, [{ model: 'a', p50: 4 }], 'one probe of the new model, long before the hour-long schedule');
  t.match(figures.at(-1), { p50: 4, source: 'probe' });
  await sleep(FRESH_PROBE_MS + 500);
  t.equal(source.probes.length, 1, 'no second probe: the schedule is paced again');

  // a hot-swap later: the new model is probed at once too
  await deploy('b');
  await sleep(FRESH_PROBE_MS + 500);
  t.same(
    source.probes.map((p) => p.model),
    ['a', 'b'],
  );
  t.match(figures.at(-1), { p50: 2, source: 'probe' });
});

t.test('a deploy whose figure came another way (the first run timing the original) is not probed again', async (t) => {
  const { source, prober, deploy } = await setup(t);
  await deploy('a');
  const lat = await prober.timeServed(20);
  t.match(lat, { p50: 4, runs: 20 });
  await sleep(FRESH_PROBE_MS + 500);
  t.same(
    source.probes.map((p) => p.model),
    ['a'],
    'only the first run timing',
  );
});

t.test('after a restart the model deployed before is probed at once, then at the paced schedule', async (t) => {
  const { source, figures } = await setup(t, 'b');
  await sleep(FRESH_PROBE_MS + 500);
  t.same(source.probes, [{ model: 'b', p50: 2 }], 'one probe soon after start, long before the hour-long schedule');
  t.match(figures.at(-1), { p50: 2, source: 'probe' });
  await sleep(FRESH_PROBE_MS + 500);
  t.equal(source.probes.length, 1, 'no second probe');
});
