// The device page holds the frontier of its last get-frontier answer. When a later fit replaces it
// (the agent's training fit hot-swaps a trained model), the page must ask again: a new-user run
// showed the trained, deployed model labelled 'int8-static' and its training panel saying "not
// trained on this box" from the first fit's stale frontier. A real broker and Chromium; the test
// plays the device: it publishes metrics and answers the dashboard's signed get-frontier requests.
import t from 'tap';
import { connectAsync } from 'mqtt';
import { PAYLOAD_VERSION, type MetricsPayload, type ResponsePayload } from '../../src/telemetry/payloads.js';
import { checkPayload } from '../../src/telemetry/validate.js';
import { browserSkipReason, CHROMIUM, CHROMIUM_ARGS, metricsPayload, onlineStatus, startStack, until } from './support.js';

const ID = 'box-swap';

function metrics(seq: number, modelId: string, levels: number): MetricsPayload {
  return metricsPayload(ID, seq, {
    model: {
      id: modelId,
      level: 1,
      levels,
      version: '20261206-000000-abcdef',
      latencyP50Ms: 31,
      latencyP95Ms: 33,
      modelRssMb: 83,
      fidelity: 0.97,
    },
    budgets: { latencyMs: 34, ramMb: 1024, minFidelity: 0.95, effectiveLatencyMs: 34 },
    meets: { latency: true, ram: true, fidelity: true },
  });
}

const entry = (id: string, quant: string, latencyP50Ms: number, fidelity: number, train?: number) => ({
  id,
  config: { structured: 0, unstructured: 0, quant, threads: 2, ...(train ? { train } : {}) },
  sha256: '0'.repeat(64),
  sizeBytes: 1,
  latencyP50Ms,
  latencyP95Ms: latencyP50Ms * 1.1,
  modelRssMb: 83,
  fidelity,
  meets: { latency: true, ram: true, fidelity: true },
  ...(train
    ? {
        training: {
          kind: 'qat',
          minutes: 12,
          seconds: 715,
          steps: 2600,
          heldOutBefore: 0.0048,
          heldOutAfter: 0.0017,
          // as `quantize --mode qat --train-freeze-stride 8` leaves it (the agent's QAT trains every layer)
          frozen: { layers: 8, stride: 8 },
          curve: [
            { step: 0, loss: 0.007, heldOut: 0.0048 },
            { step: 2600, loss: 0.003, heldOut: 0.0017 },
          ],
        },
      }
    : {}),
});
const FIRST = [entry('original', 'none', 57, 1), entry('int8', 'int8-static', 31, 0.968)];
const SECOND = [
  entry('original', 'none', 57, 1),
  entry('int8-train12', 'int8-static', 31, 0.974, 12),
  entry('int8', 'int8-static', 31, 0.968),
];

const skip = browserSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  const { chromium } = await import('playwright-core');
  const stack = await startStack({ devices: 1, operator: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
  const device = await connectAsync(stack.broker.url);
  t.teardown(async () => {
    await device.endAsync();
    await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 10_000).unref())]);
    await stack.stop();
  });

  // the device's side: every get-frontier request is counted and answered with what the device holds now
  let frontier: unknown[] = FIRST;
  const asked: string[] = [];
  await device.subscribeAsync(`edgefit/${ID}/request/get-frontier`, { qos: 1 });
  device.on('message', (_topic, buf) => {
    const req = JSON.parse(buf.toString()) as { txn: string; sig?: string };
    asked.push(req.txn);
    const chosen = frontier[1] as { id: string };
    const resp = checkPayload('response', {
      v: PAYLOAD_VERSION,
      deviceId: ID,
      txn: req.txn,
      verb: 'get-frontier',
      ts: new Date().toISOString(),
      ok: true,
      result: { fitId: frontier === FIRST ? 1 : 2, chosenId: chosen.id, frontier },
    }) as ResponsePayload;
    void device.publishAsync(`edgefit/${ID}/response/get-frontier`, JSON.stringify(resp), { qos: 1 });
  });
  let seq = 0;
  await device.publishAsync(`edgefit/${ID}/status`, onlineStatus(ID), { qos: 1 });
  await device.publishAsync(`edgefit/${ID}/metrics`, JSON.stringify(metrics(++seq, 'int8', 2)), { qos: 1 });
  await until('the device in the fleet', () => stack.dash.fleet.has(ID), 10_000);

  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(20_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(stack.dash.loginUrl);

  t.test("a later fit's hot-swap makes the page ask for the frontier again, once", async (t) => {
    await page.goto(`${stack.dash.url}#/d/${ID}`);
    await page.waitForSelector('#training-none');
    await until('the first get-frontier', () => asked.length >= 1);
    await page.waitForFunction(() => document.querySelector('#hdr')?.textContent?.includes('(int8-static)'));
    t.match(await page.textContent('#training-none'), /^The deployed model was not trained on this box \(int8-static\)/);

    // the training fit won: the trained model is deployed at level 1 of three
    frontier = SECOND;
    await device.publishAsync(`edgefit/${ID}/metrics`, JSON.stringify(metrics(++seq, 'int8-train12', 3)), { qos: 1 });
    await page.waitForSelector('#training-line', { timeout: 10_000 });
    t.equal(asked.length, 2, 'asked again once the deployed model was not on the frontier held');
    t.match(await page.textContent('#training-line'), /^int8-static QAT: quantization-aware training, 2600 steps/);
    t.match(await page.textContent('#training-line'), /12\.0 min; the stem \(8 layers, before stride 8\) stayed frozen; held-out loss/);
    t.match(await page.textContent('#hdr'), /\(int8-static QAT\)/, 'the level is labelled by how it was trained');

    // more metrics of the same deployment ask nothing more
    for (let i = 0; i < 3; i++)
      await device.publishAsync(`edgefit/${ID}/metrics`, JSON.stringify(metrics(++seq, 'int8-train12', 3)), { qos: 1 });
    await new Promise((r) => setTimeout(r, 1500));
    t.equal(asked.length, 2, 'no request while the frontier held is current');
    t.same(errors, [], 'no page errors');
  });
}
