// First run (issue 16): with nothing deployed the agent deploys the original at once and times it
// live with the fit's protocol, so the device reports a working model while the fit runs; a slow
// (injected) fitter's choice is then hot-swapped in. A fit that chooses the bytes already served
// is only recorded. At run time the fidelity floor holds: a fit's choice below it is replaced by
// the best entry keeping it (with 'budgets-unmet' naming the budget), and scripted over-budget
// probes step down only as far as the floor allows.
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { Agent } from '../../src/agent/index.js';
import type { LatencySource } from '../../src/agent/prober.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import type { Budgets, Fitter, FrontierEntry } from '../../src/fit/types.js';
import { parseModel, serializeModel } from '../../src/onnx/index.js';
import { checkPayload } from '../../src/telemetry/validate.js';
import { ScriptedLatency } from '../helpers/scripted.js';
import { fitOriginalMs, suspectLive } from '../../src/agent/original.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-firstrun-'));
const broker = await startBroker();
const w = await Watcher.connect(broker.url, ['edgefit/#']);
t.teardown(async () => {
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

function entry(id: string, path: string, latencyP50Ms: number, fidelity: number): FrontierEntry {
  const bytes = readFileSync(path);
  return {
    id,
    config: { structured: fidelity < 1 ? 0.5 : 0, unstructured: 0, quant: 'none', threads: 1 },
    modelPath: path,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    sizeBytes: bytes.length,
    latencyP50Ms,
    latencyP95Ms: latencyP50Ms * 1.2,
    modelRssMb: 10,
    fidelity,
    meets: { latency: true, ram: true, fidelity: fidelity >= 0.98 },
  };
}

function startAgent(
  name: string,
  fitter: Fitter,
  budgets: Budgets,
  modelPath: string,
  shapes: Record<string, number[]>,
  latency?: LatencySource,
): Agent {
  return new Agent(
    loadAgentConfig({
      flags: {
        deviceId: name,
        stateDir: join(dir, name),
        // one fit: the training fit after it has its own test (test/agent/train-phase.test.ts)
        train: { minutes: 0 },
        model: { path: modelPath, shapes },
        budgets,
        threads: 1,
        metricsIntervalS: 0.3,
        probe: { intervalS: 0.2, runs: 3, stepDownAfter: 2, stepUpAfter: 3, headroom: 0.9, maxCpuPercent: 100 },
        // serving has its own tests (test/agent/serve-*.test.ts)
        serve: { enabled: false },
        mqtt: { url: broker.url },
      },
    }),
    { fitter, log: () => undefined, ...(latency ? { latency } : {}) },
  );
}

const ev =
  (dev: string, type: string, where: (d: Record<string, unknown>) => boolean = () => true) =>
  (m: { topic: string; json(): any }) =>
    m.topic === `edgefit/${dev}/events` && m.json().type === type && where(m.json().data);

/** A real, runnable model with its own bytes: PP-OCR cls with one more metadata entry. */
function variantOf(name: string): string {
  const m = parseModel(readFileSync(CLS_MODEL));
  m.metadata.set('edgefit-test', name);
  const p = join(dir, `${name}.onnx`);
  writeFileSync(p, serializeModel(m));
  return p;
}

t.test('the original is deployed, timed and reported before a slow fit finishes; then the fit is swapped in', async (t) => {
  const dev = 'dev-first';
  const variant = variantOf('fitted');
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let fitting = false;
  const fitter: Fitter = async () => {
    fitting = true;
    await gate;
    return { chosenId: 'fitted', frontier: [entry('fitted', variant, 0.5, 1)], referenceLatencyP50Ms: 1, fitter: 'test-slow' };
  };
  const agent = startAgent(dev, fitter, { latencyFactor: 0.5, minFidelity: 0.98 }, CLS_MODEL, { x: [1, 3, 48, 192] });
  t.teardown(() => agent.stop());
  const from = w.msgs.length;
  const t0 = Date.now();
  await agent.start();

  const first = (await w.waitFor(ev(dev, 'deployed'), 60_000, from, 'the original deployed')).json();
  t.match(first.data, { candidateId: null, fitId: null });
  t.ok(Date.now() - t0 < 60_000, `the original deployed ${Date.now() - t0} ms after start`);
  // metrics before the fit: the original is served, timed live, and a 0.5x budget is 0.5 x that figure
  const m = checkPayload(
    'metrics',
    (
      await w.waitFor(
        (x) => x.topic === `edgefit/${dev}/metrics` && x.json().fit?.originalLatencyMs > 0,
        60_000,
        from,
        'metrics with the live original',
      )
    ).json(),
  );
  t.equal(m.model.id, 'original');
  t.equal(m.model.version, first.data.version);
  t.equal(m.fit!.id, null, 'no fit yet');
  t.same(
    [m.fit!.task, m.fit!.fidelityMetric],
    ['classify', 'top1'],
    "before a fit the floor's metric is the task's, read from the model's graph",
  );
  t.equal(m.budgets.latencyFactor, 0.5);
  t.equal(m.budgets.effectiveLatencyMs, 0.5 * m.fit!.originalLatencyMs!, 'relative budget judged on the live original');
  t.ok(fitting, 'the fit is running meanwhile');
  t.notOk(w.msgs.slice(from).some(ev(dev, 'fit-done')), 'and has not finished');

  release();
  const swapped = (
    await w.waitFor(
      ev(dev, 'deployed', (d) => d.candidateId === 'fitted'),
      60_000,
      from,
      'the fit swapped in',
    )
  ).json();
  t.not(swapped.data.version, first.data.version, 'a new version');
  t.equal(JSON.parse(readFileSync(join(dir, dev, 'models/current.json'), 'utf8')).current.candidateId, 'fitted');
  t.equal(agent.level(), 0);
});

t.test("a fit that chooses the original's own bytes only records the fit and level", async (t) => {
  const dev = 'dev-same';
  const fitter: Fitter = async () => ({
    chosenId: 'same',
    frontier: [entry('same', CLS_MODEL, 1, 1)],
    referenceLatencyP50Ms: 1,
    fitter: 'test-same',
  });
  const agent = startAgent(dev, fitter, { latencyMs: 10_000 }, CLS_MODEL, { x: [1, 3, 48, 192] });
  t.teardown(() => agent.stop());
  const from = w.msgs.length;
  await agent.start();
  const first = (await w.waitFor(ev(dev, 'deployed'), 60_000, from, 'the original deployed')).json();
  const again = (
    await w.waitFor(
      ev(dev, 'deployed', (d) => d.candidateId === 'same'),
      60_000,
      from,
      'the fit recorded',
    )
  ).json();
  t.equal(again.data.version, first.data.version, 'the same version: nothing written or swapped');
  t.match(again.data, { fitId: 1, level: 0 });
  t.notOk(w.msgs.slice(from).some(ev(dev, 'deploy-failed')), 'no failed deploy');
  t.equal(w.msgs.slice(from).filter(ev(dev, 'deploy-started')).length, 1, 'one deploy started: the original');
  const ptr = JSON.parse(readFileSync(join(dir, dev, 'models/current.json'), 'utf8'));
  t.match(ptr, { current: { version: first.data.version, candidateId: 'same', fitId: 1 }, previous: null });
});

t.test('a choice below the floor is not deployed; over-budget probes step down only as far as the floor', async (t) => {
  const dev = 'dev-floor';
  const files = Object.fromEntries(
    ['orig', 'big', 'mid', 'tiny'].map((n) => {
      const p = join(dir, `${n}.onnx`);
      writeFileSync(p, n);
      return [n, p];
    }),
  );
  // the fitter chooses 'tiny' (fast, fidelity 0.5): a foreign or old fit that ignored the floor
  const frontier = [entry('big', files.big!, 8, 1), entry('mid', files.mid!, 6, 0.99), entry('tiny', files.tiny!, 1, 0.5)];
  const fitter: Fitter = async () => ({ chosenId: 'tiny', frontier, referenceLatencyP50Ms: 8, fitter: 'test-below-floor' });
  const source = new ScriptedLatency();
  source.p50 = { orig: 8, big: 8, mid: 6, tiny: 1 }; // every model but tiny breaks the 2 ms budget, always
  const agent = startAgent(dev, fitter, { latencyMs: 2, minFidelity: 0.98 }, files.orig!, { x: [1] }, source);
  t.teardown(() => agent.stop());
  const from = w.msgs.length;
  await agent.start();
  const unmet = (await w.waitFor(ev(dev, 'budgets-unmet'), 60_000, from, 'budgets-unmet')).json();
  checkPayload('event', unmet);
  t.match(unmet.data, { keeping: 'mid', shortfall: { latencyMs: 4 } });
  t.match(unmet.message, /^latency 6\.0 ms p50 vs budget 2\.0 ms: cannot be met; keeping mid \(fidelity 0\.990\)$/);
  const d = (
    await w.waitFor(
      ev(dev, 'deployed', (x) => x.fitId !== null),
      60_000,
      from,
      'the fit deployed',
    )
  ).json();
  t.equal(d.data.candidateId, 'mid', "the best entry keeping the floor, not the fit's 'tiny'");

  // many over-budget probes later: still on 'mid', never stepped to 'tiny'
  const at = source.probes.length;
  while (source.probes.length < at + 12) await new Promise((r) => setTimeout(r, 50));
  t.notOk(w.msgs.slice(from).some(ev(dev, 'stepped-down')), 'no step down below the floor');
  t.equal(agent.level(), 1);
  t.notOk(
    source.probes.some((p) => p.model === 'tiny'),
    'tiny was never loaded',
  );
  const m = checkPayload(
    'metrics',
    (
      await w.waitFor(
        (x) => x.topic === `edgefit/${dev}/metrics` && x.json().fit?.id !== null && x.json().fit,
        10_000,
        from,
        'metrics after the fit',
      )
    ).json(),
  );
  t.match(m.fit, { keeping: 'mid', shortfall: { latencyMs: 4 }, message: /cannot be met; keeping mid/ });
});

t.test(
  'a first timing of the original slowed by a busy box is taken again once the fit timed it well below that beside its candidates',
  async (t) => {
    t.ok(suspectLive(300, 100), 'live 3x the fit: suspect');
    t.notOk(suspectLive(110, 100), 'within RETIME_RATIO of the fit: kept');
    t.notOk(suspectLive(null, 100), 'not timed yet');
    t.notOk(suspectLive(300, 0), 'no fit figure');
    const e = (ms: number | undefined, rounds: boolean) => ({
      ...entry('e', CLS_MODEL, 1, 1),
      ...(ms !== undefined ? { referenceP50Ms: ms } : {}),
      ...(rounds ? { rounds: [{ referenceP50Ms: ms ?? 0, candidateP50Ms: 1, candidateP95Ms: 1 }] } : {}),
    });
    t.equal(fitOriginalMs([e(300, false), e(100, true), e(90, true), e(400, true)], 300), 100, "the median of the entries' rounds");
    t.equal(fitOriginalMs([e(300, false)], 300), 300, 'no side-by-side entry: the fit reference');

    const dev = 'dev-retime';
    const files = Object.fromEntries(
      ['orig-rt', 'fast-rt'].map((n) => {
        const p = join(dir, `${n}.onnx`);
        writeFileSync(p, n);
        return [n, p];
      }),
    );
    // the first 20-run timing of the original meets a busy box (300 ms); every later one 100 ms
    const timings: number[] = [];
    const source = new (class extends ScriptedLatency {
      override async measure(runs: number) {
        if (this.model !== 'orig-rt' || runs !== 20) return super.measure(runs);
        const p50 = timings.length === 0 ? 300 : 100;
        timings.push(p50);
        return { p50, p95: p50, runs };
      }
    })();
    source.p50 = { 'orig-rt': 100, 'fast-rt': 40 };
    // as on the box: the fit's lone first timing of the original met the same busy start (300 ms);
    // its rounds beside the candidate timed it at 100
    const fast = {
      ...entry('fast-rt', files['fast-rt']!, 40, 1),
      referenceP50Ms: 100,
      rounds: [1, 2, 3].map(() => ({ referenceP50Ms: 100, candidateP50Ms: 40, candidateP95Ms: 48 })),
    };
    const fitter: Fitter = async () => ({ chosenId: 'fast-rt', frontier: [fast], referenceLatencyP50Ms: 300, fitter: 'test-retime' });
    const agent = startAgent(dev, fitter, { latencyFactor: 0.5, minFidelity: 0.98 }, files['orig-rt']!, { x: [1] }, source);
    t.teardown(() => agent.stop());
    const from = w.msgs.length;
    await agent.start();
    await w.waitFor(
      ev(dev, 'deployed', (d) => d.candidateId === 'fast-rt'),
      60_000,
      from,
      'the fit deployed',
    );
    t.same(timings, [300, 100], 'the original timed twice, the second time before the fit is deployed');
    const m = checkPayload(
      'metrics',
      (
        await w.waitFor(
          (x) => x.topic === `edgefit/${dev}/metrics` && x.json().model?.id === 'fast-rt',
          10_000,
          from,
          'metrics after the fit',
        )
      ).json(),
    );
    t.equal(m.fit!.originalLatencyMs, 100, 'the lower live figure is kept');
    t.equal(m.budgets.effectiveLatencyMs, 50, 'and the 0.5x budget is judged on it');
  },
);
