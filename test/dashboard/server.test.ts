// The dashboard against a real broker and a simulated fleet, over its HTTP API (no browser).
import t from 'tap';
import { connectAsync } from 'mqtt';
import type { DeviceDetail, DeviceSummary, StreamMessage } from '../../src/dashboard/model.js';
import { login, startStack, until } from './support.js';
import { DASHBOARD_DEFAULTS, startDashboard } from '../../src/dashboard/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// the dashboard holds an operator key, so it requires its (generated) token even on loopback
const stack = await startStack({ devices: 20, rate: 5, operator: true });
t.teardown(() => stack.stop());
const base = stack.dash.url.replace(/\/$/, '');
const bearer = { Authorization: `Bearer ${new URL(stack.dash.loginUrl).searchParams.get('token')}` };
const get = (path: string): Promise<Response> => fetch(`${base}${path}`, { headers: bearer });
const fleet = async (): Promise<DeviceSummary[]> => ((await (await get('/api/fleet')).json()) as { devices: DeviceSummary[] }).devices;

t.test('every simulated device appears with its board, model, budgets and live metrics', async (t) => {
  const devs = await until('20 devices with metrics', async () => {
    const d = await fleet();
    return d.length === 20 && d.every((x) => x.online && x.last && x.board && x.modelId) ? d : null;
  });
  t.same(
    devs.map((d) => d.id).sort(),
    Array.from({ length: 20 }, (_, i) => `sim-${String(i + 1).padStart(4, '0')}`),
  );
  const boards = new Set(devs.map((d) => d.board));
  t.ok(boards.size >= 3, `several boards (${[...boards].join(', ')})`);
  for (const d of devs) {
    t.ok(d.budgets.latencyMs! > 0 && d.last!.latencyMs! > 0, `${d.id} has a latency budget and a measured latency`);
    t.equal(
      d.violation > 0,
      Object.values(d.met).includes(false) || d.last!.latencyMs! > d.budgets.latencyMs!,
      `${d.id}: violation agrees with met flags`,
    );
  }
  // history is written at the next flush (<= 250 ms after the message)
  const detail = await until('history in SQLite', async () => {
    const d = (await (await get('/api/devices/sim-0001')).json()) as DeviceDetail;
    return d.history.length >= 1 ? d : null;
  });
  t.ok(
    detail.events.some((e) => e.type === 'deployed'),
    'the deployed event was stored',
  );
  t.match(detail.profile, { profile: detail.summary.board });
});

t.test('bad payloads are dropped and counted; the dashboard stays healthy', async (t) => {
  const c = await connectAsync(stack.broker.url);
  t.teardown(() => c.endAsync());
  const before = stack.dash.link.stats.dropped;
  await c.publishAsync('edgefit/evil-1/metrics', 'not json {', { qos: 1 });
  await c.publishAsync('edgefit/evil-2/metrics', '[1,2,3]', { qos: 1 });
  await c.publishAsync('edgefit/evil-3/profile', Buffer.alloc(300 * 1024, 0x20), { qos: 1 });
  await c.publishAsync('edgefit/evil 4; drop table/status', '{"state":"online"}', { qos: 1 });
  await c.publishAsync('edgefit/evil-5/metrics', JSON.stringify({ v: 1, deviceId: 'evil-5', seq: 1 }), { qos: 1 });
  await until('5 drops', () => stack.dash.link.stats.dropped - before >= 5);
  t.equal(stack.dash.link.stats.dropped - before, 5);
  const h = (await (await fetch(`${base}/healthz`)).json()) as { ok: boolean; mqtt: boolean };
  t.match(h, { ok: true, mqtt: true, devices: 20 });
  t.notOk(
    (await fleet()).some((d) => d.id.startsWith('evil-')),
    'no device created from a rejected payload',
  );
});

t.test('actions: validated, same-origin JSON only, answered by the device and recorded', async (t) => {
  const session = await login(stack.dash);
  const post = (path: string, body: unknown, headers: Record<string, string> = session.headers): Promise<Response> =>
    fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  let r = await post('/api/devices/sim-0002/actions/set-budget', { latencyMs: 100 }, { ...session.headers, 'Content-Type': 'text/plain' });
  t.equal(r.status, 400, 'a form-style POST is refused');
  r = await post('/api/devices/sim-0002/actions/set-budget', { latencyMs: 100 }, { ...session.headers, Origin: 'http://evil.example' });
  t.equal(r.status, 403, 'cross-origin refused');
  t.match(await r.json(), { error: { code: 'FORBIDDEN', message: /cross-origin/ } });
  r = await post('/api/devices/sim-0002/actions/set-budget', { latencyMs: -5 });
  t.equal(r.status, 400);
  r = await post('/api/devices/nobody/actions/ping', {});
  t.equal(r.status, 404);
  r = await post('/api/devices/sim-0002/actions/set-budget', { latencyMs: 4321 });
  t.equal(r.status, 202);
  const { action } = (await r.json()) as { action: { tx: string } };
  const answered = await until('the set-budget response', async () => {
    const d = (await (await get('/api/devices/sim-0002')).json()) as DeviceDetail;
    return d.actions.find((a) => a.tx === action.tx && a.response !== null);
  });
  t.equal(answered.ok, true);
  t.match(answered.response, { txn: action.tx, verb: 'set-budget', ok: true, result: { budgets: { latencyMs: 4321 } } });
  t.match(answered.request, { txn: action.tx, args: { latencyMs: 4321 } }, 'the request in the agent schema');
  await until('metrics carrying the new budget', async () => (await fleet()).find((d) => d.id === 'sim-0002')?.budgets.latencyMs === 4321);
});

t.test('SSE: a snapshot first, then batched updates (not one frame per MQTT message)', async (t) => {
  // read until the fleet has sent 100 messages, however long a loaded box takes for that, and
  // judge the batching against the time it took: at most one frame per flush interval
  const received0 = stack.dash.link.stats.received;
  const t0 = Date.now();
  const frames = await readStream(`${base}/api/stream`, 30_000, () => stack.dash.link.stats.received - received0 >= 100);
  const elapsedMs = Date.now() - t0;
  const mqttMsgs = stack.dash.link.stats.received - received0;
  t.equal(frames[0]!.kind, 'fleet');
  t.equal(frames[0]!.kind === 'fleet' && frames[0]!.devices.length, 20, 'snapshot of the whole fleet');
  const updates = frames.slice(1).filter((f) => f.kind === 'fleet');
  t.ok(mqttMsgs >= 100, `${mqttMsgs} MQTT messages in ${elapsedMs} ms`);
  const maxFrames = Math.ceil(elapsedMs / DASHBOARD_DEFAULTS.flushMs) + 1;
  t.ok(updates.length <= maxFrames, `${updates.length} fleet frames for ${mqttMsgs} messages in ${elapsedMs} ms (250 ms batches)`);
  t.ok(updates.length >= 2, 'updates keep flowing');
  t.notOk(
    frames.some((f) => f.kind === 'metrics'),
    'per-device detail only goes to that device page',
  );
});

t.test('a device page stream carries only that device', async (t) => {
  // until a snapshot, an update and 3 metric frames arrived (0.6 s at 5 msg/s on a quiet box)
  const enough = (fs: StreamMessage[]): boolean =>
    fs.filter((f) => f.kind === 'fleet').length >= 2 && fs.filter((f) => f.kind === 'metrics').length >= 3;
  const frames = await readStream(`${base}/api/stream?device=sim-0003`, 30_000, enough);
  t.ok(enough(frames), 'snapshot, updates and metric frames');
  const fleetFrames = frames.filter((f): f is Extract<StreamMessage, { kind: 'fleet' }> => f.kind === 'fleet');
  t.ok(
    fleetFrames.every((f) => f.devices.length === 1 && f.devices[0]!.id === 'sim-0003' && f.total === 20),
    'only its own summary, with the fleet size',
  );
  const metrics = frames.filter((f) => f.kind === 'metrics');
  t.ok(metrics.every((f) => f.kind === 'metrics' && f.device === 'sim-0003'));
});

/** Frames of an SSE stream until `done` says so (or `ms` passed). */
async function readStream(url: string, ms: number, done: (frames: StreamMessage[]) => boolean): Promise<StreamMessage[]> {
  const ac = new AbortController();
  const res = await fetch(url, { signal: ac.signal, headers: bearer });
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  const out: StreamMessage[] = [];
  let buf = '';
  const end = Date.now() + ms;
  const timer = setTimeout(() => ac.abort(), ms + 500);
  try {
    while (Date.now() < end && !done(out)) {
      const r = await reader.read();
      if (r.done) break;
      const value = r.value;
      buf += dec.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const data = buf
          .slice(0, i)
          .split('\n')
          .find((l) => l.startsWith('data: '));
        buf = buf.slice(i + 2);
        if (data) out.push(JSON.parse(data.slice(6)) as StreamMessage);
      }
    }
  } catch {
    /* aborted */
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return out;
}

t.test('with a token every route but /healthz needs it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-dash-tok-'));
  const token = 'a-long-enough-token-1234';
  const d = startDashboard({ broker: stack.broker.url, port: 0, stateDir: dir, token });
  await d.start();
  t.teardown(async () => {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const b = d.url.replace(/\/$/, '');
  for (const p of ['/', '/app.css', '/web/app.js', '/api/fleet', '/api/stream', '/api/devices/sim-0001']) {
    t.equal((await fetch(b + p)).status, 401, `${p} without token`);
  }
  const auth = { Authorization: `Bearer ${token}` };
  t.equal((await fetch(`${b}/web/app.js`, { headers: auth })).status, 200);
  t.equal((await fetch(`${b}/healthz`)).status, 200, 'health check stays open (no fleet data in it)');
  const devs = await until('the fleet', async () => {
    const r = (await (await fetch(`${b}/api/fleet`, { headers: auth })).json()) as { devices: DeviceSummary[] };
    return r.devices.length === 20 ? r : null;
  });
  t.equal(devs.devices.length, 20, 'the whole fleet with the bearer token');
});
