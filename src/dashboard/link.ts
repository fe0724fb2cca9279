// The dashboard's MQTT side: subscribe to every device's topics, validate and route payloads
// into the fleet state, and send action requests (answers come back on response/<verb>).
import type { MqttClient } from 'mqtt';
import { randomUUID } from 'node:crypto';
import { EdgefitError } from '../errors.js';
import type { Fleet } from './fleet.js';
import type { DashboardStore } from './store.js';
import { buildRequest } from './adapt.js';
import type { ResponsePayload } from '../telemetry/payloads.js';
import type { SigningKey } from '../telemetry/signing.js';
import { connectGuarded, downgradeToV4, isProtocolRefusal } from '../telemetry/connect.js';
import { ENVELOPE_BYTES } from '../telemetry/limits.js';
import type { ActionVerb, ActionView } from './model.js';
import { validatePayload } from './validate.js';
import { mqttTlsOptions, type MqttTlsFiles } from '../telemetry/tls.js';
import { Admission, type AdmissionOptions, type Offer } from './admission.js';

/** Device ids become MQTT topic levels and SQL keys: the agent's own rule (src/telemetry/topics.ts). */
export const DEVICE_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const PREFIX_RE = /^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;
/** Larger payloads are dropped unread: a profile or a frontier is a few KB. */
const MAX_PAYLOAD = 256 * 1024;
/** Retained statuses asked for at once (one short subscription each), and how long each waits. */
const STATUS_FETCHES = 64;
const STATUS_FETCH_MS = 3000;

export const TOPIC_KINDS = ['status', 'profile', 'metrics', 'events'] as const;

export interface LinkOptions {
  broker: string;
  prefix: string;
  username?: string;
  password?: string;
  /** signs requests (the operator key; HMAC only for legacy fleets); without it requests go unsigned */
  signingKey?: SigningKey;
  /** CA, client certificate and key for an mqtts:// broker */
  tls?: MqttTlsFiles;
  /** 4: MQTT 3.1.1 from the start; default 5 (falling back to 3.1.1 when the broker refuses it) */
  protocolVersion?: 4 | 5;
  /** which new device ids become fleet rows, and how fast (admission.ts) */
  admission?: Omit<AdmissionOptions, 'log'>;
  log?: (line: string) => void;
}

export interface LinkStats {
  received: number;
  dropped: number;
  lastDrop: string | null;
}

export class FleetLink {
  private client: MqttClient | null = null;
  readonly stats: LinkStats = { received: 0, dropped: 0, lastDrop: null };
  readonly admission: Admission;
  /** ids whose retained status is being fetched (bounded; see onMessage) */
  private readonly fetching = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly opts: LinkOptions,
    private readonly fleet: Fleet,
    private readonly store: DashboardStore,
  ) {
    if (!PREFIX_RE.test(opts.prefix)) throw new EdgefitError('USAGE', `bad MQTT prefix '${opts.prefix}'`);
    this.admission = new Admission({ ...opts.admission, ...(opts.log ? { log: opts.log } : {}) });
  }

  async start(): Promise<void> {
    this.admission.start();
    // packets over MAX_PAYLOAD (plus topic and header) are never buffered: MQTT 5 Maximum Packet
    // Size for the broker, and the client-side cut for brokers without it (issue 20)
    const client = connectGuarded(
      this.opts.broker,
      {
        clientId: `edgefit-dashboard-${randomUUID().slice(0, 8)}`,
        clean: true,
        reconnectPeriod: 1000,
        connectTimeout: 10_000,
        ...(this.opts.username ? { username: this.opts.username } : {}),
        ...(this.opts.password ? { password: this.opts.password } : {}),
        ...mqttTlsOptions(this.opts.broker, this.opts.tls ?? {}),
        ...(this.opts.protocolVersion ? { protocolVersion: this.opts.protocolVersion } : {}),
      },
      { maxBytes: MAX_PAYLOAD + ENVELOPE_BYTES, onOversize: (i) => this.drop(i.topic ?? '?', `payload of ${i.bytes} bytes, not read`) },
    );
    this.client = client;
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (e) =>
      this.opts.log?.(isProtocolRefusal(e) ? 'mqtt: the broker refused MQTT 5, using 3.1.1' : `mqtt: ${e.message}`),
    );
    const p = this.opts.prefix;
    const topics = [...TOPIC_KINDS.map((k) => `${p}/+/${k}`), `${p}/+/response/+`];
    // (re)subscribe on every connect: with clean sessions the broker forgets us on a drop. start()
    // returns once the first SUBACK is in: a device's first events (not retained) published
    // after start() would otherwise be lost while the subscription is still on its way
    let subscribed: (() => void) | undefined;
    const firstSubscription = new Promise<void>((r) => (subscribed = r));
    client.on('connect', () => {
      client.subscribe(topics, { qos: 1 }, (err) => {
        if (err) this.opts.log?.(`mqtt subscribe: ${err.message}`);
        subscribed?.();
        subscribed = undefined;
      });
    });
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error): void => {
        // a broker without MQTT 5 (the agent's embedded aedes): try again speaking 3.1.1
        if (isProtocolRefusal(e) && downgradeToV4(client)) {
          client.reconnect();
          return;
        }
        cleanup();
        reject(new EdgefitError('CONFIG', `cannot reach MQTT broker ${this.opts.broker}: ${e.message}`, { cause: e }));
      };
      const timer = setTimeout(() => onErr(new Error('timed out after 10 s')), 10_000);
      const cleanup = (): void => {
        clearTimeout(timer);
        client.off('error', onErr);
        client.off('connect', onOk);
      };
      const onOk = (): void => {
        cleanup();
        resolve();
      };
      client.once('connect', onOk);
      client.once('error', onErr);
    });
    // bounded like the connect: a broker that never answers the SUBSCRIBE must not hang start()
    let late: NodeJS.Timeout | undefined;
    await Promise.race([
      firstSubscription,
      new Promise<never>((_, reject) => {
        late = setTimeout(
          () => reject(new EdgefitError('CONFIG', `MQTT broker ${this.opts.broker} did not confirm the subscription within 10 s`)),
          10_000,
        );
      }),
    ]).finally(() => clearTimeout(late));
  }

  private drop(topic: string, why: string): void {
    this.stats.dropped++;
    this.stats.lastDrop = `${topic}: ${why}`;
  }

  onMessage(topic: string, payload: Buffer): void {
    this.stats.received++;
    const rest = topic.startsWith(`${this.opts.prefix}/`) ? topic.slice(this.opts.prefix.length + 1) : null;
    if (rest === null) return this.drop(topic, 'outside prefix');
    const parts = rest.split('/');
    const id = parts[0] ?? '';
    if (!DEVICE_ID_RE.test(id)) return this.drop(topic, 'bad device id');
    const known = this.fleet.has(id);
    // cheap refusal before parsing anything (counted by admission's log line, not as drops)
    if (!known && !this.admission.allowed(id)) return this.admission.refuse();
    if (payload.length > MAX_PAYLOAD) return this.drop(topic, `payload of ${payload.length} bytes`);
    // an empty retained message clears the topic (a decommissioned device): ignore it
    if (payload.length === 0) return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      return this.drop(topic, 'not JSON');
    }
    const kind = parts[1];
    let offer: Offer | null = null;
    if (parts.length === 2) {
      switch (kind) {
        case 'status': {
          const v = validatePayload('status', body);
          if ('err' in v) return this.drop(topic, v.err);
          offer = { kind: 'status', body: v.ok };
          break;
        }
        case 'profile': {
          const v = validatePayload('profile', body);
          if ('err' in v) return this.drop(topic, v.err);
          offer = { kind: 'profile', body: v.ok };
          break;
        }
        case 'metrics': {
          const v = validatePayload('metrics', body);
          if ('err' in v) return this.drop(topic, v.err);
          offer = { kind: 'metrics', body: v.ok };
          break;
        }
        case 'events': {
          const v = validatePayload('event', body);
          if ('err' in v) return this.drop(topic, v.err);
          offer = { kind: 'event', body: v.ok };
          break;
        }
      }
    }
    if (offer) {
      if (known) return this.apply(id, offer);
      const admitted = this.admission.offer(id, offer, payload.length);
      if (!admitted) {
        if (offer.kind === 'metrics') this.fetchStatus(id);
        return;
      }
      this.endFetch(id);
      // replay what the device sent while it waited, in the order an agent sends it
      if (admitted.status) this.fleet.onStatus(id, admitted.status);
      if (admitted.profile) this.fleet.onProfile(id, admitted.profile);
      for (const e of admitted.events) this.fleet.onEvent(id, e);
      if (admitted.metrics) this.fleet.onMetrics(id, admitted.metrics);
      return;
    }
    if (parts.length === 3 && kind === 'response') {
      // only a known device can answer a request we sent
      return known ? this.onResponse(id, parts[2]!, body, topic) : this.drop(topic, 'response from an unknown device');
    }
    return this.drop(topic, 'unknown topic');
  }

  /**
   * A new id sent metrics while waiting without a status: a real agent's retained status was
   * evicted from the pending pool by a flood, or arrived before the pool existed. Subscribing to
   * that one topic makes the broker send the retained status again; a few at a time, once per
   * pending id, so ids that only ever publish metrics cost one short subscription each at most.
   */
  private fetchStatus(id: string): void {
    const c = this.client;
    if (!c || this.fetching.has(id) || this.fetching.size >= STATUS_FETCHES || !this.admission.wantsStatus(id)) return;
    const topic = `${this.opts.prefix}/${id}/status`;
    this.fetching.set(
      id,
      setTimeout(() => this.endFetch(id), STATUS_FETCH_MS),
    );
    c.subscribe(topic, { qos: 1 }, (err) => {
      if (err) this.endFetch(id);
    });
  }

  private endFetch(id: string): void {
    const timer = this.fetching.get(id);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.fetching.delete(id);
    this.client?.unsubscribe(`${this.opts.prefix}/${id}/status`);
  }

  private apply(id: string, m: Offer): void {
    switch (m.kind) {
      case 'status':
        return this.fleet.onStatus(id, m.body);
      case 'profile':
        return this.fleet.onProfile(id, m.body);
      case 'metrics':
        return this.fleet.onMetrics(id, m.body);
      case 'event':
        return this.fleet.onEvent(id, m.body);
    }
  }

  private onResponse(id: string, verb: string, body: unknown, topic: string): void {
    const v = validatePayload('response', body);
    if ('err' in v) return this.drop(topic, v.err);
    const resp = v.ok;
    if (!resp.txn) return this.drop(topic, 'response without transaction id');
    const now = Date.now();
    // only responses to requests we sent are recorded: other consoles' traffic is not ours
    if (!this.store.answerAction(id, resp.txn, resp, now)) return;
    const a = this.store.action(resp.txn);
    if (!a) return;
    if (verb === 'get-frontier' && resp.ok) this.fleet.onFrontier(id, resp);
    this.fleet.onAction(id, toView(a));
  }

  /** Publish a request; returns the recorded action (its response arrives later). */
  async request(id: string, verb: ActionVerb, args: Record<string, unknown>): Promise<ActionView> {
    if (!this.client) throw new EdgefitError('INTERNAL', 'dashboard MQTT link not started');
    if (!DEVICE_ID_RE.test(id)) throw new EdgefitError('USAGE', `bad device id '${id}'`);
    const tx = randomUUID();
    const payload = buildRequest(id, verb, tx, args, this.opts.signingKey);
    const ts = Date.now();
    this.store.addAction({ tx, device: id, verb, ts, request: payload });
    // announce the pending request before publishing: a fast device can answer before our
    // PUBACK arrives, and the answer must reach browsers after the request, not before
    const view: ActionView = { tx, verb, ts, request: payload, response: null, responseTs: null, ok: null };
    this.fleet.onAction(id, view);
    await this.client.publishAsync(`${this.opts.prefix}/${id}/request/${verb}`, JSON.stringify(payload), { qos: 1 });
    return view;
  }

  connected(): boolean {
    return this.client?.connected ?? false;
  }

  async stop(): Promise<void> {
    this.admission.stop();
    for (const t of this.fetching.values()) clearTimeout(t);
    this.fetching.clear();
    const c = this.client;
    this.client = null;
    if (c) await c.endAsync(true);
  }
}

export function toView(a: Omit<ActionView, 'ok'>): ActionView {
  return {
    tx: a.tx,
    verb: a.verb,
    ts: a.ts,
    request: a.request,
    response: a.response,
    responseTs: a.responseTs,
    ok: a.response === null ? null : (a.response as Partial<ResponsePayload>).ok === true,
  };
}
