// `npm start` = `edgefit agent` with its embedded broker: the dashboard comes up beside it on
// 127.0.0.1, its page is served, and this very device appears in its API and live stream with the
// model it deployed. A busy dashboard port is one log line, not a failure; --no-dashboard and an
// external broker leave it off. (Free ports throughout, never 8080.)
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDir, freePort, startBroker } from '../../devkit/broker.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { CLI } from '../../devkit/paths.js';
import { dashboardPort, loadAgentConfig } from '../../src/config/agent.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-agent-dash-'));
const procs: ChildProcess[] = [];
t.teardown(() => {
  for (const p of procs) p.kill('SIGKILL');
  cleanupDir(dir);
});

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** `edgefit agent` with no --broker (embedded aedes on a free port) and the given extra args. */
async function startAgent(name: string, extra: string[]): Promise<Proc> {
  const state = join(dir, name);
  const cfg = join(dir, `${name}.json`);
  writeFileSync(cfg, JSON.stringify({ mqtt: { embeddedPort: await freePort() } }));
  const child = spawn(
    process.execPath,
    [
      CLI,
      'agent',
      '--config',
      cfg,
      '--state-dir',
      state,
      '--device-id',
      name,
      '--model',
      CLS_MODEL,
      '--shape',
      'x=1x3x48x192',
      '--fitter',
      'reference-only',
      '--metrics-interval',
      '0.5',
      // serving on any free port: parallel tests never collide on 8551
      '--serve-port',
      '0',
      '--probe-interval',
      '5',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  procs.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return { child, output: () => out, exited: new Promise((r) => child.once('exit', (c) => r(c))) };
}

async function until<T>(what: string, ms: number, f: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const listening = (port: number): Promise<boolean> =>
  new Promise((r) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      r(true);
    });
    c.once('error', () => r(false));
  });

t.test('dashboard port: 8080 with the embedded broker, off with an external one, 0 = off', async (t) => {
  const port = (flags: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => dashboardPort(loadAgentConfig({ flags, env }));
  t.equal(port({}), 8080);
  t.equal(port({ mqtt: { url: 'mqtt://broker.lan:1883' } }), null);
  t.equal(port({ mqtt: { url: 'mqtt://broker.lan:1883' }, dashboard: { port: 9000 } }), 9000, 'explicit port wins');
  t.equal(port({ dashboard: { port: 0 } }), null);
  t.equal(port({}, { EDGEFIT_DASHBOARD_PORT: '0' }), null, 'EDGEFIT_DASHBOARD_PORT');
  t.throws(() => port({ dashboard: { port: 70000 } }), /dashboard\.port/);
});

t.test('a bad --dashboard-port is a one-line usage error (exit 2)', async (t) => {
  const r = spawnSync(process.execPath, [CLI, 'agent', '--dashboard-port', '70000'], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stderr, /^edgefit: --dashboard-port must be an integer 0\.\.65535, got 70000\n$/);
});

t.test('agent with the embedded broker serves the dashboard; the device shows up in its API and stream', async (t) => {
  const port = await freePort();
  const a = await startAgent('dash-box', ['--dashboard-port', String(port)]);
  const line = await until(
    'dashboard log line',
    60_000,
    () => /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)(?:\?token=([\w-]+))?/.exec(a.output()) ?? undefined,
  );
  const url = line[1]!;
  t.equal(url, `http://127.0.0.1:${port}/`, 'on loopback, on the port asked for');
  // with an operator key the dashboard logs its login URL and requires the token (issue 20)
  const headers: Record<string, string> = line[2] ? { Authorization: `Bearer ${line[2]}` } : {};
  const fetch = (u: string, init: RequestInit = {}): Promise<Response> => globalThis.fetch(u, { ...init, headers });

  const page = await fetch(url);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /text\/html/);
  t.match(await page.text(), /<html/i);

  // the fleet API lists this device, online, with the model it deployed (reference, level 0 of 1)
  type Dev = { id: string; online: boolean; modelId: string | null; level: number | null; levels: number | null };
  const dev = await until('device with a deployed model in /api/fleet', 60_000, async () => {
    const r = (await (await fetch(`${url}api/fleet`)).json()) as { devices: Dev[] };
    // (first run: the original shows first, then the fit's choice)
    return r.devices.find((d) => d.id === 'dash-box' && d.online && d.modelId === 'reference');
  });
  t.match(dev, { id: 'dash-box', online: true, modelId: 'reference', level: 0, levels: 1 });
  // the model was measured and deployed, yet the agent process never loaded onnxruntime (it runs
  // only in probe children; the CLI loads only the agent command's module graph)
  t.notMatch(readFileSync(`/proc/${a.child.pid}/maps`, 'utf8'), /onnxruntime/, 'no onnxruntime in the agent process');

  // the live stream carries it too: the snapshot, then updates as metrics arrive
  const ac = new AbortController();
  const res = await fetch(`${url}api/stream`, { signal: ac.signal });
  t.match(res.headers.get('content-type'), /text\/event-stream/);
  const reader = res.body!.getReader();
  let text = '';
  const seen: Array<{ kind: string; devices?: Dev[] }> = [];
  await until('two fleet messages naming the device on the stream', 20_000, async () => {
    const { value, done } = await reader.read();
    if (done) throw new Error('stream closed');
    text += Buffer.from(value).toString();
    let i: number;
    while ((i = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, i);
      text = text.slice(i + 2);
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      if (data) seen.push(JSON.parse(data) as { kind: string; devices?: Dev[] });
    }
    return seen.filter((m) => m.kind === 'fleet' && m.devices?.some((d) => d.id === 'dash-box')).length >= 2 || undefined;
  });
  ac.abort();
  t.ok(seen[0]?.kind === 'fleet' && seen[0].devices?.some((d) => d.id === 'dash-box'), 'snapshot names the device');

  // SIGTERM: dashboard and agent stop cleanly, the port is released
  a.child.kill('SIGTERM');
  t.equal(await a.exited, 0, 'clean exit');
  t.equal(await listening(port), false, 'dashboard port released');
});

t.test('a busy dashboard port is logged, the agent carries on', async (t) => {
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => busy.close());
  const port = (busy.address() as { port: number }).port;
  const a = await startAgent('dash-busy', ['--dashboard-port', String(port)]);
  await until('dashboard not started line', 60_000, () => /dashboard not started: .*EADDRINUSE/.test(a.output()) || undefined);
  await until('deployed', 60_000, () => /deployed: deployed/.test(a.output()) || undefined);
  t.equal(a.child.exitCode, null, 'agent still running');
  a.child.kill('SIGTERM');
  t.equal(await a.exited, 0);
});

t.test('--no-dashboard, and an external broker, leave the dashboard off', async (t) => {
  const off = await startAgent('dash-off', ['--no-dashboard']);
  const broker = await startBroker();
  t.teardown(() => broker.stop());
  const ext = await startAgent('dash-ext', ['--broker', broker.url]);
  for (const a of [off, ext]) await until('deployed', 60_000, () => /deployed: deployed/.test(a.output()) || undefined);
  for (const a of [off, ext]) {
    t.notMatch(a.output(), /dashboard/, 'no dashboard started or attempted');
    a.child.kill('SIGTERM');
    t.equal(await a.exited, 0);
  }
});
