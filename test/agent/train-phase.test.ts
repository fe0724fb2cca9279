// The agent's training fit (issue 18): after the first fit is deployed, a second fit with the
// configured training minutes runs in the first one's folder and, when it chooses something else
// (the trained candidate), is hot-swapped in; when training does not win, nothing is redeployed;
// a restart with a finished training fit goes straight to it. A training that lost is said once
// (training-rejected, with its scores) and in every metrics message (fit.training). The fitter is injected: what it
// does with trainMinutes is tested in test/fit/ and test/train/.
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { CLI } from '../../devkit/paths.js';
import { Agent } from '../../src/agent/index.js';
import { loadAgentConfig, TRAIN_MINUTES_DEFAULT } from '../../src/config/agent.js';
import type { FitRequest, Fitter, FrontierEntry } from '../../src/fit/types.js';
import { parseModel, serializeModel } from '../../src/onnx/index.js';
import type { HoldLink } from '../../src/agent/train-hold.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-trainphase-'));
const broker = await startBroker();
const w = await Watcher.connect(broker.url, ['edgefit/#']);
t.teardown(async () => {
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

function variantOf(name: string): string {
  const m = parseModel(readFileSync(CLS_MODEL));
  m.metadata.set('edgefit-test', name);
  const p = join(dir, `${name}.onnx`);
  writeFileSync(p, serializeModel(m));
  return p;
}

function entry(id: string, path: string, fidelity: number, train?: number): FrontierEntry {
  const bytes = readFileSync(path);
  return {
    id,
    config: { structured: 0.3, unstructured: 0, quant: 'none', threads: 1, ...(train ? { train } : {}) },
    modelPath: path,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    sizeBytes: bytes.length,
    latencyP50Ms: 1,
    latencyP95Ms: 1.2,
    modelRssMb: 10,
    fidelity,
    meets: { latency: true, ram: true, fidelity: true },
  };
}

function startAgent(name: string, fitter: Fitter, minutes: number | undefined, fitterHold?: HoldLink, logs?: string[]): Agent {
  return new Agent(
    loadAgentConfig({
      flags: {
        deviceId: name,
        stateDir: join(dir, name),
        ...(minutes === undefined ? {} : { train: { minutes } }),
        model: { path: CLS_MODEL, shapes: { x: [1, 3, 48, 192] } },
        budgets: { latencyMs: 1000, minFidelity: 0.9 },
        threads: 1,
        metricsIntervalS: 0.3,
        probe: { intervalS: 0.2, runs: 3, stepDownAfter: 2, stepUpAfter: 3, headroom: 0.9, maxCpuPercent: 100 },
        // serving has its own tests (test/agent/serve-*.test.ts)
        serve: { enabled: false },
        mqtt: { url: broker.url },
      },
    }),
    { fitter, log: (line: string) => void logs?.push(line), ...(fitterHold ? { fitterHold } : {}) },
  );
}

const ev =
  (dev: string, type: string, where: (d: Record<string, unknown>) => boolean = () => true) =>
  (m: { topic: string; json(): any }) =>
    m.topic === `edgefit/${dev}/events` && m.json().type === type && where(m.json().data);

t.test('the training fit runs after the first, in its folder, and its trained choice is swapped in', async (t) => {
  const dev = 'dev-train';
  const plain = variantOf('plain');
  const trained = variantOf('trained');
  const requests: FitRequest[] = [];
  const fitter: Fitter = async (req, onProgress) => {
    requests.push(req);
    const base = entry('l0.300', plain, 0.95);
    if (!req.trainMinutes) return { chosenId: base.id, frontier: [base], referenceLatencyP50Ms: 2, fitter: 'test' };
    // a training step's report: the dashboard's live loss curve is drawn from its point
    onProgress({
      fraction: 0.5,
      stage: 'training',
      message: 'step 40, loss 0.0210, 30 of 420 s',
      train: { step: 40, loss: 0.021, heldOut: { step: 32, loss: 0.025 } },
    });
    const t2 = entry('l0.300-train7', trained, 0.99, req.trainMinutes);
    const training = {
      kind: 'distill' as const,
      minutes: 7,
      seconds: 400,
      steps: 900,
      heldOutBefore: 0.03,
      heldOutAfter: 0.02,
      improved: true,
      frozen: { layers: 12, stride: 16 },
    };
    return {
      chosenId: t2.id,
      frontier: [t2],
      referenceLatencyP50Ms: 2,
      fitter: 'test',
      trained: [{ id: t2.id, fidelity: 0.99, latencyP50Ms: 1, training }],
    };
  };
  const from = w.msgs.length;
  const a = startAgent(dev, fitter, 7);
  await a.start();
  await w.waitFor(
    ev(dev, 'deployed', (d) => d.candidateId === 'l0.300'),
    60_000,
    from,
    'the first fit deployed',
  );
  const swapped = await w.waitFor(
    ev(dev, 'deployed', (d) => d.candidateId === 'l0.300-train7'),
    60_000,
    from,
    'the trained choice deployed',
  );
  t.ok(swapped, 'the trained candidate was hot-swapped in');
  t.notOk(w.msgs.slice(from).some(ev(dev, 'training-rejected')), 'a training that won is not reported as rejected');
  const won = await w.waitFor(
    (x) => x.topic === `edgefit/${dev}/metrics` && x.json().fit?.training?.deployed === true,
    10_000,
    from,
    'metrics say the trained candidate is served',
  );
  t.match(won.json().fit.training, { candidateId: 'l0.300-train7', steps: 900, judged: null, won: true, deployed: true });
  t.same(won.json().fit.training.frozen, { layers: 12, stride: 16 }, 'with the stem its training left frozen');
  t.equal(requests.length, 2, 'two fits');
  t.equal(requests[0]!.trainMinutes, undefined, 'the first without training');
  t.equal(requests[0]!.trainFrom, undefined, 'nothing to train from in the first');
  t.equal(requests[1]!.trainMinutes, 7, 'the second with the configured minutes');
  t.same(
    requests[1]!.trainFrom,
    { structured: 0.3, unstructured: 0, quant: 'none', threads: 1 },
    'training the model the first fit deployed',
  );
  t.equal(requests[1]!.outputDir, requests[0]!.outputDir, "in the first fit's folder (its candidates are cache hits)");
  const progress = w.msgs.slice(from).find(ev(dev, 'fit-progress', (d) => d.stage === 'training'));
  t.match(progress?.json(), {
    message: 'training 50%: step 40, loss 0.0210, 30 of 420 s',
    data: { stage: 'training', train: { step: 40, loss: 0.021, heldOut: { step: 32, loss: 0.025 } } },
  });
  const started = w.msgs.slice(from).filter(ev(dev, 'fit-started'));
  t.match(started[1]!.json().message, /training l0\.300, the choice of fit \d+, for up to 7 min \(low priority\)/);
  await a.stop();

  // a restart: the finished training fit is what the agent deploys, with no new fit and no redeploy
  const again = w.msgs.length;
  const logs: string[] = [];
  const b = startAgent(dev, fitter, 7, undefined, logs);
  await b.start();
  await new Promise((r) => setTimeout(r, 3000));
  await b.stop();
  t.equal(requests.length, 2, 'no fit after the restart');
  t.notOk(w.msgs.slice(again).some(ev(dev, 'deployed')), 'nothing redeployed');
  t.ok(
    logs.some((l) => /^fit \d+: l0\.300-train7 is deployed and keeps the budgets' floor, so it stays$/.test(l)),
    `the console says what it serves: ${logs.filter((l) => l.startsWith('fit ')).join(' | ')}`,
  );
});

t.test('by default the agent trains for TRAIN_MINUTES_DEFAULT after its first fit; 0 turns it off', async (t) => {
  t.equal(TRAIN_MINUTES_DEFAULT, 12, 'the documented default (README, config description)');
  t.equal(loadAgentConfig({ flags: {} }).train.minutes, TRAIN_MINUTES_DEFAULT, 'the config default');
  t.equal(loadAgentConfig({ flags: { train: { minutes: 0 } } }).train.minutes, 0, 'train.minutes 0 is accepted');
  const r = spawnSync(process.execPath, [CLI, 'agent', '--train-minutes', '-1'], { encoding: 'utf8' });
  t.equal(r.status, 2, 'a bad --train-minutes exits 2');
  t.match(r.stderr, /^edgefit: --train-minutes must be 0 to 1440 minutes, got -1\n$/, 'in one usage line');
  // the default path: an agent configured with nothing about training runs the second, training fit
  const dev = 'dev-train-default';
  const plain = variantOf('default');
  const requests: FitRequest[] = [];
  const fitter: Fitter = async (req) => {
    requests.push(req);
    const base = entry('l0.300', plain, 0.95);
    return { chosenId: base.id, frontier: [base], referenceLatencyP50Ms: 2, fitter: 'test' };
  };
  const from = w.msgs.length;
  const a = startAgent(dev, fitter, undefined);
  t.teardown(() => a.stop());
  await a.start();
  const deadline = Date.now() + 60_000;
  while (w.msgs.slice(from).filter(ev(dev, 'fit-done')).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.same(
    requests.map((q) => q.trainMinutes),
    [undefined, TRAIN_MINUTES_DEFAULT],
    'the first fit without training, then a training fit of the default minutes',
  );
});

t.test('a training fit whose choice is not a trained candidate redeploys nothing', async (t) => {
  // its search re-times and may land on an untrained neighbour by noise alone: not a reason to swap
  const dev = 'dev-train-same';
  const plain = variantOf('same');
  const neighbour = variantOf('neighbour');
  let calls = 0;
  const fitter: Fitter = async (req) => {
    calls++;
    const base = entry('l0.300', plain, 0.95);
    if (!req.trainMinutes) return { chosenId: base.id, frontier: [base], referenceLatencyP50Ms: 2, fitter: 'test' };
    const other = entry('l0.250', neighbour, 0.96);
    // what it trained measured below the neighbour: off the frontier, but listed as trained
    const training = {
      kind: 'distill' as const,
      minutes: 3,
      seconds: 170,
      steps: 334,
      heldOutBefore: 0.002,
      heldOutAfter: 0.002,
      improved: false,
      judged: { name: 'boxF1', before: 0.9967, after: 0.9967, finer: { name: 'maskIoU', before: 0.88, after: 0.9 } },
    };
    return {
      chosenId: other.id,
      frontier: [other, base],
      referenceLatencyP50Ms: 2,
      fitter: 'test',
      trained: [{ id: 'l0.300-d3', fidelity: 0.94, latencyP50Ms: 1, training }],
    };
  };
  const from = w.msgs.length;
  const a = startAgent(dev, fitter, 3);
  t.teardown(() => a.stop());
  await a.start();
  await w.waitFor(
    ev(dev, 'deployed', (d) => d.candidateId === 'l0.300'),
    60_000,
    from,
    'the first fit deployed',
  );
  const deadline = Date.now() + 30_000;
  while (w.msgs.slice(from).filter(ev(dev, 'fit-done')).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.equal(w.msgs.slice(from).filter(ev(dev, 'fit-done')).length, 2, 'the training fit finished too');
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(calls, 2, 'both fits ran');
  const deploys = w.msgs
    .slice(from)
    .filter(ev(dev, 'deployed'))
    .map((m) => m.json().data.candidateId);
  t.same(deploys, [null, 'l0.300'], 'the original, then the first fit: nothing after the training fit');
  // said once as an event, with the scores, and in every metrics message after it
  const rejected = w.msgs.slice(from).filter(ev(dev, 'training-rejected'));
  t.equal(rejected.length, 1, 'one training-rejected event');
  t.match(
    rejected[0]!.json().message,
    /^training fit \d+: distillation of l0\.300-d3: 334 steps in 2\.8 min; boxF1 0\.9967 -> 0\.9967 \(maskIoU 0\.8800 -> 0\.9000\) on held-out images, fidelity 0\.940; it did not beat l0\.300, which stays deployed$/,
  );
  t.match(rejected[0]!.json().data, { kept: 'l0.300', trained: [{ id: 'l0.300-d3', training: { steps: 334 } }] });
  const m = await w.waitFor(
    (x) => x.topic === `edgefit/${dev}/metrics` && x.json().fit?.training?.candidateId === 'l0.300-d3',
    10_000,
    from,
    'metrics name the training',
  );
  t.match(m.json().fit.training, {
    kind: 'distill',
    steps: 334,
    judged: { name: 'boxF1', after: 0.9967, finer: { name: 'maskIoU', after: 0.9 } },
    fidelity: 0.94,
    won: false,
    deployed: false,
  });
  await a.stop();

  // a restart keeps the first fit's choice too (the training fit's untrained neighbour is not deployed)
  const again = w.msgs.length;
  const b = startAgent(dev, fitter, 3);
  await b.start();
  await new Promise((r) => setTimeout(r, 3000));
  await b.stop();
  t.equal(calls, 2, 'no fit after the restart');
  t.notOk(w.msgs.slice(again).some(ev(dev, 'deployed')), 'nothing redeployed: l0.300 stays');
});

t.test('served traffic, and each live probe, hold a running training fit; quiet releases it', async (t) => {
  const dev = 'dev-train-hold';
  const plain = variantOf('held');
  const holds: boolean[] = [];
  let training: (() => void) | undefined;
  const trainingStarted = new Promise<void>((r) => (training = r));
  let release: (() => void) | undefined;
  const released = new Promise<void>((r) => (release = r));
  const fitter: Fitter = async (req) => {
    const base = entry('l0.300', plain, 0.95);
    if (req.trainMinutes) {
      training!();
      await Promise.race([released, new Promise((r) => setTimeout(r, 90_000))]);
    }
    return { chosenId: base.id, frontier: [base], referenceLatencyP50Ms: 2, fitter: 'test' };
  };
  const from = w.msgs.length;
  // an injected fitter's training stops at once when held: it says so (a real child says so at its gate)
  const a = startAgent(dev, fitter, 5, (on, parked) => {
    holds.push(on);
    if (on) parked?.();
  });
  t.teardown(() => a.stop());
  await a.start();
  await trainingStarted;
  // no traffic: the live probes (every 0.2 s here) each hold training while they time the model
  const until = async (what: string, ok: () => boolean) => {
    const end = Date.now() + 30_000;
    while (!ok() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    t.ok(ok(), what);
  };
  await until('a probe held training and let it go', () => holds.length >= 2);
  t.same(holds.slice(0, 2), [true, false], 'held for the probe, released after it');
  t.ok(
    holds.every((h, i) => h === (i % 2 === 0)),
    'hold and release alternate (told only on a change)',
  );
  // traffic: held until 15 s after the last busy window, probes or not
  const stats = (requests: number) => ({ windowS: 5, requests, errors: 0, rejected: 0, inFlight: 0, perVersion: [] });
  a.bus.emit('serve:stats', stats(40));
  a.bus.emit('serve:stats', stats(12));
  const heldAt = holds.length;
  await w.waitFor(ev(dev, 'training-held'), 10_000, from, 'training-held event');
  t.equal(w.msgs.slice(from).filter(ev(dev, 'training-held')).length, 1, 'one event for two busy windows');
  await w.waitFor(ev(dev, 'training-resumed'), 30_000, from, 'training-resumed event after quiet time');
  t.ok(holds.slice(heldAt).length <= 2, `no flapping while traffic held it (${holds.slice(heldAt).join(',')})`);
  release!();
  const deadline = Date.now() + 30_000;
  while (w.msgs.slice(from).filter(ev(dev, 'fit-done')).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.equal(w.msgs.slice(from).filter(ev(dev, 'fit-done')).length, 2, 'the training fit finished');
});
