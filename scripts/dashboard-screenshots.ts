// Screenshots of the dashboard for docs/screenshots/: a simulated fleet through a real
// Mosquitto, one device cut off (offline row), a device page with its frontier, history, events
// and an answered set-budget action.   node dist/scripts/dashboard-screenshots.js [--out docs/screenshots]
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../devkit/chromium.js';
import { startDashboard } from '../src/dashboard/index.js';
import { SimFleet } from '../devkit/sim.js';
import { startBroker } from '../devkit/broker.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'docs/screenshots' },
    devices: { type: 'string', default: '60' },
    settle: { type: 'string', default: '30' },
  },
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const broker = await startBroker();
const state = mkdtempSync(join(tmpdir(), 'edgefit-shots-'));
// with an operator key (the simulator accepts any signature) so the set-budget action works;
// the browser logs in through the printed ?token= URL first
const dash = startDashboard({
  broker: broker.url,
  port: 0,
  stateDir: state,
  signingKey: { mode: 'ed25519', privateKey: generateKeyPairSync('ed25519').privateKey },
});
await dash.start();
const sim = new SimFleet({ broker: broker.url, devices: Number(values.devices), rate: 1 });
await sim.start();
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
try {
  mkdirSync(values.out!, { recursive: true });
  // let the sparklines fill, then cut two devices off so offline rows show
  await sleep(Number(values.settle) * 1000);
  sim.get('sim-0003')?.kill();
  sim.get('sim-0011')?.kill();
  await sleep(1500);
  // one context, so the login cookie serves both pages
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 860 } });
  const page = await ctx.newPage();
  await page.goto(dash.loginUrl);
  await page.waitForSelector('.row[data-online="0"]');
  await sleep(800);
  await page.screenshot({ path: join(values.out!, 'fleet.png') });
  const dev = await ctx.newPage();
  await dev.setViewportSize({ width: 1440, height: 1560 });
  await dev.goto(`${dash.url}#/d/sim-0004`);
  await dev.waitForSelector('#frontier circle.pt.chosen', { timeout: 15_000 });
  await dev.fill('input[name=latencyMs]', '700');
  await dev.click('#act-set-budget');
  await dev.waitForSelector('.act[data-verb="set-budget"][data-state="ok"]', { timeout: 15_000 });
  await sleep(2500);
  await dev.screenshot({ path: join(values.out!, 'device.png') });
  process.stdout.write(`wrote ${join(values.out!, 'fleet.png')} and ${join(values.out!, 'device.png')}\n`);
} finally {
  await browser.close();
  await sim.stop();
  await dash.stop();
  await broker.stop();
  rmSync(state, { recursive: true, force: true });
}
