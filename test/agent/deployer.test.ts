// The deployer alone, on a real store and model folder with a fake model server: a fit's choice
// announced on the bus is deployed (once), 'deployed' goes on the bus before the reportable
// event, rollback swaps back, a server that cannot load the model fails the deploy, and after
// stop() nothing new is deployed.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDir } from '../../devkit/broker.js';
import { AgentBus } from '../../src/agent/bus.js';
import { Deployer, type ModelServer } from '../../src/agent/deployer.js';
import { sha256Hex, type ModelVersion } from '../../src/agent/model-store.js';
import { Store } from '../../src/store/index.js';
import type { FrontierEntry } from '../../src/fit/types.js';

class FakeServer implements ModelServer {
  loaded = false;
  modelRssMb = 12;
  fail = false;
  readonly loads: string[] = [];
  async load(v: ModelVersion): Promise<void> {
    if (this.fail) throw new Error('does not load');
    this.loads.push(v.candidateId ?? v.version);
    this.loaded = true;
  }
}

function setup(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-deployer-'));
  const store = new Store(join(dir, 'state.db'));
  t.teardown(() => {
    store.close();
    cleanupDir(dir);
  });
  const bus = new AgentBus();
  const server = new FakeServer();
  const seen: string[] = [];
  bus.on('deployed', (d) => seen.push(`bus:${d.source}:${d.version.candidateId ?? 'shipped'}`));
  bus.on('event', (type, _m, data) => seen.push(`event:${type}${'level' in data ? `:${String(data.level)}` : ''}`));
  const deployer = new Deployer({ bus, store, modelsDir: join(dir, 'models'), server, level: () => 7, log: (l) => seen.push(`log:${l}`) });
  const entry = (id: string): FrontierEntry => {
    const p = join(dir, `${id}.onnx`);
    writeFileSync(p, id);
    return {
      id,
      config: { structured: 0, unstructured: 0, quant: 'none', threads: 1 },
      modelPath: p,
      sha256: sha256Hex(Buffer.from(id)),
      sizeBytes: id.length,
      latencyP50Ms: 1,
      latencyP95Ms: 1,
      modelRssMb: 1,
      fidelity: 1,
      meets: { latency: true, ram: true, fidelity: true },
    };
  };
  return { dir, store, bus, server, seen, deployer, entry };
}

t.test("a fit's choice is deployed once; 'deployed' on the bus precedes the event", async (t) => {
  const { bus, server, seen, deployer, entry } = setup(t);
  await deployer.start();
  const a = entry('a');
  bus.emit('fit:done', { fitId: 1, chosen: a, txn: 'x' });
  await deployer.exclusive(async () => undefined); // the deploy was queued first
  t.same(server.loads, ['a']);
  t.same(
    seen.filter((s) => !s.startsWith('log:')),
    ['event:deploy-started', 'bus:fit:a', 'event:deployed:7'],
  );
  t.match(deployer.current(), { candidateId: 'a', fitId: 1, source: 'fit' });
  bus.emit('fit:done', { fitId: 1, chosen: a, txn: undefined });
  await deployer.exclusive(async () => undefined);
  t.same(server.loads, ['a'], 'already serving that fit: no second deploy');
});

t.test('rollback swaps back; a model the server cannot load fails its deploy', async (t) => {
  const { server, seen, deployer, entry } = setup(t);
  await deployer.start();
  await deployer.exclusive(() => deployer.deployEntry(1, entry('a'), 'command'));
  await deployer.exclusive(() => deployer.deployEntry(1, entry('b'), 'command'));
  seen.length = 0;
  const v = await deployer.rollback('r1');
  t.equal(v.candidateId, 'a', 'back to the one before b');
  t.same(
    seen.filter((s) => !s.startsWith('log:')),
    ['bus:rollback:a', 'event:rolled-back'],
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
});

t.test('after stop() nothing new is deployed; what was queued finishes', async (t) => {
  const { bus, server, deployer, entry } = setup(t);
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
