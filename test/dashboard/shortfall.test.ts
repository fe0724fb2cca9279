// Budgets and shortfalls on both pages (issue 16), in a real headless Chromium against a real
// broker: a device before its first fit shows the matched profile's budgets, a relative latency
// resolved on the original's live p50 ("0.5x of the original = 47.0 ms") and the floor named
// 'fidelity'; a device whose fit could not meet its budgets shows which and by how much, in the
// agent's words, instead of a bare cross; the metric's name comes with the floor. The payloads
// are what an agent sends (validated against the metrics schema before they are published). A
// training that ran and did not beat the deployed model (issue 18) is shown with its scores.
import t from 'tap';
import { connectAsync } from 'mqtt';
import { PAYLOAD_VERSION, type FitStatus, type MetricsPayload } from '../../src/telemetry/payloads.js';
import { checkPayload } from '../../src/telemetry/validate.js';
import { browserSkipReason, CHROMIUM, CHROMIUM_ARGS, metricsPayload, onlineStatus, until } from './support.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker } from '../../devkit/broker.js';
import { startDashboard } from '../../src/dashboard/index.js';

const UNMET = 'latency 62 ms p50 vs budget 40 ms: cannot be met; keeping original (boxF1 1.000)';

function metrics(
  deviceId: string,
  seq: number,
  budgets: MetricsPayload['budgets'],
  fit: FitStatus,
  modelId: string,
  meetsLatency: boolean | null,
): MetricsPayload {
  return metricsPayload(deviceId, seq, {
    model: {
      id: modelId,
      level: null,
      levels: 0,
      version: '20261203-000000-abcdef',
      latencyP50Ms: 62,
      latencyP95Ms: 70,
      modelRssMb: 90,
      fidelity: null,
    },
    budgets,
    meets: { latency: meetsLatency, ram: true, fidelity: null },
    fit,
  });
}

const skip = browserSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  const { chromium } = await import('playwright-core');
  const broker = await startBroker();
  const stateDir = mkdtempSync(join(tmpdir(), 'edgefit-dash-shortfall-'));
  const dash = startDashboard({ broker: broker.url, port: 0, stateDir });
  await dash.start();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const client = await connectAsync(broker.url);
  t.teardown(async () => {
    await client.endAsync();
    await browser.close();
    await dash.stop();
    await broker.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const before = metrics(
    'box-before',
    1,
    { latencyFactor: 0.5, ramMb: 200, minFidelity: 0.98, effectiveLatencyMs: 47 },
    { id: null, running: true, task: null, fidelityMetric: null, originalLatencyMs: 94, shortfall: null, keeping: null, message: null },
    'original',
    false,
  );
  const unmet = metrics(
    'box-unmet',
    1,
    { latencyMs: 40, ramMb: 200, minFidelity: 0.98, effectiveLatencyMs: 40 },
    {
      id: 1,
      running: false,
      task: 'text-det',
      fidelityMetric: 'boxF1',
      originalLatencyMs: 62,
      shortfall: { latencyMs: 22 },
      keeping: 'original',
      message: UNMET,
    },
    'original',
    false,
  );
  // a training fit ran and did not beat the first fit's choice (issue 18): the device says so in fit.training
  const rejected = metrics(
    'box-rejected',
    1,
    { latencyMs: 100, ramMb: 400, minFidelity: 0.95, effectiveLatencyMs: 100 },
    {
      id: 1,
      running: false,
      task: 'text-det',
      fidelityMetric: 'boxF1',
      originalLatencyMs: 134,
      shortfall: null,
      keeping: null,
      message: null,
      training: {
        fitId: 2,
        candidateId: 'l0.032-u0.00-none-t2-d12',
        kind: 'distill',
        minutes: 12,
        seconds: 716,
        steps: 334,
        heldOutBefore: 0.00197,
        heldOutAfter: 0.00197,
        judged: { name: 'boxF1', before: 0.9967, after: 0.9967, finer: { name: 'maskIoU', before: 0.88, after: 0.9 } },
        fidelity: 0.9934,
        won: false,
        deployed: false,
      },
    },
    'l0.032-u0.00-none-t2',
    true,
  );
  // a training that won, deployed, then stepped away from when the box throttled
  const stepped = metrics(
    'box-stepped',
    1,
    { latencyMs: 100, ramMb: 400, minFidelity: 0.95, effectiveLatencyMs: 100 },
    {
      ...rejected.fit!,
      // distillation left the stem frozen (freeze.ts): the line says so
      training: { ...rejected.fit!.training!, candidateId: 'l0.125-d12', won: true, deployed: false, frozen: { layers: 12, stride: 16 } },
    },
    'l0.250-u0.00-none-t2',
    true,
  );
  // a training fit running now, after a first fit that deployed static int8 (the agent's default path)
  const training = metrics(
    'box-training',
    1,
    { latencyFactor: 0.6, ramMb: 1024, minFidelity: 0.95, effectiveLatencyMs: 34.3 },
    { ...unmet.fit!, running: true, shortfall: null, keeping: null, message: null },
    's0.000-u0.00-int8-static-t2',
    true,
  );
  for (const m of [before, unmet, rejected, stepped, training]) {
    await client.publishAsync(`edgefit/${m.deviceId}/status`, onlineStatus(m.deviceId), { qos: 1 });
    await client.publishAsync(`edgefit/${m.deviceId}/metrics`, JSON.stringify(m), { qos: 1 });
  }
  await until(
    'the devices in the fleet',
    () => ['box-before', 'box-unmet', 'box-rejected', 'box-stepped', 'box-training'].every((id) => dash.fleet.has(id)),
    10_000,
  );

  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  t.test('the fleet page: relative budget resolved, floor with the metric name, the shortfall in words', async (t) => {
    await page.goto(dash.url);
    const row = (id: string) => page.locator(`.row[data-id="${id}"]`);
    await row('box-unmet').waitFor({ timeout: 10_000 });
    const b = (await row('box-before').locator('.budget').textContent()) ?? '';
    t.match(b, /≤0\.5x=47ms/, 'relative latency budget with the ms it resolves to');
    t.match(b, /fidelity ≥0\.98/, "before a fit the floor is named 'fidelity'");
    t.match(
      await row('box-before').locator('.b').first().getAttribute('title'),
      'budget ≤ 0.5x of the original = 47.0 ms (original 94.0 ms p50)',
    );
    const u = (await row('box-unmet').locator('.budget').textContent()) ?? '';
    t.match(u, /boxF1 ≥0\.98/, "the floor with the task metric's name");
    t.equal(await row('box-unmet').locator('.shortfall').textContent(), UNMET, 'the shortfall, said in words');
    t.equal(await row('box-before').locator('.shortfall').count(), 0, 'nothing unmet said before a fit');
  });

  t.test('the device page: budgets before a fit, and what cannot be met after one', async (t) => {
    await page.goto(`${dash.url}#/d/box-before`);
    await page.waitForSelector('#lat-budget');
    t.equal(await page.textContent('#lat-budget'), 'budget ≤ 0.5x of the original = 47.0 ms (original 94.0 ms p50)');
    t.match(await page.textContent('#hdr'), /Fidelity \(fidelity\).*floor fidelity ≥ 0\.98/);
    t.equal(await page.textContent('#fit-state'), 'fitting in the background; original is served meanwhile');

    await page.goto(`${dash.url}#/d/box-unmet`);
    await page.waitForFunction(() => document.querySelector('#fit-state')?.textContent?.includes('cannot be met'), undefined, {
      timeout: 10_000,
    });
    t.equal(await page.textContent('#fit-state'), UNMET);
    t.match(await page.textContent('#hdr'), /Fidelity \(boxF1\).*floor boxF1 ≥ 0\.98/);
    t.match(await page.textContent('#lat-budget'), 'budget ≤ 40.0 ms');
    t.same(errors, [], 'no page errors');
  });

  t.test(
    'the device page: a training that lost is shown with its scores; one that won and was stepped away from is not called a loss',
    async (t) => {
      await page.goto(`${dash.url}#/d/box-unmet`);
      await page.waitForSelector('#training-none');
      t.equal(await page.locator('#training-rejected').count(), 0, 'a device that trained nothing says nothing about it');
      t.match(await page.textContent('#training-none'), /trains the deployed model for train\.minutes/, 'only what the agent will do');
      await page.goto(`${dash.url}#/d/box-rejected`);
      await page.waitForSelector('#training-rejected', { timeout: 10_000 });
      t.equal(
        await page.textContent('#training-rejected'),
        'Distillation from the original ran on this box (fit 2, l0.032-u0.00-none-t2-d12): 334 steps in 11.9 of 12.0 min; ' +
          "boxF1 0.9967 → 0.9967 (maskIoU 0.8800 → 0.9000) on held-out images, fidelity 0.9934. It did not beat the fit's untrained choice; nothing was redeployed.",
      );
      t.match(await page.textContent('#training-none'), /^The deployed model was not trained on this box/);
      // won and stepped away from: not called a loss
      await page.goto(`${dash.url}#/d/box-stepped`);
      await page.waitForSelector('#training-won', { timeout: 10_000 });
      t.match(
        await page.textContent('#training-won'),
        /\(fit 2, l0\.125-d12\).*It won its fit and was deployed; the box has stepped to another level since\.$/,
      );
      t.match(
        await page.textContent('#training-won'),
        /11\.9 of 12\.0 min; the stem \(12 layers, before stride 16\) stayed frozen; boxF1/,
        'the frozen stem is named',
      );
      t.equal(await page.locator('#training-rejected').count(), 0);
      t.same(errors, [], 'no page errors');
    },
  );

  t.test('the device page: a training fit running now says how far it is, and the line goes when it ends', async (t) => {
    let seq = 0;
    const event = (type: string, message: string, data: Record<string, unknown>) =>
      client.publishAsync(
        'edgefit/box-training/events',
        JSON.stringify(
          checkPayload('event', {
            v: PAYLOAD_VERSION,
            deviceId: 'box-training',
            seq: ++seq,
            ts: new Date().toISOString(),
            type,
            message,
            data,
          }),
        ),
        { qos: 1 },
      );
    await page.goto(`${dash.url}#/d/box-training`);
    await page.waitForSelector('#training-none');
    t.equal(await page.locator('#training-now').count(), 0, 'no training line before any training progress');
    await event('fit-progress', 'training 86%, about 638 s left: step 263, loss 0.00487, 82 of 720 s', {
      fitId: 2,
      fraction: 0.86,
      stage: 'training',
      etaS: 638,
    });
    await page.waitForSelector('#training-now', { timeout: 10_000 });
    t.equal(
      await page.textContent('#training-now'),
      "Training on the box now: step 263, loss 0.00487, 82 of 720 s. The trained model is swapped in only when it measures better than the fit's untrained choice.",
    );
    t.equal(
      await page.textContent('#training-none'),
      'The deployed model was not trained on this box. ',
      'no promise of a training that is already running',
    );
    t.match(await page.textContent('#fit-state'), /^training on the box \(step 263, loss 0\.00487, 82 of 720 s\)/);
    t.equal(await page.locator('#training-live').count(), 0, 'no live curve from reports without points');
    // reports with points (the agent's since the live curve): a curve of the batch losses so far and
    // the held-out loss at its own step; a report whose point is not numbers is left out
    const progress = (step: number, train: Record<string, unknown>) =>
      event('fit-progress', `training 90%: step ${step}, loss 0.004, 90 of 720 s`, { fitId: 2, fraction: 0.9, stage: 'training', train });
    await progress(300, { step: 300, loss: 0.0061 });
    await progress(301, { step: 'x', loss: -1 });
    await progress(420, { step: 420, loss: 0.0049, heldOut: { step: 400, loss: 0.0052 } });
    await page.waitForSelector('#training-live svg', { timeout: 10_000 });
    const d = await page.getAttribute('#training-live path.loss-train', 'd');
    t.equal(d?.match(/[ML]/g)?.length, 3, `batch loss at steps 300, 400 and 420: ${d}`);
    t.equal(await page.locator('#training-live circle').count(), 1, 'one held-out point');
    t.match(await page.textContent('#training-live'), /step 300.*step 420/);
    await event('fit-done', 'fit 2 chose s0.000-u0.00-int8-static-t2 of 4', {
      fitId: 2,
      chosenId: 's0.000-u0.00-int8-static-t2',
      levels: 4,
    });
    await page.waitForFunction(() => !document.querySelector('#training-now'), undefined, { timeout: 10_000 });
    t.pass('the line is gone once the fit is done');
    t.equal(await page.locator('#training-live').count(), 0, 'and the live curve with it');
    t.same(errors, [], 'no page errors');
  });
}
