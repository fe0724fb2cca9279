// The dashboard beside a local agent: prefix mapping, and a busy port is logged, not fatal.
import t from 'tap';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetPrefixOf, startLocalDashboard } from '../../src/dashboard/embed.js';
import { startBroker } from '../../devkit/broker.js';

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
  t.match(logs.at(-1), /^dashboard: http:\/\/127\.0\.0\.1:\d+\/$/);
});
