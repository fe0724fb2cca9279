// A deploy is all or nothing, end to end: an in-process agent on a real broker, real probe
// children and a real SQLite file serves a good model; a frontier entry onnxruntime refuses (a
// truncated model whose sha256 matches its entry) is deployed over it on request. The deploy
// fails with 'deploy-failed', and current.json, the active deployment row, ping, get-frontier
// and the metrics' model all still name the good model, which is still probed; after a restart too.
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { Watcher, type Msg } from '../helpers/mqtt-watch.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { Agent } from '../../src/agent/index.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import type { Fitter, FrontierEntry } from '../../src/fit/types.js';
import { Store } from '../../src/store/index.js';
import { makeOperator } from '../helpers/operator.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-deployfail-'));
const broker = await startBroker();
const dev = 'dev-deployfail';
const pre = `edgefit/${dev}/`;
const state = join(dir, 'state');
const w = await Watcher.connect(broker.url, [`${pre}#`]);
const op = makeOperator(join(dir, 'op'));
t.teardown(async () => {
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

function entry(id: string, path: string): FrontierEntry {
  const bytes = readFileSync(path);
  return {
    id,
    config: { structured: 0, unstructured: 0, quant: 'none', threads: 1 },
    modelPath: path,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    sizeBytes: bytes.length,
    latencyP50Ms: 2,
    latencyP95Ms: 3,
    modelRssMb: 10,
    fidelity: 1,
    meets: { latency: true, ram: true, fidelity: true },
  };
}
const badPath = join(dir, 'bad.onnx');
writeFileSync(badPath, readFileSync(CLS_MODEL).subarray(0, 5000));
const frontier = [entry('good', CLS_MODEL), entry('bad', badPath)];
const fitter: Fitter = async () => ({ chosenId: 'good', frontier, referenceLatencyP50Ms: 2, fitter: 'test-good-and-bad' });

function startAgent(): Agent {
  const cfg = loadAgentConfig({
    flags: {
      deviceId: dev,
      stateDir: state,
      // one fit: the training fit after it has its own test (test/agent/train-phase.test.ts)
      train: { minutes: 0 },
      model: { path: CLS_MODEL, shapes: { x: [1, 3, 48, 192] } },
      budgets: { latencyMs: 10_000 },
      threads: 1,
      metricsIntervalS: 0.5,
      probe: { intervalS: 0.5, runs: 2, stepDownAfter: 100, stepUpAfter: 100, headroom: 0.9, maxCpuPercent: 100 },
      // serving has its own tests (test/agent/serve-*.test.ts)
      serve: { enabled: false },
      mqtt: { url: broker.url },
      security: { operatorKeys: [op.pubFile] },
    },
  });
  return new Agent(cfg, { fitter, log: () => undefined });
}

const isEvent = (type: string) => (m: Msg) => m.topic === `${pre}events` && m.json().type === type;
const pointer = (): string => JSON.parse(readFileSync(join(state, 'models/current.json'), 'utf8')).current.version;
async function request(verb: string, txn: string, args: Record<string, unknown> = {}): Promise<any> {
  const from = w.msgs.length;
  await w.publish(`${pre}request/${verb}`, op.signed(dev, verb, txn, args));
  return (await w.waitFor((m) => m.topic === `${pre}response/${verb}` && m.json().txn === txn, 60_000, from, `${verb} response`)).json();
}
/** What the agent reports as deployed: ping, get-frontier, and a fresh metrics payload with a probed latency. */
async function reported(): Promise<{ ping: string; frontier: any; metrics: any }> {
  const ping = (await request('ping', `p-${w.msgs.length}`)).result.deployed as string;
  const f = (await request('get-frontier', `f-${w.msgs.length}`)).result;
  const from = w.msgs.length;
  const m = await w.waitFor((x) => x.topic === `${pre}metrics` && x.json().model.latencyP50Ms !== null, 30_000, from, 'probed metrics');
  return { ping, frontier: { deployed: f.deployed, level: f.level }, metrics: m.json().model };
}

t.test('a model onnxruntime refuses, deployed over a good one, leaves the good one current', async (t) => {
  const a1 = startAgent();
  const deployed = await (async () => {
    // the original is deployed first (first run), then the fit's choice: the same bytes, recorded as 'good'
    const p = w.waitFor((m) => isEvent('deployed')(m) && m.json().data.candidateId === 'good', 60_000, 0, 'the fit deployed');
    await a1.start();
    return (await p).json().data.version as string;
  })();
  t.equal(pointer(), deployed);

  const from = w.msgs.length;
  const r = await request('deploy', 'd-bad', { candidateId: 'bad' });
  t.equal(r.ok, false, 'the deploy request fails');
  t.match(r.error, { code: 'EVAL', message: /onnxruntime/ });
  const failed = (await w.waitFor(isEvent('deploy-failed'), 10_000, from, 'deploy-failed')).json();
  t.equal(failed.txn, 'd-bad');
  t.match(failed.data, { current: deployed, error: /onnxruntime/ });
  t.match(failed.message, `${deployed} stays deployed`);
  t.notOk(w.msgs.slice(from).some(isEvent('deployed')), "no 'deployed' event");

  t.equal(pointer(), deployed, 'current.json still names the good model');
  t.match(await reported(), {
    ping: deployed,
    frontier: { deployed: 'good', level: 0 },
    metrics: { id: 'good', version: deployed, level: 0 },
  });
  await a1.stop();

  const s = new Store(join(state, 'state.db'));
  t.equal(s.activeDeployment()?.version, deployed, 'the good deployment is the active row');
  t.equal(s.deploymentByVersion(failed.data.version)?.state, 'failed');
  t.same(s.pendingDeployments(), []);
  s.close();

  // restart: the good model is served and reported; nothing was interrupted
  const restart = w.msgs.length;
  const a2 = startAgent();
  t.teardown(() => a2.stop());
  await a2.start();
  await w.waitFor((m) => m.topic === `${pre}status` && m.json().state === 'online', 30_000, restart, 'online again');
  t.equal(pointer(), deployed);
  t.match(await reported(), { ping: deployed, frontier: { deployed: 'good', level: 0 }, metrics: { id: 'good', version: deployed } });
  t.notOk(
    w.msgs.slice(restart).some((m) => isEvent('deploy-interrupted')(m) || isEvent('deployed')(m)),
    'no interrupted deploy, no redeploy',
  );
});
