// Step down/up the frontier. The step logic is tested with a scripted latency source (the
// prober's injected LatencySource), so it does not depend on how loaded the test box is: the
// script says which probes break the budget and the test checks that exactly the configured
// run of them steps down, and that predicted headroom steps back up. One end-to-end test runs
// the real probe child on real models and asserts only what load cannot break: with a budget
// no model can meet, live probes step the agent down and report the live p50 they measured.
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { Agent, type AgentDeps } from '../../src/agent/index.js';
import type { LatencySource } from '../../src/agent/prober.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import type { Fitter, FrontierEntry } from '../../src/fit/types.js';
import { parseModel, serializeModel } from '../../src/onnx/index.js';
import { ScriptedLatency, entry, events, twoLevels } from '../helpers/scripted.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { checkPayload } from '../../src/telemetry/validate.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-step-'));
const broker = await startBroker();
t.teardown(async () => {
  await broker.stop();
  cleanupDir(dir);
});

function startAgent(
  name: string,
  fitter: Fitter,
  budgetMs: number,
  modelPath: string,
  shapes: Record<string, number[]>,
  latency?: LatencySource,
  trainMinutes = 0,
  deps: Pick<AgentDeps, 'fitterHold' | 'parkMs' | 'log'> = {},
): Agent {
  return new Agent(
    loadAgentConfig({
      flags: {
        deviceId: name,
        stateDir: join(dir, name),
        // one fit unless asked: the training fit after it has its own test (test/agent/train-phase.test.ts)
        train: { minutes: trainMinutes },
        model: { path: modelPath, shapes },
        budgets: { latencyMs: budgetMs },
        threads: 1,
        metricsIntervalS: 1,
        probe: { intervalS: 0.2, runs: 5, stepDownAfter: 2, stepUpAfter: 3, headroom: 0.9, maxCpuPercent: 100 },
        // serving has its own tests (test/agent/serve-*.test.ts)
        serve: { enabled: false },
        mqtt: { url: broker.url },
      },
    }),
    { fitter, log: () => undefined, ...(latency ? { latency } : {}), ...deps },
  );
}

/**
 * Two levels over files that hold their names (never run: the scripted source only reads them),
 * 'big' at 6 ms and 'small' at 3 ms in the fit, and a source where the box is quiet: big 5 ms,
 * within the tests' 10 ms budget.
 */
function scriptedLevels(suffix: string): { bigPath: string; big: FrontierEntry; small: FrontierEntry; source: ScriptedLatency } {
  const bigPath = join(dir, `big${suffix}.onnx`);
  const smallPath = join(dir, `small${suffix}.onnx`);
  writeFileSync(bigPath, 'big');
  writeFileSync(smallPath, 'small');
  const source = new ScriptedLatency();
  source.p50 = { big: 5, small: 2.5 };
  return { bigPath, big: entry('big', bigPath, 6, 0), small: entry('small', smallPath, 3, 0.6), source };
}

t.test('scripted latencies: N probes over budget step down, M with predicted headroom step up', async (t) => {
  const { bigPath, big, small, source } = scriptedLevels('');
  const agent = startAgent('dev-scripted', twoLevels(big, small), 10, bigPath, { x: [1] }, source);
  t.teardown(() => agent.stop());
  const ev = events(agent);
  // first run: the original is deployed, then the fit's choice (the same bytes, recorded as 'big')
  const deployed = ev.next('deployed', 60_000, (e) => e.data.candidateId === 'big');
  await agent.start();
  t.match((await deployed).data, { candidateId: 'big', level: 0 });

  // the box gets slower: the big model now takes 15 ms; the small one 7.5 ms, within budget,
  // but scaled back up (x2) it would break it, so the agent must stay down while this lasts
  const down = ev.next('stepped-down', 30_000);
  source.p50 = { big: 15, small: 7.5 };
  const from = source.probes.length;
  const d = await down;
  t.match(d.data, { from: 'big', to: 'small', fromLevel: 0, toLevel: 1, liveP50Ms: 15, budgetMs: 10 });
  const over = source.probes.slice(from).filter((p) => p.model === 'big');
  t.same(
    over.map((p) => p.p50),
    [15, 15],
    'exactly stepDownAfter (2) probes over budget, then the step',
  );
  t.equal(agent.level(), 1);

  // a few probes of the small model under load: predicted 7.5 * 6/3 = 15 ms > 0.9 * 10, so no step up
  const at = source.probes.length;
  while (source.probes.length < at + 4) await new Promise((r) => setTimeout(r, 50));
  t.notOk(
    ev.all.some((e) => e.type === 'stepped-up'),
    'no step up while the big model would break the budget',
  );
  t.equal(agent.level(), 1);

  // load removed: small at 2.5 ms predicts 5 ms for the big one, within 9 ms: 3 probes step up
  const up = ev.next('stepped-up', 30_000);
  source.p50 = { big: 5, small: 2.5 };
  const quietFrom = source.probes.length;
  t.match((await up).data, { from: 'small', to: 'big', fromLevel: 1, toLevel: 0, liveP50Ms: 2.5 });
  const quiet = source.probes.slice(quietFrom).filter((p) => p.model === 'small' && p.p50 === 2.5);
  t.equal(quiet.length, 3, 'exactly stepUpAfter (3) probes with headroom, then the step');
  t.equal(agent.level(), 0);
});

t.test('real probes end to end: a budget no model meets steps down and reports the live p50', async (t) => {
  // two real, runnable models: PP-OCR cls and a copy differing in one metadata entry (its own
  // sha256, so its own version). Their frontier figures only matter for stepping up, which a
  // budget of 1 µs never allows; live p50s come from real probe children.
  const variant = join(dir, 'cls-b.onnx');
  const m = parseModel(readFileSync(CLS_MODEL));
  m.metadata.set('edgefit-test', 'variant-b');
  writeFileSync(variant, serializeModel(m));
  const budgetMs = 0.001;
  const agent = startAgent('dev-real', twoLevels(entry('big', CLS_MODEL, 2, 0), entry('small', variant, 1, 0.6)), budgetMs, CLS_MODEL, {
    x: [1, 3, 48, 192],
  });
  t.teardown(() => agent.stop());
  const ev = events(agent);
  // first run: the original is deployed, then the fit's choice (the same bytes, recorded as 'big')
  const deployed = ev.next('deployed', 60_000, (e) => e.data.candidateId === 'big');
  await agent.start();
  t.match((await deployed).data, { candidateId: 'big', level: 0 });
  const d = await ev.next('stepped-down', 120_000);
  t.match(d.data, { from: 'big', to: 'small', fromLevel: 0, toLevel: 1, budgetMs });
  t.ok((d.data.liveP50Ms as number) > budgetMs, `live p50 ${String(d.data.liveP50Ms)} ms measured by the probe child`);
  t.equal(agent.level(), 1);
});

t.test('a training that loses after a step-down says what stays deployed: the stepped-to model, not the fit choice', async (t) => {
  const { bigPath, big, small, source } = scriptedLevels('-trained');
  // set before start(): the step-down event the training fit waits for (rejects after 60 s)
  let stepped: Promise<unknown> | undefined;
  const fitter: Fitter = async (req, onProgress) => {
    if (!req.trainMinutes) return twoLevels(big, small)(req, onProgress);
    // the box slows while the training fit runs: the agent steps down before the training ends
    source.p50 = { big: 15, small: 2.5 };
    await stepped!;
    const training = { kind: 'distill' as const, minutes: 1, seconds: 60, steps: 10, heldOutBefore: 1, heldOutAfter: 1, improved: false };
    return {
      chosenId: 'big',
      frontier: [big, small],
      referenceLatencyP50Ms: 6,
      fitter: 'test-two-level',
      trained: [{ id: 'big-d1', fidelity: 0.9, latencyP50Ms: 6, training }],
    };
  };
  // the injected training stops at once when a probe holds it, so the slowdown the probes see is the box's
  const agent = startAgent('dev-train-stepped', fitter, 10, bigPath, { x: [1] }, source, 1, {
    fitterHold: (on, parked) => on && parked?.(),
  });
  t.teardown(() => agent.stop());
  stepped = events(agent).next('stepped-down', 60_000);
  const lines: string[] = [];
  agent.bus.on('event', (type, message) => type === 'training-rejected' && lines.push(message));
  await agent.start();
  const deadline = Date.now() + 60_000;
  while (lines.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.equal(lines.length, 1, 'one training-rejected event');
  t.match(lines[0], /did not beat big, which stays the fit's choice \(small, stepped to at run time, is deployed\)$/);
  t.notMatch(lines[0], /which stays deployed/, 'not the fit choice said to be deployed');
  t.equal(agent.level(), 1, 'still on the stepped-to level');
});

t.test("probes beside the agent's own training step nothing until the training has stopped at its gate", async (t) => {
  const { bigPath, big, small, source } = scriptedLevels('-own');
  let parks = false;
  let training: (() => void) | undefined;
  const started = new Promise<void>((r) => (training = r));
  let finish: (() => void) | undefined;
  const finished = new Promise<void>((r) => (finish = r));
  const fitter: Fitter = async (req, onProgress) => {
    if (!req.trainMinutes) return twoLevels(big, small)(req, onProgress);
    // the training takes the cores: every probe beside it times 15 ms
    source.p50 = { big: 15, small: 7.5 };
    training!();
    await Promise.race([finished, new Promise((r) => setTimeout(r, 90_000))]);
    return { chosenId: 'big', frontier: [big, small], referenceLatencyP50Ms: 6, fitter: 'test-two-level' };
  };
  const lines: string[] = [];
  const agent = startAgent('dev-own-load', fitter, 10, bigPath, { x: [1] }, source, 1, {
    // a training that does not stop (inside a long stretch without a gate) until `parks`
    fitterHold: (on, parked) => {
      if (on && parks) parked?.();
    },
    parkMs: 100,
    log: (l) => lines.push(l),
  });
  t.teardown(() => {
    finish!();
    return agent.stop();
  });
  const watch = await Watcher.connect(broker.url, ['edgefit/dev-own-load/metrics']);
  t.teardown(() => watch.close());
  const ev = events(agent);
  await agent.start();
  await started;
  const from = source.probes.length;
  while (source.probes.slice(from).filter((p) => p.model === 'big' && p.p50 === 15).length < 6) await new Promise((r) => setTimeout(r, 50));
  t.notOk(
    ev.all.some((e) => e.type === 'stepped-down'),
    'six probes over budget beside the training: no step down',
  );
  t.equal(agent.level(), 0);
  t.ok(
    lines.some((l) => /^live latency steps nothing while fit \d+ is training on this box$/.test(l)),
    'the log says why live figures step nothing',
  );
  // published all the same, marked, and judging no budget: the dashboard shows it as the agent's own load
  const busy = (await watch.waitFor((m) => m.json().model.latencyP50Ms === 15, 10_000, 0, 'a metrics payload with the busy figure')).json();
  t.ok(checkPayload('metrics', busy), 'valid against the metrics schema');
  t.match(busy.model.latencyBusy, /^fit \d+ is training on this box$/);
  t.equal(busy.meets.latency, null, '15 ms against a 10 ms budget: not judged');
  // the training now stops at its gate when held: the probes time the box, still slow: step down
  const down = ev.next('stepped-down', 30_000);
  const seen = watch.msgs.length;
  parks = true;
  t.match((await down).data, { from: 'big', to: 'small', liveP50Ms: 15 });
  const judged = (await watch.waitFor((m) => m.json().model.latencyBusy === undefined, 10_000, seen, 'an unmarked figure')).json();
  t.type(judged.meets.latency, 'boolean', 'a figure timed after the training stopped judges the budget');
});
