// The MQTT connection: Last Will 'offline' on status, retained 'online' on every connect,
// subscription to this device's request topics only, and reconnects with exponential backoff
// plus jitter (so a fleet does not stampede a broker that comes back).
import { EventEmitter } from 'node:events';
import type { IClientOptions, MqttClient } from 'mqtt';
import { EdgefitError } from '../errors.js';
import { connectGuarded, downgradeToV4, isProtocolRefusal } from './connect.js';
import { PAYLOAD_VERSION, type ControlMode, type StatusPayload } from './payloads.js';
import type { Topics } from './topics.js';
import { mqttTlsOptions } from './tls.js';

export interface MqttSettings {
  url: string;
  username?: string;
  password?: string;
  /** Paths of PEM files, read at start (never taken from a payload). */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  rejectUnauthorized: boolean;
  keepaliveS: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  connectTimeoutMs: number;
  /** 5 (default): the packet limit also goes out as MQTT 5 Maximum Packet Size; 4: MQTT 3.1.1. */
  protocolVersion?: 4 | 5;
  /** Largest packet taken whole; bigger PUBLISHes arrive as requests with their size only. */
  maxPacketBytes: number;
  /** A tighter bound by topic (only request/deploy carries a model). */
  publishLimit?: (topic: string) => number;
}

export interface TelemetryClientEvents {
  connected: [];
  disconnected: [];
  /** `bytes`: set when the request was over the packet limit and its payload was never buffered
   * (`payload` is then empty). */
  request: [verb: string, payload: Buffer, bytes?: number];
  error: [err: Error];
}

/** Equal-jitter exponential backoff: half fixed, half random, capped. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, rnd = Math.random): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.round(cap / 2 + (rnd() * cap) / 2);
}

export class TelemetryClient extends EventEmitter<TelemetryClientEvents> {
  private client: MqttClient | undefined;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** Rejecters of publishes awaiting their PUBACK (failed when the connection closes). */
  private inFlight: Array<(e: Error) => void> = [];
  /** Oversized PUBLISHes the framer cut, in arrival order, until their empty message arrives. */
  private oversize: Array<{ topic: string; bytes: number }> = [];

  constructor(
    private readonly settings: MqttSettings,
    private readonly topics: Topics,
    private readonly deviceId: string,
    private readonly agentVersion: string,
    private readonly clientId: string,
    private readonly control?: ControlMode,
  ) {
    super();
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  status(state: StatusPayload['state'], reason: StatusPayload['reason']): StatusPayload {
    return {
      v: PAYLOAD_VERSION,
      deviceId: this.deviceId,
      state,
      reason,
      ts: new Date().toISOString(),
      agentVersion: this.agentVersion,
      ...(this.control ? { control: this.control } : {}),
    };
  }

  start(): void {
    const s = this.settings;
    const opts: IClientOptions = {
      clientId: this.clientId,
      clean: true,
      keepalive: s.keepaliveS,
      // we run our own reconnect loop with jitter; mqtt.js's fixed interval would not back off
      reconnectPeriod: 0,
      // no table of 65,536 pre-built 2-byte Buffers (~6 MB of heap in a process meant to idle
      // small); a device publishes a few messages a second at most
      writeCache: false,
      connectTimeout: s.connectTimeoutMs,
      username: s.username,
      password: s.password,
      // ca/cert/key read here, once; a TLS file with a plain mqtt:// URL is a CONFIG error
      ...mqttTlsOptions(s.url, s),
      will: {
        topic: this.topics.status,
        payload: Buffer.from(JSON.stringify(this.status('offline', 'lwt'))),
        qos: 1,
        retain: true,
      },
    };
    if (s.protocolVersion === 4) opts.protocolVersion = 4;
    const c = connectGuarded(s.url, opts, {
      maxBytes: s.maxPacketBytes,
      publishLimit: s.publishLimit,
      onOversize: (i) => {
        // bounded: each entry is taken by its (empty) message a moment later
        if (i.topic !== null && this.oversize.push({ topic: i.topic, bytes: i.bytes }) > 64) this.oversize.shift();
      },
    });
    this.client = c;
    c.on('connect', () => {
      this.attempt = 0;
      this.oversize = [];
      // 'online' is said once the broker has acknowledged the request subscription, so a
      // dashboard (or test) that sees it can command at once: a request published between the
      // CONNACK and the SUBACK would reach no subscriber and be lost without an answer
      c.subscribe(this.topics.requestFilter, { qos: 1 }, (err) => {
        if (err) this.emit('error', err);
        if (!c.connected) return; // the connection dropped before the SUBACK: the next connect says it
        c.publish(this.topics.status, JSON.stringify(this.status('online', 'start')), { qos: 1, retain: true });
        this.emit('connected');
      });
    });
    c.on('message', (topic, payload) => {
      const cut = payload.length === 0 && this.oversize[0]?.topic === topic ? this.oversize.shift() : undefined;
      const verb = this.topics.verbOf(topic);
      if (verb !== undefined) this.emit('request', verb, payload, cut?.bytes);
    });
    c.on('close', () => {
      // a QoS 1 publish whose PUBACK the dropped connection took along would otherwise wait for
      // ever (reconnect() starts mqtt.js on a fresh store) and stall the outbox behind it: fail
      // it, so its row is sent again after the reconnect (at-least-once; receivers dedupe by seq)
      for (const fail of this.inFlight.splice(0)) fail(new EdgefitError('INTERNAL', 'MQTT connection closed before the PUBACK'));
      this.emit('disconnected');
      this.scheduleReconnect();
    });
    // connection errors (refused, DNS) are retried; they are reported, never thrown
    c.on('error', (err) => {
      this.emit('error', err);
      // a broker without MQTT 5 (aedes, Mosquitto < 1.6): the next connect speaks 3.1.1
      if (isProtocolRefusal(err) && downgradeToV4(c))
        this.emit('error', new Error('broker refused MQTT 5: reconnecting with MQTT 3.1.1 (the packet limit still holds on this side)'));
    });
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer) return;
    const delay = backoffDelay(this.attempt++, this.settings.backoffMinMs, this.settings.backoffMaxMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.stopping && this.client && !this.client.connected) this.client.reconnect();
    }, delay);
  }

  publish(topic: string, payload: string, opts: { retain?: boolean; qos?: 0 | 1 } = {}): Promise<void> {
    const c = this.client;
    if (!c || !c.connected) return Promise.reject(new EdgefitError('INTERNAL', 'MQTT not connected'));
    return new Promise((resolve, reject) => {
      const fail = (e: Error): void => reject(e);
      this.inFlight.push(fail);
      c.publish(topic, payload, { qos: opts.qos ?? 1, retain: opts.retain ?? false }, (err) => {
        const i = this.inFlight.indexOf(fail);
        if (i >= 0) this.inFlight.splice(i, 1);
        if (err) reject(err);
        else resolve();
      });
    });
  }

  /** Publish 'offline' (retained) and disconnect, waiting at most timeoutMs. */
  async stop(timeoutMs = 2000): Promise<void> {
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const c = this.client;
    if (!c) return;
    const done = (async () => {
      if (c.connected) {
        await this.publish(this.topics.status, JSON.stringify(this.status('offline', 'shutdown')), { retain: true }).catch(() => undefined);
      }
      await new Promise<void>((r) => c.end(false, {}, () => r()));
    })();
    const timeout = new Promise<void>((r) => setTimeout(r, timeoutMs).unref());
    await Promise.race([done, timeout]);
    if (!c.disconnected) c.end(true);
  }
}
