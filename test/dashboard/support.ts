// Shared set-up for the broker- and browser-backed dashboard tests: a real broker, a simulated
// fleet, a dashboard on a free port and headless Chromium.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDashboard, type Dashboard, type DashboardOptions } from '../../src/dashboard/index.js';
import type { SigningKey } from '../../src/telemetry/signing.js';
import { PAYLOAD_VERSION, type MetricsPayload, type StatusPayload } from '../../src/telemetry/payloads.js';
import { checkPayload } from '../../src/telemetry/validate.js';
import { SimFleet } from '../../devkit/sim.js';
import { startBroker, type TestBroker } from '../../devkit/broker.js';
import { CHROMIUM } from '../../devkit/chromium.js';

export { CHROMIUM, CHROMIUM_ARGS } from '../../devkit/chromium.js';

/** null when the browser tests can run, else the one-line reason to skip them. */
export function browserSkipReason(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} not installed: dashboard browser tests skipped (apt-get install chromium)`;
}

/**
 * A metrics payload as an agent sends it, for tests that hand-publish metrics: the test gives the
 * model, budgets, meets and fit parts; the box's figures are fixed; validated against the schema.
 */
export function metricsPayload(
  deviceId: string,
  seq: number,
  parts: Pick<MetricsPayload, 'model' | 'budgets' | 'meets'> & Partial<Pick<MetricsPayload, 'fit'>>,
): MetricsPayload {
  return checkPayload('metrics', {
    v: PAYLOAD_VERSION,
    deviceId,
    seq,
    ts: new Date().toISOString(),
    system: { cpuLoad: 0.3, cores: 2, temperatureC: null, throttled: null, memTotalMb: 4000, memAvailableMb: 3000 },
    agent: { rssMb: 60, cpuPercent: 0.5, uptimeS: 30, outboxPending: 0, outboxDropped: 0 },
    ...parts,
  });
}

export interface Stack {
  broker: TestBroker;
  sim: SimFleet;
  dash: Dashboard;
  stateDir: string;
  stop(): Promise<void>;
}

/**
 * The retained status an agent publishes when it connects. The dashboard admits a new device
 * once it has sent a status and metrics, so tests that hand-publish metrics send this first.
 */
export function onlineStatus(deviceId: string): string {
  const s: StatusPayload = {
    v: PAYLOAD_VERSION,
    deviceId,
    state: 'online',
    reason: 'start',
    ts: new Date().toISOString(),
    agentVersion: '0.1.0-test',
  };
  return JSON.stringify(s);
}

/** A fresh ed25519 operator key, as `edgefit keys generate` makes (the simulator accepts any signature). */
export function operatorKey(): { signingKey: SigningKey; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { signingKey: { mode: 'ed25519', privateKey }, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/**
 * A logged-in browser session, as a page gets it: the ?token= URL traded for the cookie, and
 * the page's CSRF token from /api/session. `headers` is what the page sends with an action.
 */
export async function login(dash: Dashboard): Promise<{ cookie: string; csrf: string; headers: Record<string, string> }> {
  const r = await fetch(dash.loginUrl, { redirect: 'manual' });
  if (r.status !== 303) throw new Error(`login answered ${r.status}`);
  const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0]!;
  const s = (await (await fetch(`${dash.url}api/session`, { headers: { Cookie: cookie } })).json()) as { csrf: string };
  const origin = dash.url.replace(/\/$/, '');
  return {
    cookie,
    csrf: s.csrf,
    headers: { Cookie: cookie, 'X-Edgefit-CSRF': s.csrf, Origin: origin, 'Content-Type': 'application/json' },
  };
}

export async function startStack(opts: {
  devices: number;
  rate?: number;
  token?: string;
  /** the dashboard holds an operator key (can send actions, so it requires a login) */
  operator?: boolean;
  dash?: Partial<DashboardOptions>;
}): Promise<Stack> {
  const broker = await startBroker();
  const stateDir = mkdtempSync(join(tmpdir(), 'edgefit-dash-'));
  const sim = new SimFleet({ broker: broker.url, devices: opts.devices, rate: opts.rate ?? 1 });
  const dash = startDashboard({
    broker: broker.url,
    port: 0,
    stateDir,
    ...(opts.token ? { token: opts.token } : {}),
    ...(opts.operator ? { signingKey: operatorKey().signingKey } : {}),
    ...opts.dash,
  });
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
