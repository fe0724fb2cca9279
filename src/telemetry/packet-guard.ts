// A maximum MQTT packet size enforced before buffering (issue 20). mqtt-packet's parser keeps
// every byte of a packet until the last one arrives, so a 90 MB PUBLISH cost the agent 350 MB of
// RSS before any size check could run. This framer sits between the socket and the parser: it
// reads each packet's fixed header (type and Remaining Length) and, for a PUBLISH, its topic,
// then lets the packet through, or does not buffer it at all:
//  - 'truncate' (a client): an oversized PUBLISH reaches the parser with its payload cut off, so
//    the library still acknowledges it (a QoS 1 message never left unacknowledged would hold one
//    of the broker's in-flight slots for ever) and the owner hears the real size through
//    `onOversize`; any other oversized packet closes the connection (brokers send none).
//  - 'close' (a broker): an oversized packet of any kind closes the connection, as MQTT 5 asks.
// It is the guard for brokers that ignore MQTT 5's Maximum Packet Size (3.1.1, aedes).
import { Duplex } from 'node:stream';

const PUBLISH = 3;
/** MQTT's own bound on Remaining Length (four length bytes). */
export const MQTT_MAX_PACKET = 268_435_455;

export interface OversizeInfo {
  /** MQTT packet type (3 = PUBLISH). */
  type: number;
  /** The PUBLISH's topic (null for other packets). */
  topic: string | null;
  /** The packet's whole size in bytes, as its header declared it. */
  bytes: number;
  limit: number;
}

export interface GuardOptions {
  /** Largest packet (fixed header included) let through whole. */
  maxBytes: number;
  /** A tighter bound for a PUBLISH by its topic (only a deploy request needs to be large). */
  publishLimit?: (topic: string) => number;
  mode: 'truncate' | 'close';
  /** MQTT 5 PUBLISH packets carry properties after the packet id (read per connection). */
  protocolVersion: () => number;
  /** Told before the (truncated) packet reaches the parser. */
  onOversize?: (info: OversizeInfo) => void;
}

export class PacketTooLargeError extends Error {
  override readonly name = 'PacketTooLargeError';
  /** A code makes mqtt.js report the stream error (it ignores code-less ones). */
  readonly code = 'MQTT_PACKET_TOO_LARGE';
}

type State = { k: 'undecided' } | { k: 'pass'; left: number } | { k: 'skip'; left: number };

/** Decode an MQTT variable byte integer at `at`: its value and length, null when incomplete. */
function varint(b: Buffer, at: number): { value: number; len: number } | null {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    if (at + i >= b.length) return null;
    const c = b[at + i]!;
    value += (c & 0x7f) * 128 ** i;
    if ((c & 0x80) === 0) return { value, len: i + 1 };
  }
  throw new PacketTooLargeError('malformed MQTT variable byte integer');
}

function encodeVarint(n: number): Buffer {
  const out: number[] = [];
  do {
    let c = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) c |= 0x80;
    out.push(c);
  } while (n > 0);
  return Buffer.from(out);
}

/**
 * Splits an incoming byte stream into packets without holding more than a packet's fixed header
 * (and, for a PUBLISH, its topic and properties). push() returns the bytes to hand the parser,
 * and throws PacketTooLargeError when the connection must close.
 */
export class PacketFramer {
  private state: State = { k: 'undecided' };
  /** Bytes of a packet not yet decided on (bounded: a fixed header, a topic and 64 KB of properties),
   * kept as chunks and joined once `need` bytes are there (a drip-fed topic costs no quadratic copying). */
  private held: Buffer[] = [];
  private heldLen = 0;
  private need = 0;
  /** Packets cut or refused so far. */
  oversized = 0;

  constructor(private readonly o: GuardOptions) {}

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let buf = chunk;
    let at = 0;
    while (at < buf.length) {
      const s = this.state;
      if (s.k !== 'undecided') {
        const n = Math.min(s.left, buf.length - at);
        if (s.k === 'pass') out.push(buf.subarray(at, at + n));
        at += n;
        s.left -= n;
        if (s.left === 0) this.state = { k: 'undecided' };
        continue;
      }
      const rest = buf.subarray(at);
      if (this.heldLen + rest.length < this.need) {
        this.held.push(Buffer.from(rest));
        this.heldLen += rest.length;
        return out;
      }
      const data = this.heldLen > 0 ? Buffer.concat([...this.held, rest]) : rest;
      this.held = [];
      this.heldLen = 0;
      const d = this.decide(data, out);
      if ('need' in d) {
        // the header part being read is incomplete (and bounded): hold it until `need` bytes are in
        this.held = [Buffer.from(data)];
        this.heldLen = data.length;
        this.need = d.need;
        return out;
      }
      this.need = 0;
      buf = data;
      at = d.used;
    }
    return out;
  }

  /** Decide on the packet starting at data[0]: how many bytes the decision consumed (what follows
   * is in the new state), or how many it needs to decide. */
  private decide(data: Buffer, out: Buffer[]): { used: number } | { need: number } {
    if (data.length < 2) return { need: 2 };
    const r = varint(data, 1);
    if (r === null) return { need: data.length + 1 };
    const byte0 = data[0]!;
    const type = byte0 >> 4;
    const hdrLen = 1 + r.len;
    const remLen = r.value;
    const total = hdrLen + remLen;
    if (type !== PUBLISH) {
      if (total > this.o.maxBytes) this.refuse({ type, topic: null, bytes: total, limit: this.o.maxBytes });
      out.push(data.subarray(0, hdrLen));
      this.state = remLen > 0 ? { k: 'pass', left: remLen } : { k: 'undecided' };
      return { used: hdrLen };
    }
    const vh = this.varHeaderLen(data, hdrLen, byte0, remLen);
    if ('need' in vh) return vh;
    const v = vh.len;
    const topic = data.subarray(hdrLen + 2, hdrLen + 2 + data.readUInt16BE(hdrLen)).toString('utf8');
    const limit = Math.min(this.o.maxBytes, this.o.publishLimit?.(topic) ?? this.o.maxBytes);
    const end = hdrLen + v;
    if (total <= limit) {
      out.push(data.subarray(0, end));
      this.state = remLen > v ? { k: 'pass', left: remLen - v } : { k: 'undecided' };
      return { used: end };
    }
    const info = { type, topic, bytes: total, limit };
    if (this.o.mode === 'close') this.refuse(info);
    this.oversized++;
    this.o.onOversize?.(info);
    // the same packet without its payload: the parser and the library acknowledge it as usual
    out.push(Buffer.concat([Buffer.of(byte0), encodeVarint(v), data.subarray(hdrLen, end)]));
    this.state = remLen > v ? { k: 'skip', left: remLen - v } : { k: 'undecided' };
    return { used: end };
  }

  /** Length of a PUBLISH's variable header (topic, packet id, MQTT 5 properties), or the bytes
   * (from data[0]) needed to know it. */
  private varHeaderLen(data: Buffer, at: number, byte0: number, remLen: number): { len: number } | { need: number } {
    const have = (n: number): boolean => {
      if (n > remLen) throw new PacketTooLargeError('malformed MQTT PUBLISH: its header is longer than the packet');
      return data.length >= at + n;
    };
    if (!have(2)) return { need: at + 2 };
    const qos = (byte0 >> 1) & 3;
    let len = 2 + data.readUInt16BE(at) + (qos > 0 ? 2 : 0);
    if (!have(len)) return { need: at + len };
    if (this.o.protocolVersion() === 5) {
      const p = varint(data, at + len);
      if (p === null) {
        have(len + 1); // a property length is mandatory in MQTT 5
        return { need: data.length + 1 };
      }
      if (p.value > 65_536) throw new PacketTooLargeError('MQTT 5 PUBLISH properties over 64 KB');
      len += p.len + p.value;
      if (!have(len)) return { need: at + len };
    }
    return { len };
  }

  private refuse(info: OversizeInfo): never {
    this.oversized++;
    this.o.onOversize?.(info);
    throw new PacketTooLargeError(`MQTT packet of ${info.bytes} bytes exceeds the ${info.limit} byte limit`);
  }
}

/**
 * `inner` (a socket) with incoming bytes passed through a PacketFramer; writes go straight
 * through. A refused packet destroys the connection with a PacketTooLargeError.
 */
export function guardStream(inner: Duplex, opts: GuardOptions): Duplex {
  const framer = new PacketFramer(opts);
  const outer = new Duplex({
    read() {
      inner.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (inner.write(chunk)) cb();
      else inner.once('drain', () => cb());
    },
    final(cb) {
      inner.end(() => cb());
    },
    destroy(err, cb) {
      inner.destroy(err ?? undefined);
      cb(err);
    },
  });
  inner.on('data', (chunk: Buffer) => {
    let parts: Buffer[];
    try {
      parts = framer.push(chunk);
    } catch (e) {
      inner.pause();
      outer.destroy(e as Error);
      return;
    }
    for (const p of parts) if (!outer.push(p)) inner.pause();
  });
  inner.on('end', () => outer.push(null));
  inner.on('error', (e) => outer.destroy(e));
  inner.on('close', () => outer.destroy());
  return outer;
}
