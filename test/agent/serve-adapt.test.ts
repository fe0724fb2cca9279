// Serving, the agent's side (issue 19), with the serve process replaced by a scripted one (the
// agent's `serve` seam, as `latency` is for probes): the application's served latency drives
// step-down and step-up (probes only when idle), every deploy loads into the serve process before
// the pointer moves and current.onnx follows it with a 'model-changed' event, a version the serve
// process refuses is never deployed, and a serve process that dies is restarted with the current
// model (bounded). The real serve process end to end is test/agent/serve-http.test.ts.
import t from 'tap';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { makeOperator } from '../helpers/operator.js';
import { Agent } from '../../src/agent/index.js';
import type { LatencySource } from '../../src/agent/prober.js';
import type { ServeBackend } from '../../src/agent/server.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import type { Fitter } from '../../src/fit/types.js';
import type { ServeOptions, ServeStats, ServedModel } from '../../src/serve/types.js';
import { metricsSchema } from '../../src/telemetry/payloads.js';
import { validate } from '../../src/config/validate.js';
import { ScriptedLatency, entry, events, twoLevels } from '../helpers/scripted.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-serve-adapt-'));
// state-changing commands are signed by a pinned operator key (issue 20)
const op = makeOperator(join(dir, 'op'));
const broker = await startBroker();
t.teardown(async () => {
  await broker.stop();
  cleanupDir(dir);
});

/**
 * The serve process, scripted: it "serves" whichever model was loaded last; while `traffic` holds
 * a run p50 per model name it reports a stats window every `windowS` with `requests` requests at
 * that latency. `refuse` names models whose load fails; `crash()` makes it exit.
 */
class FakeServe extends EventEmitter implements ServeBackend {
  static traffic: Record<string, number> | null = null;
  static requests = 20;
  static refuse = new Set<string>();
  static started: FakeServe[] = [];
  model: ServedModel | undefined;
  loads: ServedModel[] = [];
  opts: ServeOptions | undefined;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly windowS = 0.3) {
    super();
  }
  async start(opts: ServeOptions): Promise<{ url: string | null; socket: string | null }> {
    this.opts = opts;
    FakeServe.started.push(this);
    this.timer = setInterval(() => this.window(), this.windowS * 1000);
    return { url: 'http://127.0.0.1:1', socket: opts.socket };
  }
  async load(m: ServedModel): Promise<void> {
    const name = readFileSync(m.file, 'utf8');
    if (FakeServe.refuse.has(name)) throw new Error(`onnxruntime: cannot load ${name}`);
    this.model = m;
    this.loads.push(m);
  }
  async stop(): Promise<void> {
    clearInterval(this.timer);
  }
  crash(): void {
    clearInterval(this.timer);
    this.emit('exit', null, 'SIGKILL');
  }
  private window(): void {
    const m = this.model;
    const p50 = m && FakeServe.traffic ? FakeServe.traffic[readFileSync(m.file, 'utf8')] : undefined;
    const n = p50 === undefined ? 0 : FakeServe.requests;
    const stats: ServeStats = {
      windowS: this.windowS,
      requests: n,
      errors: 0,
      rejected: 0,
      inFlight: 0,
      perVersion:
        m && p50 !== undefined
          ? [
              {
                version: m.version,
                level: m.level,
                requests: n,
                runP50Ms: p50,
                runP95Ms: p50 * 1.1,
                totalP50Ms: p50 + 1,
                totalP95Ms: p50 * 1.1 + 1,
              },
            ]
          : [],
    };
    this.emit('stats', stats);
  }
}

function startAgent(name: string, fitter: Fitter, modelPath: string, latency: LatencySource, serve: () => ServeBackend): Agent {
  return new Agent(
    loadAgentConfig({
      flags: {
        deviceId: name,
        stateDir: join(dir, name),
        train: { minutes: 0 },
        model: { path: modelPath, shapes: { x: [1] } },
        budgets: { latencyMs: 10 },
        threads: 1,
        metricsIntervalS: 0.3,
        probe: { intervalS: 0.2, runs: 5, stepDownAfter: 2, stepUpAfter: 3, headroom: 0.9, maxCpuPercent: 100 },
        mqtt: { url: broker.url },
        security: { operatorKeys: [op.pubFile] },
      },
    }),
    { fitter, log: () => undefined, latency, serve },
  );
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('served latency steps down and back up; probes run only when no traffic is served', async (t) => {
  const bigPath = join(dir, 'big.onnx');
  const smallPath = join(dir, 'small.onnx');
  writeFileSync(bigPath, 'big');
  writeFileSync(smallPath, 'small');
  const source = new ScriptedLatency();
  // probes always see a quiet box: only served figures can make the agent step
  source.p50 = { big: 5, small: 2.5 };
  FakeServe.traffic = null;
  FakeServe.started = [];
  const agent = startAgent(
    'dev-served',
    twoLevels(entry('big', bigPath, 6, 0), entry('small', smallPath, 3, 0.6)),
    bigPath,
    source,
    () => new FakeServe(),
  );
  t.teardown(() => agent.stop());
  const watch = await Watcher.connect(broker.url, ['edgefit/dev-served/metrics']);
  t.teardown(() => watch.close());
  const ev = events(agent);
  const deployed = ev.next('deployed', 60_000, (e) => e.data.candidateId === 'big');
  await agent.start();
  await deployed;
  const serve = FakeServe.started[0]!;
  t.equal(FakeServe.started.length, 1, 'one serve process');
  t.equal(serve.opts?.socket, join(dir, 'dev-served', 'serve.sock'), 'socket under the state folder');
  t.match(serve.model, { level: 0, label: 'fp32', threads: 1, shapes: { x: [1] } }, 'the fit level is what is served');

  // the application's requests get slow (15 ms > 10 ms budget) while probes still say 5 ms
  const down = ev.next('stepped-down', 30_000);
  FakeServe.traffic = { big: 15, small: 7.5 };
  const d = await down;
  t.match(d.data, { from: 'big', to: 'small', fromLevel: 0, toLevel: 1, liveP50Ms: 15, source: 'served' });
  t.equal(agent.level(), 1);
  t.match(serve.model, { level: 1, file: /versions/ }, 'the serve process serves the step');

  // while traffic is served, no probe runs (at most one was in flight when traffic began)
  const probesBefore = source.probes.length;
  await wait(1500);
  t.ok(source.probes.length <= probesBefore + 1, `no probes while served (${source.probes.length - probesBefore})`);
  const m = await watch.waitFor((x) => x.json().model.latencySource === 'served' && x.json().served?.runP50Ms === 7.5, 10_000);
  const metrics = m.json();
  t.ok(validate(metricsSchema, metrics).ok, 'metrics with a served block validate against the schema');
  t.match(metrics.served, { on: true, capture: false, requests: 20, runP95Ms: 8.25, totalP50Ms: 8.5 });
  t.ok(metrics.served.requestsPerS > 60, `req/s ${metrics.served.requestsPerS}`);
  t.equal(metrics.model.latencyP50Ms, 7.5);

  // the load ends: served small at 2.5 ms predicts 5 ms for big, within 9 ms: step up on served figures
  const up = ev.next('stepped-up', 30_000);
  FakeServe.traffic = { big: 5, small: 2.5 };
  t.match((await up).data, { from: 'small', to: 'big', toLevel: 0, liveP50Ms: 2.5, source: 'served' });
  t.equal(agent.level(), 0);

  // traffic stops: probes take over again
  FakeServe.traffic = null;
  const idleFrom = source.probes.length;
  await wait(2500);
  t.ok(source.probes.length > idleFrom, 'probes resume when nothing is served');
});

t.test('deploys go through the serve process; current.onnx follows the pointer with model-changed', async (t) => {
  const a = join(dir, 'a.onnx');
  const b = join(dir, 'b.onnx');
  const bad = join(dir, 'bad.onnx');
  writeFileSync(a, 'a');
  writeFileSync(b, 'b');
  writeFileSync(bad, 'bad');
  const source = new ScriptedLatency();
  // b at 8 ms predicts 16 ms for a (> 0.9 x 10): probes never step back up on their own
  source.p50 = { a: 1, b: 8, bad: 1 };
  FakeServe.traffic = null;
  FakeServe.started = [];
  FakeServe.refuse = new Set(['bad']);
  const fitter: Fitter = async () => ({
    chosenId: 'a',
    frontier: [entry('a', a, 1, 0), entry('b', b, 0.5, 0.5), entry('bad', bad, 0.2, 0.8)],
    referenceLatencyP50Ms: 1,
    fitter: 'test',
  });
  const agent = startAgent('dev-current', fitter, a, source, () => new FakeServe());
  t.teardown(() => agent.stop());
  const ev = events(agent);
  const first = ev.next('deployed', 60_000, (e) => e.data.candidateId === 'a');
  await agent.start();
  await first;
  const current = join(dir, 'dev-current', 'models', 'current.onnx');
  t.equal(readFileSync(current, 'utf8'), 'a', 'current.onnx holds the deployed bytes');
  const changedA = ev.all.find((e) => e.type === 'model-changed');
  t.match(changedA?.data, { path: current }, 'model-changed names the stable path');

  // a deploy by command: served first, then the pointer, then current.onnx and the event
  const watch = await Watcher.connect(broker.url, ['edgefit/dev-current/events', 'edgefit/dev-current/status']);
  t.teardown(() => watch.close());
  // the fake fit deploys before the agent's MQTT link may be up: command only once it says it
  // hears requests (retained 'online', sent after its SUBACK), or the request reaches no one
  await watch.waitFor((m) => m.topic.endsWith('/status') && m.json().state === 'online', 30_000, 0, 'status online');
  const changed = ev.next('model-changed', 30_000, (e) => e.data.candidateId === 'b');
  await watch.publish('edgefit/dev-current/request/deploy', op.signed('dev-current', 'deploy', 'd1', { candidateId: 'b' }));
  const c = await changed;
  t.equal(readFileSync(current, 'utf8'), 'b');
  t.equal(c.data.path, current);
  const versionFile = join(dir, 'dev-current', 'models', 'versions', `${String(c.data.version)}.onnx`);
  t.equal(statSync(current).ino, statSync(versionFile).ino, 'a hard link of the version file');
  t.match(c.data, { level: 1, candidateId: 'b' });
  const serve = FakeServe.started[0]!;
  t.match(serve.model, { level: 1, label: 'fp32 pruned 50% ch' });
  await watch.waitFor((m) => m.json().type === 'model-changed' && m.json().data.candidateId === 'b', 10_000, 0, 'model-changed over MQTT');

  // a version the serve process refuses is never deployed: current.onnx and the served model stay
  const failed = ev.next('deploy-failed', 30_000);
  await watch.publish('edgefit/dev-current/request/deploy', op.signed('dev-current', 'deploy', 'd2', { candidateId: 'bad' }));
  t.match((await failed).data, { error: /cannot load bad/ });
  t.equal(readFileSync(current, 'utf8'), 'b', 'current.onnx unchanged');
  t.match(serve.model, { label: 'fp32 pruned 50% ch' }, 'still serving b');

  // rollback: back to a, current.onnx too
  const back = ev.next('model-changed', 30_000, (e) => e.data.candidateId === 'a');
  await watch.publish('edgefit/dev-current/request/rollback', op.signed('dev-current', 'rollback', 'r1'));
  await back;
  t.notOk(
    ev.all.some((e) => e.type === 'stepped-up' || e.type === 'stepped-down'),
    'no step interfered',
  );
  t.equal(readFileSync(current, 'utf8'), 'a');
  t.match(serve.model, { level: 0 });
});

t.test('a serve process that dies is restarted with the current model, a bounded number of times', async (t) => {
  const a = join(dir, 'r.onnx');
  writeFileSync(a, 'r');
  const source = new ScriptedLatency();
  source.p50 = { r: 1 };
  FakeServe.started = [];
  FakeServe.refuse = new Set();
  const fitter: Fitter = async () => ({ chosenId: 'r', frontier: [entry('r', a, 1, 0)], referenceLatencyP50Ms: 1, fitter: 'test' });
  const agent = startAgent('dev-restart', fitter, a, source, () => new FakeServe());
  t.teardown(() => agent.stop());
  const ev = events(agent);
  const first = ev.next('deployed', 60_000, (e) => e.data.candidateId === 'r');
  await agent.start();
  await first;
  for (let i = 1; i <= 3; i++) {
    const again = ev.next('serve-restarted', 10_000);
    FakeServe.started.at(-1)!.crash();
    t.match((await again).data, { version: /-/ }, `restart ${i}`);
    t.equal(FakeServe.started.length, i + 1);
    t.match(FakeServe.started.at(-1)!.model, { level: 0, label: 'fp32' }, 'the new process serves the current model');
  }
  const gaveUp = ev.next('serve-failed', 10_000);
  FakeServe.started.at(-1)!.crash();
  t.match((await gaveUp).data, { restart: true });
  t.equal(FakeServe.started.length, 4, 'no fourth restart');
  t.notOk(agent.serving?.up, 'serving is off');
});
