// Shared set-up for the broker- and browser-backed dashboard tests: a real broker, a simulated
// fleet, a dashboard on a free port and headless Chromium.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDashboard, type Dashboard } from '../../src/dashboard/index.js';
import { SimFleet } from '../../devkit/sim.js';
import { startBroker, type TestBroker } from '../../devkit/broker.js';
import { CHROMIUM } from '../../devkit/chromium.js';

export { CHROMIUM, CHROMIUM_ARGS } from '../../devkit/chromium.js';

/** null when the browser tests can run, else the one-line reason to skip them. */
export function browserSkipReason(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} not installed: dashboard browser tests skipped (apt-get install chromium)`;
}

export interface Stack {
  broker: TestBroker;
  sim: SimFleet;
  dash: Dashboard;
  stateDir: string;
  stop(): Promise<void>;
}

export async function startStack(opts: { devices: number; rate?: number; token?: string }): Promise<Stack> {
  const broker = await startBroker();
  const stateDir = mkdtempSync(join(tmpdir(), 'edgefit-dash-'));
  const sim = new SimFleet({ broker: broker.url, devices: opts.devices, rate: opts.rate ?? 1 });
  const dash = startDashboard({ broker: broker.url, port: 0, stateDir, ...(opts.token ? { token: opts.token } : {}) });
  await dash.start();
  await sim.start();
  return {
    broker,
    sim,
    dash,
    stateDir,
    async stop() {
      await sim.stop().catch(() => undefined);
      await dash.stop();
      await broker.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

export async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
