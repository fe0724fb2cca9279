// Every MQTT client of edgefit (the agent's link, the dashboard's) connects through here, so a
// packet-size limit holds before anything is buffered (issue 20):
//  - MQTT 5: the limit goes out as the CONNECT's Maximum Packet Size, and a broker that honours it
//    (Mosquitto >= 1.6) never sends a bigger packet: it drops it on its side;
//  - always: a framer between the socket and mqtt.js's parser (packet-guard.ts) cuts the payload
//    off an oversized PUBLISH before it is buffered, for brokers that speak 3.1.1 or ignore the
//    property (aedes, the agent's embedded broker, speaks only 3.1.1).
import mqtt, { type IClientOptions, type IStream, type MqttClient } from 'mqtt';
import { EdgefitError } from '../errors.js';
import { guardStream, MQTT_MAX_PACKET, type OversizeInfo } from './packet-guard.js';

export interface PacketLimit {
  /** Largest packet accepted whole, in bytes (fixed header included). */
  maxBytes: number;
  /** A tighter bound for a PUBLISH by its topic. */
  publishLimit?: (topic: string) => number;
  /** An oversized PUBLISH arrived (its payload was not buffered; the message follows, empty). */
  onOversize?: (info: OversizeInfo) => void;
}

type Builder = (client: MqttClient, opts?: IClientOptions) => IStream;

/** Connect with `opts` (protocolVersion 5 unless it says 4) and the packet limit in force. */
export function connectGuarded(url: string, opts: IClientOptions, limit: PacketLimit): MqttClient {
  const v5 = (opts.protocolVersion ?? 5) === 5;
  const maxBytes = Math.min(limit.maxBytes, MQTT_MAX_PACKET);
  const c = mqtt.connect(url, {
    ...opts,
    protocolVersion: v5 ? 5 : 4,
    ...(v5 ? { properties: { ...opts.properties, maximumPacketSize: maxBytes } } : {}),
    // the stream builder is wrapped below, before the first connect
    manualConnect: true,
  });
  // mqtt.js keeps its per-protocol stream builder (tcp, tls, ws) in a field its typings mark
  // private; wrapping it keeps mqtt.js's URL, TLS and reconnect handling exactly as they are
  const holder = c as unknown as { streamBuilder: Builder };
  const build = holder.streamBuilder;
  if (typeof build !== 'function') throw new EdgefitError('INTERNAL', 'mqtt.js has no stream builder to guard (library changed?)');
  holder.streamBuilder = (client, o) =>
    guardStream(build(client, o) as Parameters<typeof guardStream>[0], {
      mode: 'truncate',
      maxBytes,
      publishLimit: limit.publishLimit,
      protocolVersion: () => client.options.protocolVersion ?? 4,
      onOversize: limit.onOversize,
    }) as IStream;
  c.connect();
  return c;
}

/** The broker refused MQTT 5 ('unacceptable protocol version' in 3.1.1, 0x84 in 5). */
export function isProtocolRefusal(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === 1 || code === 132;
}

/** Speak 3.1.1 from the next connect on (the framer still bounds every packet). */
export function downgradeToV4(c: MqttClient): boolean {
  if (c.options.protocolVersion !== 5) return false;
  c.options.protocolVersion = 4;
  delete c.options.properties;
  return true;
}
