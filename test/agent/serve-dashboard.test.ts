// The device page shows what the box's local inference endpoint served (issue 19), in a real
// headless Chromium against a real broker: served requests per second, the served run and request
// p50/p95, whether the Latency line comes from served requests or a probe, and plainly whether
// input capture is on. The payloads are what an agent sends (validated against the metrics schema).
import t from 'tap';
import { connectAsync } from 'mqtt';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAYLOAD_VERSION, type MetricsPayload, type ServedStatus } from '../../src/telemetry/payloads.js';
import { checkPayload } from '../../src/telemetry/validate.js';
import { browserSkipReason, CHROMIUM, CHROMIUM_ARGS, onlineStatus, until } from '../dashboard/support.js';
import { startBroker } from '../../devkit/broker.js';
import { startDashboard } from '../../src/dashboard/index.js';

function metrics(deviceId: string, source: 'served' | 'probe', served: ServedStatus, p50: number, busy?: string): MetricsPayload {
  return checkPayload('metrics', {
    v: PAYLOAD_VERSION,
    deviceId,
    seq: 1,
    ts: new Date().toISOString(),
    system: { cpuLoad: 0.3, cores: 2, temperatureC: null, throttled: null, memTotalMb: 4000, memAvailableMb: 3000 },
    agent: { rssMb: 60, cpuPercent: 0.5, uptimeS: 30, outboxPending: 0, outboxDropped: 0 },
    model: {
      id: 'original',
      level: null,
      levels: 0,
      version: '20261203-000000-abcdef',
      latencyP50Ms: p50,
      latencyP95Ms: p50 * 1.2,
      latencySource: source,
      ...(busy ? { latencyBusy: busy } : {}),
      modelRssMb: 90,
      fidelity: null,
    },
    budgets: { latencyMs: 100, effectiveLatencyMs: 100 },
    // as the agent sends it: a figure taken while its own fit used the cores judges no budget
    meets: { latency: busy ? null : p50 <= 100, ram: null, fidelity: null },
    served,
  });
}

const base: ServedStatus = {
  on: true,
  url: 'http://127.0.0.1:8551',
  socket: '/var/lib/edgefit/serve.sock',
  capture: false,
  windowS: 5,
  requests: 0,
  requestsPerS: 0,
  errors: 0,
  rejected: 0,
  runP50Ms: null,
  runP95Ms: null,
  totalP50Ms: null,
  totalP95Ms: null,
};

const skip = browserSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  const { chromium } = await import('playwright-core');
  const broker = await startBroker();
  const stateDir = mkdtempSync(join(tmpdir(), 'edgefit-dash-served-'));
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
  const busy = metrics(
    'box-busy',
    'served',
    { ...base, capture: true, requests: 60, requestsPerS: 12, runP50Ms: 41.5, runP95Ms: 48, totalP50Ms: 44, totalP95Ms: 52.25 },
    41.5,
  );
  const idle = metrics('box-idle', 'probe', base, 39);
  // 130 ms against 100, timed while the box's own training ran
  const training = metrics('box-training', 'probe', base, 130, 'fit 2 is training on this box');
  for (const m of [busy, idle, training]) {
    await client.publishAsync(`edgefit/${m.deviceId}/status`, onlineStatus(m.deviceId), { qos: 1 });
    await client.publishAsync(`edgefit/${m.deviceId}/metrics`, JSON.stringify(m), { qos: 1 });
  }
  await until('the devices in the fleet', () => ['box-busy', 'box-idle', 'box-training'].every((id) => dash.fleet.has(id)), 10_000);
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  t.test('served figures, the latency source and capture on the device page', async (t) => {
    await page.goto(`${dash.url}#/d/box-busy`);
    await page.waitForSelector('#served');
    t.equal(await page.textContent('#lat-source'), '(served)', 'the latency line says it comes from served requests');
    const line = (await page.textContent('#served')) ?? '';
    t.match(line, /12\.0 req\/s/);
    t.match(line, /run p50\/p95 41\.5 \/ 48\.0 ms/);
    t.match(line, /request p50\/p95 44\.0 \/ 52\.3 ms/);
    t.match(line, /on http:\/\/127\.0\.0\.1:8551 · \/var\/lib\/edgefit\/serve\.sock/);
    t.match(await page.textContent('#capture'), /input capture ON/, 'capture said plainly');

    await page.goto(`${dash.url}#/d/box-idle`);
    await page.waitForFunction(() => document.querySelector('#lat-source')?.textContent === '(probe)', undefined, { timeout: 10_000 });
    t.match(await page.textContent('#served'), /idle \(latency from probes\)/);
    t.equal(await page.textContent('#capture'), 'input capture off');
    t.same(errors, [], 'no page errors');
  });

  t.test("a figure taken while the box's own fit trained says so and is not over budget", async (t) => {
    const summary = dash.fleet.summaries().find((d) => d.id === 'box-training')!;
    t.equal(summary.violation, 0, 'not sorted as over budget');
    t.equal(summary.latencyBusy, 'fit 2 is training on this box');
    await page.goto(`${dash.url}#/d/box-training`);
    await page.waitForFunction(() => /judges no budget/.test(document.querySelector('#lat-source')?.textContent ?? ''), undefined, {
      timeout: 10_000,
    });
    t.equal(await page.textContent('#lat-source'), '(probe, taken while fit 2 is training on this box: judges no budget)');
    const line = await page.evaluate(() => document.querySelector('#lat-source')?.parentElement?.textContent ?? '');
    t.match(line, /130\.0/, 'the figure is shown');
    t.notMatch(line, /unmet/, 'and not marked unmet');
    await page.goto(`${dash.url}#/`);
    await page.waitForSelector('text=box-training');
    t.match(await page.textContent('body'), /· 0 over budget/, 'the fleet counts no device over budget');
    t.same(errors, [], 'no page errors');
  });
}
