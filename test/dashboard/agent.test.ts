// The dashboard steering a real edgefit agent (src/agent, `edgefit agent` in a child process)
// over a real broker, in headless Chromium: the agent appears, set-budget round-trips, the
// page shows the agent's response and the budget it then reports.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDashboard } from '../../src/dashboard/index.js';
import { CLI, ROOT } from '../../devkit/paths.js';
import { startBroker } from '../../devkit/broker.js';
import { browserSkipReason, CHROMIUM, CHROMIUM_ARGS, until } from './support.js';
import { makeOperator } from '../helpers/operator.js';

const MODEL = join(ROOT, 'models/mnist-cnn.onnx');
const skip = browserSkipReason() ?? (existsSync(MODEL) ? null : `${MODEL} missing: agent round-trip test skipped`);
if (skip) {
  t.plan(0, skip);
} else {
  const { chromium } = await import('playwright-core');
  const broker = await startBroker();
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-dash-agent-'));
  // the agent pins the operator's public key; the dashboard signs its actions with the private half (issue 20)
  const op = makeOperator(join(dir, 'op'));
  const dash = startDashboard({ broker: broker.url, port: 0, stateDir: join(dir, 'dash'), signingKey: op.key });
  await dash.start();
  const id = 'agent-dash-test';
  // a small real model keeps the agent's measurements short on a busy CI box
  const agent = spawn(
    process.execPath,
    [
      CLI,
      'agent',
      '--broker',
      broker.url,
      '--device-id',
      id,
      '--state-dir',
      join(dir, 'agent'),
      '--model',
      MODEL,
      '--shape',
      'x=1x1x28x28',
      // serving on any free port: parallel tests never collide on 8551
      '--serve-port',
      '0',
      '--fitter',
      'reference-only',
      '--metrics-interval',
      '1',
      '--probe-interval',
      '2',
      '--operator-key',
      op.pubFile,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let agentLog = '';
  agent.stderr.on('data', (b: Buffer) => {
    agentLog = (agentLog + b.toString()).slice(-4000);
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.teardown(async () => {
    await browser.close();
    if (agent.exitCode === null) {
      agent.kill('SIGTERM');
      await new Promise((r) => agent.once('exit', r));
    }
    await dash.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  t.test('set-budget from the device page round-trips to a real agent', async (t) => {
    await until(
      'the agent to report metrics with a deployed model',
      () => {
        const s = dash.fleet.state(id)?.summary;
        // the fit's model (first run serves the original, not on any frontier, before it)
        return s?.online && s.level !== null && s.last?.latencyMs ? s : null;
      },
      120_000,
      200,
    ).catch((e: unknown) => {
      t.comment(agentLog);
      throw e;
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(dash.loginUrl);
    await page.goto(`${dash.url}#/d/${id}`);
    await page.waitForSelector('#budget-form');
    // the page asked the agent for its frontier: the reference model is on it
    await page.waitForSelector('.act[data-verb="get-frontier"][data-state="ok"]', { timeout: 20_000 });
    await page.waitForSelector('#frontier circle.pt', { timeout: 10_000 });
    await page.fill('input[name=latencyMs]', '777');
    await page.fill('input[name=ramMb]', '');
    await page.fill('input[name=minFidelity]', '');
    await page.click('#act-set-budget');
    await page.waitForSelector('.act[data-verb="set-budget"][data-state="ok"]', { timeout: 20_000 });
    const resp = await page.textContent('.act[data-verb="set-budget"] .resp');
    t.match(resp, /"deviceId": "agent-dash-test"/);
    t.match(resp, /"verb": "set-budget"/);
    t.match(resp, /"ok": true/);
    t.match(resp, /"latencyMs": 777/);
    // the agent's next metrics carry the new budget, and the header follows live
    await page.waitForFunction(() => /budget ≤ 777\.0 ms/.test(document.querySelector('#hdr')?.textContent ?? ''), undefined, {
      timeout: 20_000,
    });
    t.pass('the page shows the budget the agent now reports');
    await page.waitForFunction(() => /budgets-changed/.test(document.querySelector('#events')?.textContent ?? ''), undefined, {
      timeout: 20_000,
    });
    t.pass('the budgets-changed event is in the log');
    // a request the agent refuses comes back as an error response, shown as such
    await page.click('#act-rollback');
    await page.waitForSelector('.act[data-verb="rollback"][data-state]:not([data-state="pending"])', { timeout: 20_000 });
    const state = await page.getAttribute('.act[data-verb="rollback"]', 'data-state');
    const text = await page.textContent('.act[data-verb="rollback"] .resp');
    t.ok(
      state === 'err' ? /"ok": false/.test(text ?? '') && /"error"/.test(text ?? '') : /"ok": true/.test(text ?? ''),
      `rollback answered (${state})`,
    );
  });
}
