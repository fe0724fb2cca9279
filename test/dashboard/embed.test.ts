// The dashboard beside a local agent: prefix mapping, a busy port is logged, not fatal, and
// given the agent's operator key it requires a login (issue 20: it used to sign any anonymous POST).
import t from 'tap';
import { connectAsync } from 'mqtt';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetPrefixOf, startLocalDashboard } from '../../src/dashboard/embed.js';
import { startBroker } from '../../devkit/broker.js';
import { SimFleet } from '../../devkit/sim.js';
import { login, operatorKey, until } from './support.js';

t.test('fleet prefix from the agent topic prefix', async (t) => {
  t.equal(fleetPrefixOf(null, 'box1'), 'edgefit');
  t.equal(fleetPrefixOf('edgefit/{deviceId}/', 'box1'), 'edgefit');
  t.equal(fleetPrefixOf('plant-7/edge/box1/', 'box1'), 'plant-7/edge');
  t.equal(fleetPrefixOf('plant-7/{deviceId}', 'box1'), 'plant-7');
  t.equal(fleetPrefixOf('plant-7/shared/', 'box1'), null, 'device id not the last level');
  t.equal(fleetPrefixOf('a b/{deviceId}/', 'box1'), null);
});

t.test('serves the local fleet; a busy port is one log line and null, not a crash', async (t) => {
  const broker = await startBroker();
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-embed-'));
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const port = (busy.address() as { port: number }).port;
  t.teardown(async () => {
    busy.close();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const logs: string[] = [];
  const none = await startLocalDashboard({ broker: broker.url, deviceId: 'box1', stateDir: dir, port, log: (l) => logs.push(l) });
  t.equal(none, null);
  t.match(logs.at(-1), /^dashboard not started: dashboard cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE$/);
  const dash = await startLocalDashboard({ broker: broker.url, deviceId: 'box1', stateDir: dir, port: 0, log: (l) => logs.push(l) });
  t.ok(dash);
  t.teardown(() => dash?.stop());
  const r = await fetch(`${dash!.url}healthz`);
  t.match(await r.json(), { ok: true, mqtt: true });
  t.match(logs.at(-1), /^dashboard: http:\/\/127\.0\.0\.1:\d+\/ \(view only: no operator key\)$/);
});

t.test("with the agent's operator key: a token on loopback, its URL logged once, anonymous POSTs reach no device", async (t) => {
  const broker = await startBroker();
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-embed-key-'));
  // a realistic device that applies what it is asked (the agent's own command handling is tested elsewhere)
  const sim = new SimFleet({ broker: broker.url, devices: 1, rate: 2 });
  await sim.start();
  const watcher = await connectAsync(broker.url);
  const published: string[] = [];
  watcher.on('message', (topic) => published.push(topic));
  await watcher.subscribeAsync('edgefit/+/request/+', { qos: 1 });
  t.teardown(async () => {
    await watcher.endAsync();
    await sim.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const id = 'sim-0001';
  const budget = (): number => sim.get(id)!.metricsPayload().budgets.latencyMs!;
  const { signingKey } = operatorKey();
  const logs: string[] = [];
  const open = () =>
    startLocalDashboard({ broker: broker.url, deviceId: id, stateDir: dir, port: 0, signingKey, log: (l) => logs.push(l) });
  const dash = (await open())!;
  t.ok(dash);
  const urls = logs.filter((l) => l.includes('?token='));
  t.equal(urls.length, 1, 'the login URL is logged once');
  t.match(urls[0], /^dashboard: http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43} \(open once to log in\)$/);
  t.equal(urls[0]!.split(' ')[1], dash.loginUrl);
  const token = new URL(dash.loginUrl).searchParams.get('token')!;
  const file = join(dir, 'dashboard', 'token');
  t.equal(readFileSync(file, 'utf8').trim(), token, 'kept in <stateDir>/dashboard/token');
  t.equal(statSync(file).mode & 0o777, 0o600);

  await until('the device in the fleet', () => dash.fleet.has(id));
  const before = budget();
  const url = `${dash.url}api/devices/${id}/actions/set-budget`;
  const body = '{"latencyMs":1}';
  // the attack: an anonymous POST to the built-in dashboard
  const attempts: Record<string, string>[] = [
    { 'Content-Type': 'application/json' },
    { 'Content-Type': 'application/json', Origin: dash.url.slice(0, -1) },
  ];
  for (const headers of attempts) {
    const r = await fetch(url, { method: 'POST', headers, body });
    t.equal(r.status, 401, `anonymous POST ${JSON.stringify(headers)}`);
  }
  await new Promise((r) => setTimeout(r, 500));
  t.same(published, [], 'nothing was signed or published');
  t.equal(budget(), before, 'the device budget is unchanged');
  // the operator, logged in through the printed URL, still can
  const s = await login(dash);
  const ok = await fetch(url, { method: 'POST', headers: s.headers, body: '{"latencyMs":4242}' });
  t.equal(ok.status, 202);
  await until('the budget applied', () => budget() === 4242);
  t.same(published, [`edgefit/${id}/request/set-budget`]);

  // a restart keeps the token, so the URL logged before still logs in
  const first = dash.loginUrl;
  await dash.stop();
  const again = (await open())!;
  t.teardown(() => again.stop());
  t.equal(again.loginUrl.split('?')[1], first.split('?')[1], 'same token after a restart');
});
