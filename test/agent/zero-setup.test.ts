// The zero-setup exception of issue 20 (`npm start`): an agent with its embedded broker on
// loopback and its built-in dashboard, nothing configured, makes <state>/keys/operator.key (0600)
// + operator.pub once, pins the public half and hands the private half to that dashboard. So the
// dashboard's actions are obeyed while an anonymous MQTT client's are not; a restart keeps the key.
import t from 'tap';
import { readFileSync, statSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDir, freePort } from '../../devkit/broker.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { startAgentProc, type AgentProc } from '../helpers/agent-proc.js';
import { keyFingerprint } from '../../src/telemetry/keys.js';
import { loadPrivateKey, loadPublicKey } from '../../src/telemetry/signing.js';
import { createPublicKey } from 'node:crypto';
import { signedBody } from '../helpers/operator.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-zero-'));
const procs: AgentProc[] = [];
t.teardown(() => {
  for (const p of procs) p.child.kill('SIGKILL');
  cleanupDir(dir);
});

const dev = 'zero-box';
const state = join(dir, 'state');
const mqttPort = await freePort();
const dashPort = await freePort();
writeFileSync(join(dir, 'cfg.json'), JSON.stringify({ mqtt: { embeddedPort: mqttPort } }));
const start = (): AgentProc => {
  const p = startAgentProc({
    deviceId: dev,
    stateDir: state,
    probeIntervalS: 5,
    extraArgs: ['--config', join(dir, 'cfg.json'), '--dashboard-port', String(dashPort)],
  });
  procs.push(p);
  return p;
};
async function until<T>(what: string, ms: number, f: () => T | undefined | false | Promise<T | undefined | false>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('embedded loopback broker + built-in dashboard: a local key, the dashboard steers, anonymous clients do not', async (t) => {
  const a = start();
  await until('dashboard up', 60_000, () => a.output().includes(`dashboard: http://127.0.0.1:${dashPort}/`));
  t.match(a.output(), /control: created the local operator key [0-9a-f]{16}/);
  t.notMatch(a.output(), /holds no operator key/);
  t.notMatch(
    a.output(),
    /refused MQTT 5|EPIPE|write after end/,
    'the built-in dashboard speaks 3.1.1 to the embedded broker from the start',
  );
  const keyPath = join(state, 'keys', 'operator.key');
  t.equal(statSync(keyPath).mode & 0o777, 0o600, 'the private key is 0600');
  t.equal(statSync(join(state, 'keys')).mode & 0o777, 0o700, 'in a private folder');
  const priv = loadPrivateKey(readFileSync(keyPath, 'utf8'));
  const pub = loadPublicKey(readFileSync(join(state, 'keys', 'operator.pub'), 'utf8'));
  t.equal(keyFingerprint(createPublicKey(priv)), keyFingerprint(pub), 'one pair');

  const pre = `edgefit/${dev}/`;
  const w = await Watcher.connect(`mqtt://127.0.0.1:${mqttPort}`, [`${pre}#`]);
  t.teardown(() => w.close());
  const st = await w.waitFor((m) => m.topic === `${pre}status` && m.json().state === 'online', 30_000, 0, 'status');
  t.equal(st.json().control, 'operator-key');
  await w.waitFor((m) => m.topic === `${pre}metrics`, 60_000, 0, 'metrics (the box is profiled)');

  // an anonymous client on the same broker
  let from = w.msgs.length;
  await w.publish(`${pre}request/set-budget`, { txn: 'anon-1', args: { latencyMs: 1 } });
  const r = await w.waitFor((m) => m.topic === `${pre}response/set-budget` && m.json().txn === 'anon-1', 15_000, from);
  t.match(r.json(), { ok: false, error: { code: 'INTEGRITY', message: /not signed/ } });

  // the built-in dashboard holds the key, so it demands the login token it logged once (issue 20);
  // with it, its action is signed with the local key and obeyed
  from = w.msgs.length;
  const base = `http://127.0.0.1:${dashPort}`;
  const token = new RegExp(`dashboard: ${base}/\\?token=([\\w-]+)`).exec(a.output())?.[1];
  t.ok(token, 'the dashboard logged its login URL');
  const auth = { Authorization: `Bearer ${token}` };
  await until('device listed by the dashboard', 30_000, async () => {
    const d = (await (await fetch(`${base}/api/devices/${dev}`, { headers: auth })).json()) as { summary?: { online?: boolean } };
    return d.summary?.online === true;
  });
  const body = JSON.stringify({ latencyMs: 4321 });
  const anon = await fetch(`${base}/api/devices/${dev}/actions/set-budget`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body,
  });
  t.equal(anon.status, 401, 'an anonymous POST to the built-in dashboard is refused');
  const post = await fetch(`${base}/api/devices/${dev}/actions/set-budget`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...auth },
    body,
  });
  t.equal(post.status, 202);
  const resp = await w.waitFor((m) => m.topic === `${pre}response/set-budget`, 20_000, from, 'dashboard action answered');
  t.match(resp.json(), { ok: true, result: { budgets: { latencyMs: 4321 } } }, 'obeyed');

  // a restart reuses the key (devices and the dashboard keep working together)
  a.child.kill('SIGTERM');
  t.equal(await a.exited, 0);
  from = w.msgs.length;
  const b = start();
  await until('restarted', 60_000, () => /control: (created|using) the local operator key/.exec(b.output())?.[1]);
  t.match(b.output(), /control: using the local operator key/);
  t.equal(keyFingerprint(loadPublicKey(readFileSync(join(state, 'keys', 'operator.pub'), 'utf8'))), keyFingerprint(pub), 'same key');
  await w.waitFor((m) => m.topic === `${pre}metrics`, 60_000, from, 'metrics after restart (profiled)');
  from = w.msgs.length;
  await w.publish(
    `${pre}request/set-budget`,
    signedBody({ mode: 'ed25519', privateKey: priv }, dev, 'set-budget', 'local-2', { latencyMs: 777 }),
  );
  const r2 = await w.waitFor((m) => m.topic === `${pre}response/set-budget` && m.json().txn === 'local-2', 20_000, from);
  t.match(r2.json(), { ok: true }, 'the same key is still pinned');
  b.child.kill('SIGTERM');
  await b.exited;
});
