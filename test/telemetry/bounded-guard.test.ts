// The MQTT packet-size guard (issue 20): packets under the limit pass byte for byte however the
// stream is split; an oversized PUBLISH reaches mqtt-packet's parser without its payload (and the
// owner hears its real size) without the framer ever holding it; anything else oversized, or
// malformed, closes the connection. Packets are made by mqtt-packet itself, the library's parser
// reads the framer's output.
import t from 'tap';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { PacketFramer, PacketTooLargeError, type GuardOptions, type OversizeInfo } from '../../src/telemetry/packet-guard.js';
import { maxRequestBytes, agentPacketLimits, ENVELOPE_BYTES } from '../../src/telemetry/limits.js';
import { topicsFor } from '../../src/telemetry/topics.js';

const gen = (p: Packet, protocolVersion = 4): Buffer => mqttPacket.generate(p, { protocolVersion });

function parseAll(bytes: Buffer[], protocolVersion = 4): Packet[] {
  const parser = mqttPacket.parser({ protocolVersion });
  const out: Packet[] = [];
  parser.on('packet', (p) => out.push(p));
  parser.on('error', (e) => {
    throw e;
  });
  for (const b of bytes) parser.parse(b);
  return out;
}

/** Feed `data` in chunks of the given sizes (cycled); returns what came out and the largest held. */
function feed(f: PacketFramer, data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(...f.push(data.subarray(at, at + n)));
    at += n;
  }
  return out;
}

const opts = (o: Partial<GuardOptions> = {}): GuardOptions => ({ maxBytes: 1024, mode: 'truncate', protocolVersion: () => 4, ...o });

const small: Packet[] = [
  { cmd: 'connack', returnCode: 0, sessionPresent: false },
  { cmd: 'suback', messageId: 7, granted: [1] },
  { cmd: 'publish', topic: 'edgefit/d/request/ping', payload: Buffer.from('{"txn":"a"}'), qos: 1, messageId: 9, retain: false, dup: false },
  { cmd: 'publish', topic: 'x', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false },
  { cmd: 'pingresp' },
  { cmd: 'puback', messageId: 3 },
];

t.test('packets under the limit pass unchanged, however the stream is split', async (t) => {
  const data = Buffer.concat(small.map((p) => gen(p)));
  for (const sizes of [[1], [2, 3], [7], [data.length], [5, 1, 64]]) {
    const out = Buffer.concat(feed(new PacketFramer(opts()), data, sizes));
    t.same(out, data, `chunks of ${sizes.join(',')}`);
  }
});

t.test('a long topic drip-fed a byte at a time is held, then passed whole', async (t) => {
  const p = gen({ cmd: 'publish', topic: 't'.repeat(60_000), payload: Buffer.from('x'), qos: 1, messageId: 2, retain: false, dup: false });
  const f = new PacketFramer(opts({ maxBytes: 100_000 }));
  t.same(Buffer.concat(feed(f, p, [1])), p);
});

t.test('an oversized PUBLISH reaches the parser without its payload; the packets after it are intact', async (t) => {
  const seen: OversizeInfo[] = [];
  const big = gen({
    cmd: 'publish',
    topic: 'edgefit/d/request/deploy',
    payload: Buffer.alloc(5000, 65),
    qos: 1,
    messageId: 42,
    retain: false,
    dup: false,
  });
  const after = gen({
    cmd: 'publish',
    topic: 'edgefit/d/request/ping',
    payload: Buffer.from('{}'),
    qos: 1,
    messageId: 43,
    retain: false,
    dup: false,
  });
  for (const sizes of [[1], [100], [big.length + after.length]]) {
    const f = new PacketFramer(opts({ onOversize: (i) => seen.push(i) }));
    const out = feed(f, Buffer.concat([big, after]), sizes);
    const bytes = out.reduce((n, b) => n + b.length, 0);
    t.ok(bytes < 100, `only headers came out (${bytes} bytes)`);
    const packets = parseAll(out);
    t.match(packets, [
      { cmd: 'publish', topic: 'edgefit/d/request/deploy', messageId: 42, qos: 1 },
      { cmd: 'publish', topic: 'edgefit/d/request/ping', messageId: 43 },
    ]);
    t.equal((packets[0] as { payload: Buffer }).payload.length, 0, 'payload cut');
    t.equal(String((packets[1] as { payload: Buffer }).payload), '{}');
    t.equal(f.oversized, 1);
  }
  t.same(seen[0], { type: 3, topic: 'edgefit/d/request/deploy', bytes: big.length, limit: 1024 });
});

t.test('MQTT 5: the properties stay with the cut packet', async (t) => {
  const p5: Packet = {
    cmd: 'publish',
    topic: 't/5',
    payload: Buffer.alloc(3000, 1),
    qos: 1,
    messageId: 5,
    retain: false,
    dup: false,
    properties: { contentType: 'application/json', userProperties: { a: 'b' } },
  };
  const f = new PacketFramer(opts({ protocolVersion: () => 5 }));
  const [cut] = parseAll(feed(f, gen(p5, 5), [3]), 5);
  t.match(cut, { cmd: 'publish', topic: 't/5', messageId: 5, properties: { contentType: 'application/json', userProperties: { a: 'b' } } });
  t.equal((cut as { payload: Buffer }).payload.length, 0);
});

t.test('per-topic limits: only a deploy may be large (from security.maxModelMb)', async (t) => {
  const topics = topicsFor('d');
  const lim = agentPacketLimits(topics, 1);
  t.equal(lim.maxBytes, maxRequestBytes('deploy', 1));
  t.equal(maxRequestBytes('deploy', 1), Math.ceil(1048576 / 3) * 4 + ENVELOPE_BYTES, 'base64 of the model plus the envelope');
  t.equal(maxRequestBytes('deploy', 4096), 268_435_455, "capped at MQTT's own limit");
  const f = new PacketFramer(opts({ maxBytes: lim.maxBytes, publishLimit: lim.publishLimit }));
  const payload = Buffer.alloc(100 * 1024, 32);
  const ping = gen({ cmd: 'publish', topic: topics.request('ping'), payload, qos: 0, retain: false, dup: false });
  const deploy = gen({ cmd: 'publish', topic: topics.request('deploy'), payload, qos: 0, retain: false, dup: false });
  const [p, d] = parseAll(feed(f, Buffer.concat([ping, deploy]), [65536]));
  t.equal((p as { payload: Buffer }).payload.length, 0, '100 KB ping: cut');
  t.equal((d as { payload: Buffer }).payload.length, payload.length, '100 KB deploy: whole');
});

t.test('refused at the header, before any payload: close mode, other packet types, malformed lengths', async (t) => {
  // the first bytes of a 90 MB PUBLISH: a broker in close mode refuses on its fixed header
  const header = gen({ cmd: 'publish', topic: 'a', payload: Buffer.alloc(90 * 1048576), qos: 0, retain: false, dup: false }).subarray(0, 8);
  const seen: OversizeInfo[] = [];
  t.throws(() => new PacketFramer(opts({ mode: 'close', onOversize: (i) => seen.push(i) })).push(header), PacketTooLargeError);
  t.equal(seen[0]?.bytes, 90 * 1048576 + 1 + 4 + 3);
  const sub = gen({ cmd: 'suback', messageId: 1, granted: Array.from({ length: 2000 }, () => 0 as const) });
  t.throws(() => new PacketFramer(opts()).push(sub.subarray(0, 4)), { code: 'MQTT_PACKET_TOO_LARGE' }, 'oversized SUBACK closes');
  t.throws(() => new PacketFramer(opts()).push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff])), /variable byte integer/);
  // a topic length longer than the packet
  t.throws(() => new PacketFramer(opts()).push(Buffer.from([0x30, 0x03, 0x00, 0x09, 0x61])), /longer than the packet/);
});
