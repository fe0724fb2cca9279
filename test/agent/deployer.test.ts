// The deployer alone, on a real store and model folder with a fake model server: a fit's choice
// announced on the bus is deployed (once), 'deployed' goes on the bus before the reportable
// event, rollback swaps back, and after stop() nothing new is deployed. A deploy is all or
// nothing: a model that does not load (a real probe child refusing a corrupt file), or a failure
// after it loaded, leaves the previous version current in current.json, active in SQLite and
// served, before and after a restart.
import t from 'tap';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDir } from '../../devkit/broker.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { Adaptation } from '../../src/agent/adaptation.js';
import { AgentBus } from '../../src/agent/bus.js';
import { Deployer, type ModelServer } from '../../src/agent/deployer.js';
import { LatencyProbe } from '../../src/agent/latency.js';
import { ModelStore, sha256Hex, type ModelVersion } from '../../src/agent/model-store.js';
import { Prober } from '../../src/agent/prober.js';
import { Store } from '../../src/store/index.js';
import type { FrontierEntry } from '../../src/fit/types.js';

/** Serves what it last loaded; a load that fails leaves that served (the ModelServer contract). */
class FakeServer implements ModelServer {
  loaded = false;
  modelRssMb = 12;
  fail = false;
  serving: string | undefined;
  readonly loads: string[] = [];
  async load(v: ModelVersion): Promise<void> {
    if (this.fail) throw new Error('does not load');
    this.loads.push(v.candidateId ?? v.version);
    this.serving = v.candidateId ?? v.version;
    this.loaded = true;
  }
}

const pointer = (dir: string): { current: ModelVersion; previous: ModelVersion | null } =>
  JSON.parse(readFileSync(join(dir, 'models/current.json'), 'utf8'));

function setup(t: { teardown(fn: () => void): void }, server: ModelServer = new FakeServer()) {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-deployer-'));
  const store = new Store(join(dir, 'state.db'));
  t.teardown(() => {
    store.close();
    cleanupDir(dir);
  });
  const bus = new AgentBus();
  const seen: string[] = [];
  const events: Array<{ type: string; message: string; data: Record<string, unknown> }> = [];
  bus.on('deployed', (d) => seen.push(`bus:${d.source}:${d.version.candidateId ?? 'shipped'}`));
  bus.on('event', (type, message, data) => {
    seen.push(`event:${type}${'level' in data ? `:${String(data.level)}` : ''}`);
    events.push({ type, message, data });
  });
  const deployer = new Deployer({ bus, store, modelsDir: join(dir, 'models'), server, level: () => 7, log: (l) => seen.push(`log:${l}`) });
  const entry = (id: string, bytes: Uint8Array = Buffer.from(id)): FrontierEntry => {
    const p = join(dir, `${id}.onnx`);
    writeFileSync(p, bytes);
    return {
      id,
      config: { structured: 0, unstructured: 0, quant: 'none', threads: 1 },
      modelPath: p,
      sha256: sha256Hex(bytes),
      sizeBytes: bytes.length,
      latencyP50Ms: 1,
      latencyP95Ms: 1,
      modelRssMb: 1,
      fidelity: 1,
      meets: { latency: true, ram: true, fidelity: true },
    };
  };
  return { dir, store, bus, seen, events, deployer, entry };
}
const fake = (t: { teardown(fn: () => void): void }) => {
  const server = new FakeServer();
  return { ...setup(t, server), server };
};

t.test("a fit's choice is deployed once; 'deployed' on the bus precedes the event", async (t) => {
  const { bus, server, seen, deployer, entry } = fake(t);
  await deployer.start();
  const a = entry('a');
  bus.emit('fit:done', { fitId: 1, chosen: a, txn: 'x' });
  await deployer.exclusive(async () => undefined); // the deploy was queued first
  t.same(server.loads, ['a']);
  t.same(
    seen.filter((s) => !s.startsWith('log:')),
    ['event:deploy-started', 'bus:fit:a', 'event:deployed:7', 'event:model-changed:7'],
  );
  t.match(deployer.current(), { candidateId: 'a', fitId: 1, source: 'fit' });
  bus.emit('fit:done', { fitId: 1, chosen: a, txn: undefined });
  await deployer.exclusive(async () => undefined);
  t.same(server.loads, ['a'], 'already serving that fit: no second deploy');
});

t.test('rollback swaps back; a model the server cannot load fails its deploy', async (t) => {
  const { dir, store, server, seen, deployer, entry } = fake(t);
  await deployer.start();
  await deployer.exclusive(() => deployer.deployEntry(1, entry('a'), 'command'));
  await deployer.exclusive(() => deployer.deployEntry(1, entry('b'), 'command'));
  seen.length = 0;
  const v = await deployer.rollback('r1');
  t.equal(v.candidateId, 'a', 'back to the one before b');
  t.same(
    seen.filter((s) => !s.startsWith('log:')),
    ['bus:rollback:a', 'event:rolled-back', 'event:model-changed:7'],
  );
  server.fail = true;
  seen.length = 0;
  await t.rejects(
    deployer.exclusive(() => deployer.deployEntry(1, entry('c'), 'command')),
    /does not load/,
  );
  t.same(
    seen.filter((s) => !s.startsWith('log:')),
    ['event:deploy-started', 'event:deploy-failed'],
    "no 'deployed' on the bus",
  );
  t.equal(deployer.current()?.candidateId, 'a', 'the pointer stays on a');
  t.equal(pointer(dir).previous?.candidateId, 'b', 'and its previous on b');
  t.equal(store.activeDeployment()?.candidateId, 'a', 'a stays the active row');
  t.equal(server.serving, 'a');

  server.fail = false;
  const failing = server.load.bind(server);
  server.load = async (v) => (v.candidateId === 'b' ? Promise.reject(new Error('b no longer loads')) : failing(v));
  await t.rejects(deployer.rollback('r2'), /b no longer loads/, 'a rollback to a model that does not load fails');
  t.equal(deployer.current()?.candidateId, 'a', 'and leaves the pointer where it was');
  t.equal(server.serving, 'a');
});

t.test('after stop() nothing new is deployed; what was queued finishes', async (t) => {
  const { bus, server, deployer, entry } = fake(t);
  await deployer.start();
  const queued = deployer.exclusive(() => deployer.deployEntry(1, entry('a'), 'command'));
  await deployer.stop();
  await queued;
  t.same(server.loads, ['a'], 'the queued deploy ran before stop() returned');
  await t.rejects(
    deployer.exclusive(() => deployer.deployEntry(1, entry('b'), 'command')),
    { code: 'INTERNAL', message: /stopping/ },
  );
  bus.emit('fit:done', { fitId: 2, chosen: entry('c'), txn: undefined });
  t.equal(bus.listenerCount('fit:done'), 0, 'detached from the bus');
  t.same(server.loads, ['a']);
});

t.test('a corrupt model over a good one: the good one stays current, active and probed, also after a restart', async (t) => {
  const source = new LatencyProbe();
  t.teardown(() => source.close());
  const prober = new Prober({
    bus: new AgentBus(),
    source,
    adaptation: new Adaptation(3, 5, 0.9),
    probe: { intervalS: 3600, runs: 1, maxCpuPercent: 100 },
    shapes: { x: [1, 3, 48, 192] },
    threads: () => 1,
    fits: { current: () => undefined, level: () => null, frontier: () => [] },
    budgets: () => ({}),
    step: async () => undefined,
    log: () => undefined,
  });
  const { dir, store, events, deployer, entry } = setup(t, prober);
  await deployer.start();
  const good = await deployer.exclusive(() => deployer.deployEntry(1, entry('good', readFileSync(CLS_MODEL)), 'fit'));
  const goodRss = source.modelRssMb;
  // a truncated model: its sha256 matches the frontier entry, so only onnxruntime can refuse it
  const bad = entry('bad', readFileSync(CLS_MODEL).subarray(0, 5000));
  events.length = 0;
  await t.rejects(
    deployer.exclusive(() => deployer.deployEntry(1, bad, 'command', 'd1')),
    { code: 'EVAL', message: /onnxruntime/ },
  );
  t.same(
    events.map((e) => e.type),
    ['deploy-started', 'deploy-failed'],
  );
  const failed = events[1]!;
  t.match(failed.message, new RegExp(`failed: onnxruntime.*; ${good.version} stays deployed`));
  t.match(failed.data, { current: good.version, error: /onnxruntime/ });
  const badVersion = failed.data.version as string;
  t.equal(pointer(dir).current.version, good.version, 'current.json still names the good model');
  t.equal(pointer(dir).previous, null);
  t.equal(store.activeDeployment()?.version, good.version, 'the good deployment stays the active row');
  t.equal(store.deploymentByVersion(badVersion)?.state, 'failed', 'the bad one is recorded as failed');
  t.same(readdirSync(join(dir, 'models/versions')), [`${good.version}.onnx`], 'the refused file is not kept');
  t.ok(source.loaded, 'the probe still has a model');
  t.equal(source.modelRssMb, goodRss);
  t.equal((await source.measure(2)).runs, 2, 'and probing it runs: the good model (the bad one cannot run)');
  await deployer.stop();
  await source.close();

  // restart on the same folder and database: nothing pending, the good model is served again
  const db = join(dir, 'state.db');
  store.close();
  const store2 = new Store(db);
  const source2 = new LatencyProbe();
  const served: string[] = [];
  const server2: ModelServer = {
    load: async (v) => {
      await source2.load(v.file, { x: [1, 3, 48, 192] }, 1);
      served.push(v.version);
    },
    get loaded() {
      return source2.loaded;
    },
    get modelRssMb() {
      return source2.modelRssMb;
    },
  };
  const bus2 = new AgentBus();
  const types: string[] = [];
  bus2.on('event', (type) => types.push(type));
  const d2 = new Deployer({
    bus: bus2,
    store: store2,
    modelsDir: join(dir, 'models'),
    server: server2,
    level: () => null,
    log: () => undefined,
  });
  t.teardown(async () => {
    await d2.stop();
    await source2.close();
    store2.close();
  });
  await d2.start();
  t.equal(d2.current()?.version, good.version);
  t.same(served, [good.version], 'the restarted deployer serves the good model');
  t.equal(store2.activeDeployment()?.version, good.version);
  t.same(store2.pendingDeployments(), []);
  t.same(types, [], 'nothing was left interrupted');
});

t.test('a failure after the new model loaded (its row cannot turn active) puts the previous one back', async (t) => {
  const { dir, store, server, events, deployer, entry } = fake(t);
  await deployer.start();
  await deployer.exclusive(() => deployer.deployEntry(1, entry('a'), 'command'));
  const activate = store.activateDeployment.bind(store);
  store.activateDeployment = () => {
    throw new Error('disk I/O error');
  };
  await t.rejects(
    deployer.exclusive(() => deployer.deployEntry(1, entry('b'), 'command')),
    /disk I\/O error/,
  );
  store.activateDeployment = activate;
  t.equal(deployer.current()?.candidateId, 'a', 'the pointer is back on a');
  t.equal(store.activeDeployment()?.candidateId, 'a');
  t.same(server.loads, ['a', 'b', 'a'], 'b had loaded; a is served again');
  t.equal(events.at(-1)?.type, 'deploy-failed');
  t.equal(pointer(dir).current.candidateId, 'a');
});

t.test('killed after the pointer swap, before the row turned active: the restart makes that row the active one', async (t) => {
  const { dir, store, server, events, deployer, entry } = fake(t);
  await deployer.start();
  await deployer.exclusive(() => deployer.deployEntry(1, entry('a'), 'command'));
  await deployer.stop();
  // what a kill -9 between the swap and activateDeployment leaves: pointer on b, b's row pending
  const b = entry('b');
  const version = ModelStore.versionFor(b.sha256);
  store.beginDeployment(version, b.sha256, 'command', 1, 'b');
  await new ModelStore(join(dir, 'models')).deploy({ file: b.modelPath }, { version, candidateId: 'b', fitId: 1, source: 'command' });
  const d2 = new Deployer({ bus: new AgentBus(), store, modelsDir: join(dir, 'models'), server, level: () => null, log: () => undefined });
  events.length = 0;
  await d2.start();
  t.teardown(() => d2.stop());
  t.equal(store.activeDeployment()?.version, version, 'the row of what the pointer names is active');
  t.same(store.pendingDeployments(), []);
  t.equal(server.serving, 'b');
});
