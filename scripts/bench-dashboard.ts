// Scale check for the dashboard: N simulated devices (one MQTT connection each) at R msg/s
// through a real Mosquitto on 127.0.0.1, the dashboard in its own process (so its RSS is its
// own), and headless Chromium on the fleet page. Reports, side by side in one run:
//   - dashboard RSS (median and max over the measured window, and the kernel's peak VmHWM)
//   - publish -> DOM latency: a device publishes a metric with a unique marker value; the page
//     records (MutationObserver, same machine clock) when that value appears in its row
//   - page frame intervals while updates stream in and while the list is scrolled
//   node dist/scripts/bench-dashboard.js [--devices 1000] [--rate 1] [--warmup 20] [--seconds 60]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startDashboard } from '../src/dashboard/index.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../devkit/chromium.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '60' },
    marker: { type: 'string' },
    // internal: run only the dashboard (the measured child process), without loading the CLI's
    // other commands, so the figures are the dashboard's alone
    'serve-broker': { type: 'string' },
    'serve-port': { type: 'string' },
    'serve-state': { type: 'string' },
  },
});
const DEVICES = Number(values.devices);
const RATE = Number(values.rate);
const WARMUP_S = Number(values.warmup);
const MEASURE_S = Number(values.seconds);
const MARKER_ID = values.marker ?? `sim-${String(Math.max(1, Math.round(DEVICES / 2))).padStart(4, '0')}`;
const SELF = fileURLToPath(import.meta.url);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (a: number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};
const pct = (a: number[], p: number): number => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : NaN;
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = tcpConnect(port, '127.0.0.1', () => {
        c.destroy();
        r(true);
      });
      c.once('error', () => r(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on ${port}`);
}

/** CPU seconds (user + system) the process has used. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .slice(readFileSync(`/proc/${pid}/stat`, 'utf8').lastIndexOf(')') + 2)
    .split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function procStatus(pid: number): { rssMb: number; hwmMb: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'edgefit-bench-dash-'));
async function main(): Promise<void> {
  // loaded here, not at the top: the dashboard child runs this file too and must not carry them
  const { chromium } = await import('playwright-core');
  const { SimFleet } = await import('../devkit/sim.js');
  // Mosquitto on a free loopback port; its default per-client queue is plenty for QoS 0 metrics
  const mport = await freePort();
  writeFileSync(join(dir, 'm.conf'), `listener ${mport} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\n`);
  const mosq = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'm.conf')], { stdio: 'ignore' });
  children.push(mosq);
  await waitPort(mport);
  const broker = `mqtt://127.0.0.1:${mport}`;

  const hport = await freePort();
  const dash = spawn(
    process.execPath,
    [SELF, '--serve-broker', broker, '--serve-port', String(hport), '--serve-state', join(dir, 'state')],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(dash);
  await waitPort(hport);
  const base = `http://127.0.0.1:${hport}`;
  const rssIdle = procStatus(dash.pid!).rssMb;

  const sim = new SimFleet({ broker, devices: DEVICES, rate: RATE, connectRate: 400 });
  const t0 = Date.now();
  await sim.start();
  const connectS = (Date.now() - t0) / 1000;
  const marker = sim.get(MARKER_ID);
  if (!marker) throw new Error(`no device ${MARKER_ID}`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(base);
  await page.waitForFunction((n) => (document.querySelector('#counts')?.textContent ?? '').startsWith(`${n} devices`), DEVICES, {
    timeout: 60_000,
  });
  // frame intervals, and the moment each marker value appears in the marker device's row
  await page.evaluate((id) => {
    const w = window as unknown as { frames: number[]; seen: Record<string, number> };
    w.frames = [];
    w.seen = {};
    let last = performance.now();
    const loop = (t: number): void => {
      w.frames.push(t - last);
      last = t;
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
    new MutationObserver(() => {
      const v = document.querySelector(`.row[data-id="${id}"] .c-lat .v`)?.textContent ?? '';
      // markers are >= 90000 ms, which the row prints without decimals
      const m = /^(\d+) ms$/.exec(v);
      if (m && Number(m[1]) >= 90000 && !w.seen[m[1]!]) w.seen[m[1]!] = Date.now();
    }).observe(document.querySelector('#rows')!, { subtree: true, childList: true, characterData: true });
  }, MARKER_ID);
  // keep the marker device on screen whatever the sort order does
  await page.fill('#f-search', MARKER_ID);
  await sleep(WARMUP_S * 1000);
  await page.evaluate(() => {
    (window as unknown as { frames: number[] }).frames = [];
  });

  const rss: number[] = [];
  const sent: { value: string; at: number }[] = [];
  const h0 = (await (await fetch(`${base}/healthz`)).json()) as { received: number };
  const m0 = Date.now();
  const cpu0 = cpuSeconds(dash.pid!);
  for (let s = 0; s < MEASURE_S; s++) {
    rss.push(procStatus(dash.pid!).rssMb);
    if (s % 2 === 0) {
      const value = String(90000 + s);
      sent.push({ value, at: Date.now() });
      marker.publishMarker(Number(value));
    }
    await sleep(1000);
  }
  await sleep(1500);
  const h1 = (await (await fetch(`${base}/healthz`)).json()) as { received: number; dropped: number; devices: number };
  const wall = (Date.now() - m0) / 1000;
  const cpuPct = ((cpuSeconds(dash.pid!) - cpu0) / wall) * 100;
  const msgRate = (h1.received - h0.received) / wall;
  const { seen, frames } = await page.evaluate(() => {
    const w = window as unknown as { seen: Record<string, number>; frames: number[] };
    return { seen: w.seen, frames: w.frames };
  });
  const lat = sent.map((x) => (seen[x.value] ? seen[x.value]! - x.at : NaN));
  const got = lat.filter((x) => Number.isFinite(x));

  // scrolling the whole list while updates stream in
  await page.fill('#f-search', '');
  await page.evaluate(() => {
    (window as unknown as { frames: number[] }).frames = [];
  });
  const scrollMs = await page.evaluate(async () => {
    const vp = document.querySelector('#viewport') as HTMLElement;
    const t = performance.now();
    for (let y = 0; y < vp.scrollHeight; y += 300) {
      vp.scrollTop = y;
      await new Promise((r) => requestAnimationFrame(() => r(null)));
    }
    return performance.now() - t;
  });
  const scrollFrames = await page.evaluate(() => (window as unknown as { frames: number[] }).frames.slice(1));
  const domRows = await page.locator('.row').count();
  const hwm = procStatus(dash.pid!).hwmMb;
  await browser.close();
  await sim.stop();

  const f = (x: number): string => x.toFixed(1);
  const out = [
    `bench-dashboard: ${DEVICES} simulated devices (one MQTT connection each) at ${RATE} msg/s through Mosquitto 127.0.0.1, dashboard in its own process, Chromium on the fleet page`,
    `  connect ${DEVICES} devices: ${f(connectS)} s; dashboard received ${f(msgRate)} msg/s over ${MEASURE_S} s (dropped ${h1.dropped}), ${h1.devices} devices known`,
    `  dashboard CPU under load: ${f(cpuPct)} % of one core (machine load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')})`,
    `  dashboard RSS: idle ${f(rssIdle)} MB before devices; under load median ${f(median(rss))} MB, max ${f(Math.max(...rss))} MB, peak VmHWM ${f(hwm)} MB (target < 200 MB)`,
    `  publish -> DOM (marker ${MARKER_ID}, ${sent.length} samples, ${got.length} seen): median ${f(median(got))} ms, p95 ${f(pct(got, 0.95))} ms, max ${f(Math.max(...got))} ms (target < 1000 ms)`,
    `  page frames while streaming: median ${f(median(frames.slice(1)))} ms, p95 ${f(pct(frames.slice(1), 0.95))} ms, max ${f(Math.max(...frames.slice(1)))} ms (${frames.length} frames)`,
    `  scroll through all ${DEVICES} rows (300 px steps): ${f(scrollMs)} ms, frame median ${f(median(scrollFrames))} ms, p95 ${f(pct(scrollFrames, 0.95))} ms; ${domRows} row elements in the DOM`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

async function serve(): Promise<void> {
  const d = startDashboard({ broker: values['serve-broker']!, port: Number(values['serve-port']), stateDir: values['serve-state']! });
  await d.start();
  await new Promise<void>((r) => process.once('SIGTERM', r));
  await d.stop();
}

if (values['serve-broker']) {
  await serve();
} else
  main()
    .catch((e: unknown) => {
      process.stderr.write(`bench-dashboard: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exitCode = 1;
    })
    .finally(() => {
      for (const c of children.reverse()) if (c.exitCode === null) c.kill('SIGTERM');
      setTimeout(() => rmSync(dir, { recursive: true, force: true }), 500);
    });
