// The infeasible case end to end (issue 16, "Must show"): an agent with the real fitter (fitModel
// in its worker child) on the small real PP-OCR cls model, its real images as calibration data,
// and a latency budget no model can meet (1 µs). Whatever the search chose, the deployed model
// keeps the fidelity floor (the original, or an entry with fidelity >= the floor), and both the
// 'budgets-unmet' event and the metrics name latency as the budget that cannot be met, by how much.
// Kept short: three candidates, one thread.
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { ROOT, OCR_MODELS } from '../../devkit/paths.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { Agent } from '../../src/agent/index.js';
import { childFitter } from '../../src/agent/reference-fitter.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import { checkPayload } from '../../src/telemetry/validate.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-infeasible-'));
const broker = await startBroker();
const dev = 'dev-infeasible';
const pre = `edgefit/${dev}/`;
const w = await Watcher.connect(broker.url, [`${pre}#`]);
const fit = childFitter('test-infeasible', { maxCandidates: 3 });
t.teardown(async () => {
  fit.close();
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

t.test('an impossible latency budget: the floor holds and the shortfall names latency', async (t) => {
  const floor = 0.98;
  const agent = new Agent(
    loadAgentConfig({
      flags: {
        deviceId: dev,
        stateDir: join(dir, 'state'),
        // one fit: the training fit after it has its own test (test/agent/train-phase.test.ts)
        train: { minutes: 0 },
        model: { path: OCR_MODELS.cls.file, calib: join(ROOT, 'test/fixtures/ocr/cls'), shapes: { x: [...OCR_MODELS.cls.shape] } },
        budgets: { latencyMs: 0.001, minFidelity: floor },
        threads: 1,
        metricsIntervalS: 0.5,
        probe: { intervalS: 0.3, runs: 3, stepDownAfter: 1, stepUpAfter: 100, headroom: 0.9, maxCpuPercent: 100 },
        // serving has its own tests (test/agent/serve-*.test.ts)
        serve: { enabled: false },
        mqtt: { url: broker.url },
      },
    }),
    { fitter: fit.fitter, log: () => undefined },
  );
  t.teardown(() => agent.stop());
  const t0 = Date.now();
  await agent.start();
  const isEvent = (type: string) => (m: { topic: string; json(): any }) => m.topic === `${pre}events` && m.json().type === type;

  const done = (await w.waitFor(isEvent('fit-done'), 120_000, 0, 'fit-done')).json();
  t.comment(`fit ${done.data.fitId}: fitter chose ${done.data.chosenId} of ${done.data.levels} in ${Date.now() - t0} ms`);
  const unmet = checkPayload('event', (await w.waitFor(isEvent('budgets-unmet'), 10_000, 0, 'budgets-unmet')).json());
  t.comment(unmet.message);
  t.ok((unmet.data.shortfall as { latencyMs?: number }).latencyMs! > 0, 'the latency budget is missed, by a positive amount');
  t.match(unmet.message, /^latency [\d.]+ ms p50 vs budget 0\.0010 ms: cannot be met; keeping \S+ \(\S+ [\d.]+\)$/);
  t.ok(
    (unmet.data.keepingFidelity as number) >= floor,
    `keeping ${String(unmet.data.keeping)} at fidelity ${String(unmet.data.keepingFidelity)}`,
  );

  // what is deployed and probed keeps the floor, also after live probes broke the budget a few times
  const from = w.msgs.length;
  let probed = 0;
  const m = checkPayload(
    'metrics',
    (
      await w.waitFor(
        // (a figure the fit's own measuring took judges nothing: latencyBusy; the probes after it do)
        (x) =>
          x.topic === `${pre}metrics` &&
          x.json().fit?.id === done.data.fitId &&
          x.json().model.latencyP50Ms !== null &&
          x.json().model.latencyBusy === undefined &&
          ++probed >= 4,
        60_000,
        from,
        'metrics after some probes',
      )
    ).json(),
  );
  t.ok(
    m.model.id === 'original' || (m.model.fidelity !== null && m.model.fidelity >= floor),
    `deployed ${m.model.id} (fidelity ${m.model.fidelity})`,
  );
  t.equal(m.meets.latency, false);
  t.ok(m.fit!.shortfall!.latencyMs! > 0);
  t.match(m.fit!.message, /^latency .* cannot be met; keeping /);
});
