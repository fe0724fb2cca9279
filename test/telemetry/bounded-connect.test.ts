// connectGuarded, the one way edgefit's MQTT clients connect (agent link, dashboard link), against
// a real Mosquitto (issue 20): with MQTT 5 the limit goes out as Maximum Packet Size and the broker
// drops a bigger message; with MQTT 3.1.1 the broker forwards it and the client cuts it before
// buffering (the message arrives empty, the owner is told its size); small messages pass either
// way, and the connection stays up. Against aedes (3.1.1 only) a refused MQTT 5 falls back.
import t from 'tap';
import mqtt, { type MqttClient } from 'mqtt';
import { startBroker } from '../../devkit/broker.js';
import { connectGuarded, downgradeToV4, isProtocolRefusal } from '../../src/telemetry/connect.js';
import { startEmbeddedBroker } from '../../src/telemetry/embedded-broker.js';
import type { OversizeInfo } from '../../src/telemetry/packet-guard.js';
import { TelemetryClient } from '../../src/telemetry/client.js';
import { topicsFor } from '../../src/telemetry/topics.js';

const broker = await startBroker();
t.teardown(() => broker.stop());

const LIMIT = 1024 * 1024;

function ready(c: MqttClient, topic: string): Promise<void> {
  return new Promise((resolve, reject) => {
    c.once('connect', () => c.subscribe(topic, { qos: 1 }, (e) => (e ? reject(e) : resolve())));
  });
}

async function sendBigThenSmall(topic: string): Promise<void> {
  const p = await mqtt.connectAsync(broker.url);
  await p.publishAsync(topic, Buffer.alloc(2 * LIMIT, 7), { qos: 1 });
  await p.publishAsync(topic, 'small', { qos: 1 });
  await p.endAsync();
}

for (const v of [5, 4] as const) {
  const skip = broker.kind === 'mosquitto' ? false : 'needs Mosquitto';
  t.test(`MQTT ${v}: a 2 MB message over a 1 MB limit is never buffered; the next one arrives`, { skip }, async (t) => {
    const seen: OversizeInfo[] = [];
    const got: Array<{ len: number; text: string }> = [];
    const c = connectGuarded(broker.url, { protocolVersion: v, reconnectPeriod: 0 }, { maxBytes: LIMIT, onOversize: (i) => seen.push(i) });
    t.teardown(() => c.endAsync(true));
    c.on('message', (_topic, payload) => got.push({ len: payload.length, text: payload.length < 100 ? String(payload) : '' }));
    await ready(c, `bounded/v${v}`);
    await sendBigThenSmall(`bounded/v${v}`);
    const until = Date.now() + 5000;
    while (!got.some((g) => g.text === 'small') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    if (v === 5) {
      t.same(got, [{ len: 5, text: 'small' }], 'Mosquitto honoured Maximum Packet Size: only the small one came');
      t.same(seen, [], 'nothing for the client to cut');
    } else {
      t.same(
        got,
        [
          { len: 0, text: '' },
          { len: 5, text: 'small' },
        ],
        'the big one arrived empty',
      );
      t.match(seen, [{ type: 3, topic: 'bounded/v4', limit: LIMIT }]);
      t.ok(seen[0]!.bytes > 2 * LIMIT, 'with its real size');
    }
    t.ok(c.connected, 'still connected');
  });
}

t.test('aedes refuses MQTT 5: the client falls back to 3.1.1 and connects', async (t) => {
  const b = await startEmbeddedBroker('127.0.0.1', 0, () => undefined, LIMIT);
  t.teardown(() => b.close());
  const c = connectGuarded(b.url, { reconnectPeriod: 0 }, { maxBytes: LIMIT });
  t.teardown(() => c.endAsync(true));
  const refused = await new Promise<unknown>((resolve) => c.once('error', resolve));
  t.ok(isProtocolRefusal(refused), 'MQTT 5 refused');
  t.ok(downgradeToV4(c), 'downgraded');
  c.reconnect();
  await new Promise<void>((resolve) => c.once('connect', () => resolve()));
  t.equal(c.options.protocolVersion, 4);
  // and the broker's own guard: a packet over its limit closes the sender at the header
  const p = mqtt.connect(b.url, { reconnectPeriod: 0 });
  await new Promise<void>((resolve) => p.once('connect', () => resolve()));
  const closed = new Promise<void>((resolve) => p.once('close', () => resolve()));
  p.publish('x', Buffer.alloc(2 * LIMIT), { qos: 1 });
  await closed;
  t.pass('the embedded broker closed the sender of a 2 MB packet');
  p.end(true);
});

t.test("the agent's link against a broker without MQTT 5 (an external aedes): refused once, then connected with 3.1.1", async (t) => {
  const b = await startEmbeddedBroker('127.0.0.1', 0, () => undefined);
  t.teardown(() => b.close());
  const settings = { url: b.url, rejectUnauthorized: true, keepaliveS: 30, backoffMinMs: 50, backoffMaxMs: 200, connectTimeoutMs: 5000 };
  const client = new TelemetryClient({ ...settings, maxPacketBytes: LIMIT }, topicsFor('dev-v4'), 'dev-v4', 'test', 'edgefit-dev-v4');
  const errors: string[] = [];
  client.on('error', (e) => errors.push(e.message));
  const connected = new Promise<void>((resolve) => client.once('connected', () => resolve()));
  client.start();
  t.teardown(() => client.stop(500));
  await connected;
  t.match(errors, [/Unacceptable protocol version/, /reconnecting with MQTT 3\.1\.1/]);
  t.ok(client.connected);
});

t.test("the dashboard's link: a message over its 256 KB payload cap is counted as dropped, never read", async (t) => {
  const { FleetLink } = await import('../../src/dashboard/link.js');
  const { Fleet } = await import('../../src/dashboard/fleet.js');
  const { DashboardStore } = await import('../../src/dashboard/store.js');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  // aedes forwards any size (no limit given here) and speaks 3.1.1: the link's own cut is what holds
  const b = await startEmbeddedBroker('127.0.0.1', 0, () => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-bounded-link-'));
  const store = new DashboardStore(dir);
  const logs: string[] = [];
  const link = new FleetLink({ broker: b.url, prefix: 'edgefit', log: (l) => logs.push(l) }, new Fleet(store), store);
  t.teardown(async () => {
    await link.stop();
    store.db.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await link.start();
  t.match(logs, ['mqtt: the broker refused MQTT 5, using 3.1.1']);
  const p = await mqtt.connectAsync(b.url);
  // the link subscribes once connected: wait until an (ignored, empty) message gets through
  for (let i = 0; i < 100 && link.stats.received === 0; i++) {
    await p.publishAsync('edgefit/dev-y/status', '', { qos: 1 });
    await new Promise((r) => setTimeout(r, 50));
  }
  await p.publishAsync('edgefit/dev-x/metrics', Buffer.alloc(8 * 1048576, 32), { qos: 1 });
  await p.endAsync();
  const until = Date.now() + 5000;
  while (link.stats.dropped === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  t.equal(link.stats.dropped, 1);
  t.match(link.stats.lastDrop, /^edgefit\/dev-x\/metrics: payload of 83886\d\d bytes, not read$/);
  t.ok(link.connected(), 'still connected');
});
