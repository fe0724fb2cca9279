// The MQTT connection: Last Will 'offline' on status, retained 'online' on every connect,
// subscription to this device's request topics only, and reconnects with exponential backoff
// plus jitter (so a fleet does not stampede a broker that comes back).
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { EdgefitError } from '../errors.js';
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
}

export interface TelemetryClientEvents {
  connected: [];
  disconnected: [];
  request: [verb: string, payload: Buffer];
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
    const c = mqtt.connect(s.url, opts);
    this.client = c;
    c.on('connect', () => {
      this.attempt = 0;
      c.publish(this.topics.status, JSON.stringify(this.status('online', 'start')), { qos: 1, retain: true });
      c.subscribe(this.topics.requestFilter, { qos: 1 }, (err) => {
        if (err) this.emit('error', err);
      });
      this.emit('connected');
    });
    c.on('message', (topic, payload) => {
      const verb = this.topics.verbOf(topic);
      if (verb !== undefined) this.emit('request', verb, payload);
    });
    c.on('close', () => {
      this.emit('disconnected');
      this.scheduleReconnect();
    });
    // connection errors (refused, DNS) are retried; they are reported, never thrown
    c.on('error', (err) => this.emit('error', err));
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
      c.publish(topic, payload, { qos: opts.qos ?? 1, retain: opts.retain ?? false }, (err) => (err ? reject(err) : resolve()));
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
