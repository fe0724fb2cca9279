// Encrypted broker links with per-device ACLs (issue 20), against a real Mosquitto 2.0 with two
// TLS listeners (client certificate as identity; password file) and the ACL of
// docs/fleet-broker.md, certificates made with openssl in a temp folder. Two real agents (one
// per way of logging in), the dashboard and the simulator connect; every refusal is done for real
// (no cert, a foreign CA, a wrong password, plain TCP, device A publishing on device B's topics)
// and shown to have no effect.
import t from 'tap';
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { MOSQUITTO, cleanupDir, startTlsBroker } from '../../devkit/broker.js';
import { makePki } from '../../devkit/pki.js';
import { SimFleet } from '../../devkit/sim.js';
import { ROOT, runCli } from '../../devkit/paths.js';
import { execFile } from 'node:child_process';
import { Watcher } from '../helpers/mqtt-watch.js';
import { startAgentProc, type AgentProc } from '../helpers/agent-proc.js';
import { startDashboard } from '../../src/dashboard/index.js';
import { mqttTlsOptions } from '../../src/telemetry/tls.js';
import { checkPayload } from '../../src/telemetry/validate.js';

if (!existsSync(MOSQUITTO)) {
  t.plan(0, `${MOSQUITTO} not found: the TLS broker test needs Mosquitto`);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-tls-'));
  const pki = await makePki(join(dir, 'pki'), { clients: ['dev-b', 'dashboard', 'sim-0001', 'sim-0002'] });
  // a second CA: its certificates carry the right names but must not be trusted
  const rogue = await makePki(join(dir, 'rogue'), { name: 'rogue-ca', clients: ['dev-b', 'dashboard'] });
  const pw = { 'dev-a': randomBytes(12).toString('hex'), dashboard: randomBytes(12).toString('hex'), 'sim-0003': 'sim-pw' };
  // the ACL of docs/fleet-broker.md: a device reads and writes its own subtree only; the
  // dashboard reads the fleet and writes requests, nothing else
  const acl = ['pattern readwrite edgefit/%u/#', '', 'user dashboard', 'topic read edgefit/#', 'topic write edgefit/+/request/+', ''].join(
    '\n',
  );
  const broker = await startTlsBroker({ pki, acl, passwords: pw });

  const agentConfig = (name: string, mqttCfg: Record<string, unknown>): string => {
    const f = join(dir, `${name}.json`);
    writeFileSync(f, JSON.stringify({ mqtt: mqttCfg }), { mode: 0o600 });
    chmodSync(f, 0o600);
    return f;
  };
  // device B logs in with its certificate (CN dev-b), device A with a password
  const agentB = startAgentProc({
    broker: broker.certUrl,
    deviceId: 'dev-b',
    stateDir: join(dir, 'b'),
    extraArgs: [
      '--config',
      agentConfig('b', { caFile: pki.caFile, certFile: pki.clients['dev-b']!.certFile, keyFile: pki.clients['dev-b']!.keyFile }),
    ],
  });
  const agentA = startAgentProc({
    broker: broker.passwordUrl,
    deviceId: 'dev-a',
    stateDir: join(dir, 'a'),
    extraArgs: ['--config', agentConfig('a', { caFile: pki.caFile, username: 'dev-a', password: pw['dev-a'] })],
  });

  const ca = mqttTlsOptions(broker.certUrl, { caFile: pki.caFile });
  const certOf = (p: typeof pki, name: string): IClientOptions =>
    mqttTlsOptions(broker.certUrl, { caFile: pki.caFile, certFile: p.clients[name]!.certFile, keyFile: p.clients[name]!.keyFile });

  /** Connect once (no retries): the client, or the error that refused it. */
  const tryConnect = (url: string, opts: IClientOptions): Promise<MqttClient | Error> =>
    new Promise((resolve) => {
      const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 8000, ...opts });
      const fail = (e: Error): void => {
        c.end(true);
        resolve(e);
      };
      c.once('connect', () => resolve(c));
      c.once('error', fail);
      c.once('close', () => fail(new Error('closed before CONNACK')));
    });
  const connected = async (url: string, opts: IClientOptions): Promise<MqttClient> => {
    const c = await tryConnect(url, opts);
    if (c instanceof Error) throw new Error(`${url}: ${c.message}\n${broker.log().slice(-3000)}`);
    return c;
  };

  const dashClient = await connected(broker.certUrl, { ...certOf(pki, 'dashboard'), clientId: 'test-dashboard' });
  const w = new Watcher(dashClient);
  await dashClient.subscribeAsync(['edgefit/+/status', 'edgefit/+/metrics', 'edgefit/+/events', 'edgefit/+/response/+'], { qos: 1 });

  const procs: AgentProc[] = [agentA, agentB];
  t.teardown(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await w.close();
    await broker.stop();
    cleanupDir(dir);
  });
  const out = (): string => `\nagent A: ${agentA.output().slice(-1500)}\nagent B: ${agentB.output().slice(-1500)}`;

  await t.test('both agents connect over TLS (certificate; password) and publish status and metrics', async (t) => {
    for (const id of ['dev-a', 'dev-b']) {
      const s = await w.waitFor(
        (m) => m.topic === `edgefit/${id}/status` && m.json().state === 'online',
        60_000,
        0,
        `${id} online${out()}`,
      );
      t.equal(checkPayload('status', s.json()).deviceId, id);
      const m = await w.waitFor((m) => m.topic === `edgefit/${id}/metrics`, 60_000, 0, `${id} metrics${out()}`);
      t.equal(checkPayload('metrics', m.json()).deviceId, id);
    }
    t.match(broker.log(), /u'dev-b'/, "the broker took dev-b's certificate CN as its user name");
  });

  await t.test('clients without a valid certificate or password are refused', async (t) => {
    const refused = async (what: string, url: string, opts: IClientOptions, why: RegExp): Promise<void> => {
      const r = await tryConnect(url, opts);
      if (!(r instanceof Error)) {
        r.end(true);
        t.fail(`${what}: connected`);
        return;
      }
      t.match(r.message, why, what);
    };
    await refused('no client certificate', broker.certUrl, ca, /certificate required|ECONNRESET|closed|socket hang up/);
    await refused(
      "dev-b's name on a certificate from another CA",
      broker.certUrl,
      certOf(rogue, 'dev-b'),
      /unknown ca|ECONNRESET|closed|alert/i,
    );
    await refused('wrong password', broker.passwordUrl, { ...ca, username: 'dev-a', password: 'guess' }, /Not authorized/);
    await refused('anonymous', broker.passwordUrl, ca, /Not authorized/);
    await refused(
      "a device's password as the dashboard",
      broker.passwordUrl,
      { ...ca, username: 'dashboard', password: pw['dev-a'] },
      /Not authorized/,
    );
    await refused('plain TCP to the certificate port', broker.certUrl.replace('mqtts:', 'mqtt:'), {}, /ECONNRESET|closed|EPIPE/);
    await refused(
      'plain TCP to the password port',
      broker.passwordUrl.replace('mqtts:', 'mqtt:'),
      { username: 'dev-a', password: pw['dev-a'] },
      /ECONNRESET|closed|EPIPE/,
    );
    // the server's certificate checked against a CA the broker's is not from
    const wrongCa = mqttTlsOptions(broker.passwordUrl, { caFile: rogue.caFile });
    await refused(
      'a server certificate from a CA we do not trust',
      broker.passwordUrl,
      { ...wrongCa, username: 'dev-a', password: pw['dev-a'] },
      /self[- ]signed|unable to verify|certificate/i,
    );
    // the switch does what it says: off, the same link connects (test brokers only)
    const lax = await tryConnect(broker.passwordUrl, {
      ...mqttTlsOptions(broker.passwordUrl, { caFile: rogue.caFile, rejectUnauthorized: false }),
      username: 'dev-a',
      password: pw['dev-a'],
    });
    t.notOk(lax instanceof Error, 'rejectUnauthorized: false accepts it');
    if (!(lax instanceof Error)) lax.end(true);
  });

  await t.test("device A can neither command device B nor read B's topics: the broker drops it", async (t) => {
    // device A's credentials in an attacker's hands (another client id, so agent A stays on)
    const a = await connected(broker.passwordUrl, { ...ca, username: 'dev-a', password: pw['dev-a'], clientId: 'dev-a-rogue' });
    const seen: string[] = [];
    a.on('message', (topic) => seen.push(topic));
    await a.subscribeAsync(['edgefit/dev-b/#', 'edgefit/+/metrics', '#'], { qos: 1 });
    const from = w.msgs.length;
    await a.publishAsync('edgefit/dev-b/request/set-budget', JSON.stringify({ txn: 'from-a', args: { latencyMs: 1 } }), { qos: 1 });
    await a.publishAsync('edgefit/dev-b/request/ping', JSON.stringify({ txn: 'from-a-ping' }), { qos: 1 });
    await a.publishAsync('edgefit/dev-b/status', JSON.stringify({ forged: true }), { qos: 1, retain: true });
    // the dashboard's request after A's: B answers it, so B was listening all along
    await w.publish('edgefit/dev-b/request/ping', { txn: 'dash-ping' });
    const r = await w.waitFor(
      (m) => m.topic === 'edgefit/dev-b/response/ping' && m.json().txn === 'dash-ping',
      20_000,
      from,
      `B answers the dashboard${out()}`,
    );
    t.equal(r.json().ok, true);
    // B publishes metrics twice a second: wait for a few more, which A must not get
    const metricsFrom = w.msgs.length;
    await w.waitFor((m) => m.topic === 'edgefit/dev-b/metrics', 10_000, metricsFrom, 'more metrics from B');
    await new Promise((r) => setTimeout(r, 2000));
    const fromA = w.msgs.slice(from).filter((m) => m.topic.startsWith('edgefit/dev-b/response/') && /^from-a/.test(String(m.json().txn)));
    t.same(fromA, [], "B's agent never answered (so never saw) A's requests");
    t.notOk(
      w.msgs.slice(from).some((m) => m.topic === 'edgefit/dev-b/status' && m.json().forged),
      "A's forged status for B never reached the dashboard",
    );
    t.same(
      seen.filter((s) => !s.startsWith('edgefit/dev-a/')),
      [],
      "A received nothing from outside its own subtree (B's metrics flowed meanwhile)",
    );
    t.ok(
      seen.some((s) => s === 'edgefit/dev-a/metrics'),
      'A still reads its own topics (the ACL is not simply closed)',
    );
    await a.endAsync(true);
  });

  await t.test('the dashboard links over TLS with its certificate, sees both devices and commands them', async (t) => {
    const dash = startDashboard({
      broker: broker.certUrl,
      port: 0,
      stateDir: join(dir, 'dash'),
      mqttTls: { caFile: pki.caFile, certFile: pki.clients.dashboard!.certFile, keyFile: pki.clients.dashboard!.keyFile },
    });
    await dash.start();
    t.teardown(() => dash.stop());
    const until = Date.now() + 20_000;
    while (!(dash.fleet.has('dev-a') && dash.fleet.has('dev-b')) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    t.ok(dash.fleet.has('dev-a') && dash.fleet.has('dev-b'), 'both devices in the fleet view');
    const from = w.msgs.length;
    const v = await dash.link.request('dev-a', 'ping', {});
    const r = await w.waitFor(
      (m) => m.topic === 'edgefit/dev-a/response/ping' && m.json().txn === v.tx,
      20_000,
      from,
      'A answers the dashboard',
    );
    t.equal(r.json().ok, true);

    // a dashboard with a certificate from another CA, or trusting the wrong CA, does not start
    for (const [what, tls] of [
      [
        'foreign client certificate',
        { caFile: pki.caFile, certFile: rogue.clients.dashboard!.certFile, keyFile: rogue.clients.dashboard!.keyFile },
      ],
      [
        'wrong CA for the server',
        { caFile: rogue.caFile, certFile: pki.clients.dashboard!.certFile, keyFile: pki.clients.dashboard!.keyFile },
      ],
    ] as const) {
      const bad = startDashboard({ broker: broker.certUrl, port: 0, stateDir: join(dir, `dash-${what.length}`), mqttTls: tls });
      await t.rejects(bad.start(), { code: 'CONFIG', message: /cannot reach MQTT broker/ }, what);
    }
  });

  await t.test(
    '`edgefit dashboard` and `edgefit agent`: a CA with a plain mqtt:// URL is a configuration error (exit 2), not a clear-text link',
    async (t) => {
      const r = await runCli(
        ['dashboard', '--broker', 'mqtt://127.0.0.1:1', '--mqtt-ca', pki.caFile, '--port', '0', '--state-dir', join(dir, 'cli-dash')],
        {
          timeoutMs: 30_000,
        },
      );
      t.equal(r.code, 2, r.stderr);
      t.match(r.stderr, /not TLS: use mqtts:\/\//);
      const r2 = await runCli(
        [
          'dashboard',
          '--broker',
          broker.certUrl,
          '--mqtt-ca',
          pki.caFile,
          '--mqtt-cert',
          pki.clients.dashboard!.certFile,
          '--port',
          '0',
          '--state-dir',
          join(dir, 'cli-dash'),
        ],
        {
          timeoutMs: 30_000,
        },
      );
      t.equal(r2.code, 2, r2.stderr);
      t.match(r2.stderr, /needs both certFile and keyFile/);
      const logFrom = broker.log().length;
      // the agent the same: a CA with a plain URL stops it at start, before any credential is sent
      const r3 = await runCli(
        [
          'agent',
          '--broker',
          broker.certUrl.replace('mqtts:', 'mqtt:'),
          '--config',
          agentConfig('plain', { caFile: pki.caFile, username: 'dev-a', password: pw['dev-a'] }),
          '--device-id',
          'dev-plain',
          '--state-dir',
          join(dir, 'plain'),
          '--serve-port',
          '0',
        ],
        { timeoutMs: 60_000 },
      );
      t.equal(r3.code, 2, r3.stderr);
      t.match(r3.stderr, /not TLS: use mqtts:\/\//);
      t.notMatch(broker.log().slice(logFrom), /wrong version number/, 'no clear-text connection reached the TLS port');
    },
  );

  await t.test('the simulator logs in per device (its certificate, or username = id and password)', async (t) => {
    const byCert = new SimFleet({ broker: broker.certUrl, devices: 2, rate: 2, tls: { caFile: pki.caFile }, certDir: pki.dir });
    const byPw = new SimFleet({
      broker: broker.passwordUrl,
      devices: 1,
      start: 3,
      rate: 2,
      tls: { caFile: pki.caFile },
      password: 'sim-pw',
    });
    await byCert.start();
    await byPw.start();
    t.teardown(async () => {
      await byCert.stop();
      await byPw.stop();
    });
    for (const id of ['sim-0001', 'sim-0002', 'sim-0003']) {
      const m = await w.waitFor((m) => m.topic === `edgefit/${id}/metrics`, 15_000, 0, `${id} metrics`);
      t.equal(checkPayload('metrics', m.json()).deviceId, id);
    }
    // a simulated device with no certificate of its own (sim-0004) is refused
    const noCert = new SimFleet({ broker: broker.certUrl, devices: 1, start: 4, tls: { caFile: pki.caFile }, certDir: pki.dir });
    await t.rejects(noCert.start(), /cannot read MQTT TLS certificate/);
  });

  await t.test('scripts/simulate-fleet.js: --ca and --cert-dir; EDGEFIT_SIM_PASSWORD', async (t) => {
    const script = join(ROOT, 'dist/scripts/simulate-fleet.js');
    const from = w.msgs.length;
    const run = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; err: string }> =>
      new Promise((resolve) => {
        execFile(process.execPath, [script, ...args], { env: { ...process.env, ...env }, timeout: 30_000 }, (e, _out, err) =>
          resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, err }),
        );
      });
    const byCert = await run([
      '--broker',
      broker.certUrl,
      '--devices',
      '2',
      '--rate',
      '2',
      '--duration',
      '2',
      '--ca',
      pki.caFile,
      '--cert-dir',
      pki.dir,
    ]);
    t.equal(byCert.code, 0, byCert.err);
    t.match(byCert.err, /2 devices connected/);
    const m = await w.waitFor((m) => m.topic === 'edgefit/sim-0002/metrics', 5000, from, 'sim-0002 metrics from the script');
    t.equal(m.json().deviceId, 'sim-0002');
    const badPw = await run(['--broker', broker.passwordUrl, '--devices', '1', '--duration', '1', '--ca', pki.caFile], {
      EDGEFIT_SIM_PASSWORD: 'wrong',
    });
    t.not(badPw.code, 0, 'a wrong password: the script fails');
    t.match(badPw.err, /Not authorized/);
  });
}
