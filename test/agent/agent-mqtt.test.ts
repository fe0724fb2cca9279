// The agent as a real process against a real broker: retained status, LWT on kill -9, command
// round trips with txn echo, and error responses that leave the agent healthy.
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { startAgentProc } from '../helpers/agent-proc.js';
import { checkPayload } from '../../src/telemetry/validate.js';
import { makeOperator } from '../helpers/operator.js';

const broker = await startBroker();
const dir = mkdtempSync(join(tmpdir(), 'edgefit-agent-'));
const dev = 'dev-mqtt';
const pre = `edgefit/${dev}/`;
const w = await Watcher.connect(broker.url, [`${pre}#`]);
// commands that change the device are signed by a pinned operator key (issue 20)
const op = makeOperator(join(dir, 'op'));
const agent = startAgentProc({ broker: broker.url, deviceId: dev, stateDir: join(dir, 'state'), operatorKey: op.pubFile });
t.teardown(async () => {
  agent.child.kill('SIGKILL');
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

await t.test('status online is retained for late subscribers; profile retained', async (t) => {
  await w.waitFor((m) => m.topic === `${pre}status` && m.json().state === 'online', 30_000, 0, 'online status');
  await w.waitFor((m) => m.topic === `${pre}profile`, 30_000, 0, 'profile');
  const late = await Watcher.connect(broker.url, [`${pre}status`, `${pre}profile`]);
  const s = await late.waitFor((m) => m.topic === `${pre}status`, 5000);
  t.equal(s.retain, true, 'delivered as retained');
  t.equal(checkPayload('status', s.json()).state, 'online');
  t.equal(s.json().control, 'operator-key', 'the status says who may change the device');
  const p = await late.waitFor((m) => m.topic === `${pre}profile` && m.retain, 10_000, 0, 'retained profile');
  t.ok(checkPayload('profile', p.json()).hardwareHash);
  await late.close();
});

await t.test('first fit and deploy happen, events and metrics validate against their schemas', async (t) => {
  // first run: the original is deployed at once, then the fit's choice (here the same bytes)
  const o = await w.waitFor((m) => m.topic === `${pre}events` && m.json().type === 'deployed', 60_000, 0, 'deployed event');
  t.match(o.json().data, { candidateId: null, fitId: null });
  const d = await w.waitFor(
    (m) => m.topic === `${pre}events` && m.json().type === 'deployed' && m.json().data.candidateId !== null,
    60_000,
    0,
    'fit deployed',
  );
  t.equal(d.json().data.candidateId, 'reference');
  const m = await w.waitFor((m) => m.topic === `${pre}metrics` && m.json().model.id === 'reference', 20_000, 0, 'metrics with the fit');
  const metrics = checkPayload('metrics', m.json());
  t.equal(metrics.model.levels, 1);
  for (const e of w.msgs.filter((x) => x.topic === `${pre}events`)) checkPayload('event', e.json());
});

await t.test('fit request round trip echoes the txn in the response and in the fit events', async (t) => {
  const from = w.msgs.length;
  await w.publish(`${pre}request/fit`, op.signed(dev, 'fit', 'fit-42'));
  const r = await w.waitFor((m) => m.topic === `${pre}response/fit`, 10_000, from, 'fit response');
  const resp = checkPayload('response', r.json());
  t.equal(resp.txn, 'fit-42');
  t.equal(resp.ok, true, JSON.stringify(resp));
  const done = await w.waitFor((m) => m.topic === `${pre}events` && m.json().type === 'fit-done', 60_000, from, 'fit-done');
  t.equal(done.json().txn, 'fit-42');
});

await t.test('malformed, invalid and unknown commands get error responses; the agent stays healthy', async (t) => {
  let from = w.msgs.length;
  await w.publish(`${pre}request/ping`, '{not json');
  let r = (await w.waitFor((m) => m.topic === `${pre}response/ping`, 10_000, from)).json();
  t.match(r, { ok: false, txn: null, error: { code: 'DATA' } });

  from = w.msgs.length;
  await w.publish(`${pre}request/reboot`, { txn: 'u1' });
  r = (await w.waitFor((m) => m.topic === `${pre}response/reboot`, 10_000, from)).json();
  t.match(r, { ok: false, txn: 'u1', error: { code: 'USAGE', message: /unknown verb/ } });

  from = w.msgs.length;
  await w.publish(`${pre}request/set-budget`, op.signed(dev, 'set-budget', 'b1', { latencyMs: -3, path: '/etc/passwd' }));
  r = (await w.waitFor((m) => m.topic === `${pre}response/set-budget`, 10_000, from)).json();
  t.match(r, { ok: false, txn: 'b1', error: { code: 'DATA' } });
  t.match(r.error.message, /latencyMs/);
  t.match(r.error.message, /path/);

  from = w.msgs.length;
  await w.publish(
    `${pre}request/deploy`,
    op.signed(dev, 'deploy', 'd1', { modelB64: Buffer.from('not a model').toString('base64'), sha256: 'a'.repeat(64) }),
  );
  r = (await w.waitFor((m) => m.topic === `${pre}response/deploy`, 10_000, from)).json();
  t.match(r, { ok: false, txn: 'd1', error: { code: 'INTEGRITY' } }, 'sha256 mismatch rejected before anything is written');

  from = w.msgs.length;
  await w.publish(`${pre}request/ping`, { txn: 'p1' });
  r = (await w.waitFor((m) => m.topic === `${pre}response/ping`, 10_000, from)).json();
  t.match(r, { ok: true, txn: 'p1', result: { pong: true } });
  t.equal(agent.child.exitCode, null, 'still running');

  from = w.msgs.length;
  await w.publish(`${pre}request/get-frontier`, { txn: 'g1' });
  r = (await w.waitFor((m) => m.topic === `${pre}response/get-frontier`, 10_000, from)).json();
  t.equal(r.result.frontier.length, 1);
  t.notOk('modelPath' in r.result.frontier[0], 'no local paths leave the device');
});

await t.test('kill -9: the broker publishes the Last Will (offline)', async (t) => {
  const from = w.msgs.length;
  agent.child.kill('SIGKILL');
  await agent.exited;
  const s = await w.waitFor((m) => m.topic === `${pre}status` && m.json().state === 'offline', 15_000, from, 'LWT offline');
  t.match(s.json(), { state: 'offline', reason: 'lwt' });
});
