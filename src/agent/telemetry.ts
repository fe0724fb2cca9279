// Telemetry: the agent's side of MQTT. Owns the broker connection (and the embedded broker when
// no URL is configured), the outbox publisher, the metrics timer, the retained profile, and
// turns bus traffic into messages: reportable events -> `events` (via the outbox), responses ->
// response/<verb>; requests arriving on request/<verb> go onto the bus as 'command'.
import type { AgentConfig } from '../config/agent.js';
import { oneLine } from '../errors.js';
import type { Budgets } from '../fit/types.js';
import type { Store } from '../store/index.js';
import { TelemetryClient } from '../telemetry/client.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../telemetry/embedded-broker.js';
import { agentPacketLimits } from '../telemetry/limits.js';
import { OutboxPublisher } from '../telemetry/outbox-publisher.js';
import { rssBytes } from '../util/rss.js';
import {
  BUSY_MAX,
  PAYLOAD_VERSION,
  type ControlMode,
  type EventPayload,
  type MetricsPayload,
  type ProfilePayload,
  type ResponsePayload,
  type ServedStatus,
  type TrainingStatus,
} from '../telemetry/payloads.js';
import type { ServeStats } from '../serve/types.js';
import type { Topics } from '../telemetry/topics.js';
import { latencyBudgetMs, latencyOfRuns, meets } from '../budgets/index.js';
import type { AgentBus, AgentBusEvents, Component } from './bus.js';
import { CpuMeter, readSystem } from './device.js';
import type { FitView } from './fit-manager.js';
import type { HardwareFacts } from './hardware.js';
import type { LatencyStats } from './latency.js';
import type { ModelVersion } from './model-store.js';

export interface TelemetryDeps {
  bus: AgentBus;
  store: Store;
  mqtt: AgentConfig['mqtt'];
  /** security.maxModelMb: the MQTT packet limit follows from it (src/telemetry/limits.ts). */
  maxModelMb: number;
  metricsIntervalS: number;
  deviceId: string;
  topics: Topics;
  agentVersion: string;
  /** Who may change the device, in the status payload (issue 20). */
  control?: ControlMode;
  stateDir: string;
  log: (line: string) => void;
  /** What goes into metrics and the profile. */
  fits: FitView;
  deployed: () => ModelVersion | undefined;
  budgets: () => Budgets;
  /** RAM cost of the served model, null when none is loaded. */
  modelRssMb: () => number | null;
  /** The original's p50 as timed live (null until timed): relative budgets are judged on it. */
  originalMs?: () => number | null;
  fitRunning?: () => boolean;
  /** The latest training on the box, deployed or not (FitManager.lastTraining). */
  training?: () => TrainingStatus | null;
  /** The task and metric the fit will judge by, known before any fit (null: unknown). */
  expectedTask?: { task: string; metric: string } | null;
  /** Where the serve process listens (nulls: serving is off) and whether input capture is on. */
  serving?: () => { url: string | null; socket: string | null; capture: boolean };
}

/** The metrics' `served` block: the last stats window (when fresh) of the deployed version. */
export function servedStatus(
  at: { url: string | null; socket: string | null; capture: boolean },
  last: { stats: ServeStats; at: number } | undefined,
  version: string | undefined,
  now = Date.now(),
): ServedStatus {
  // a window older than three windows is from a serve process that is gone
  const s = last && now - last.at < Math.max(3 * last.stats.windowS * 1000, 1000) ? last.stats : undefined;
  const v = s && version ? s.perVersion.find((p) => p.version === version && p.requests > 0) : undefined;
  const ms = (x: number | undefined): number | null => (x === undefined ? null : Math.round(x * 1000) / 1000);
  return {
    on: at.url !== null || at.socket !== null,
    url: at.url,
    socket: at.socket,
    capture: at.capture,
    windowS: s?.windowS ?? null,
    requests: s?.requests ?? 0,
    requestsPerS: s && s.windowS > 0 ? Math.round((s.requests / s.windowS) * 100) / 100 : null,
    errors: s?.errors ?? 0,
    rejected: s?.rejected ?? 0,
    runP50Ms: ms(v?.runP50Ms),
    runP95Ms: ms(v?.runP95Ms),
    totalP50Ms: ms(v?.totalP50Ms),
    totalP95Ms: ms(v?.totalP95Ms),
  };
}

/** Events a flood can cause: sent after metrics and the others, evicted first (mqtt.outboxLowMax). */
const LOW_VALUE_EVENTS: ReadonlySet<EventPayload['type']> = new Set(['command-rejected']);

export class Telemetry implements Component {
  brokerUrl = '';
  private broker: EmbeddedBroker | undefined;
  private client: TelemetryClient | undefined;
  private publisher: OutboxPublisher | undefined;
  private hw: HardwareFacts | undefined;
  private lastLatency: LatencyStats | null = null;
  private lastServed: { stats: ServeStats; at: number } | undefined;
  private readonly cpu = new CpuMeter();
  private timer: NodeJS.Timeout | undefined;
  private metricTicks = 0;
  private startedAt = 0;
  private stopped = false;
  private offs: Array<() => void> = [];

  constructor(private readonly d: TelemetryDeps) {}

  async start(): Promise<void> {
    const { bus, mqtt: m } = this.d;
    this.startedAt = Date.now();
    this.listen('event', (type, message, data, txn) => this.enqueueEvent(type, message, data, txn));
    this.listen('response', (verb, payload) => this.respond(verb, payload));
    this.listen('latency', (stats) => {
      this.lastLatency = stats;
    });
    this.listen('serve:stats', (stats) => {
      this.lastServed = { stats, at: Date.now() };
    });
    this.listen('budgets:changed', ({ budgets, txn }) => {
      bus.report('budgets-changed', `budgets now ${JSON.stringify(budgets)}`, { budgets }, txn);
      this.publishProfile();
    });
    this.listen('profiled', (hw) => {
      this.hw = hw;
      this.publishProfile();
      // metrics start once the hardware is known (they carry its throttling and budgets)
      this.timer = setInterval(() => this.metricsTick(), this.d.metricsIntervalS * 1000);
      this.metricsTick();
    });
    const limits = agentPacketLimits(this.d.topics, this.d.maxModelMb);
    if (m.url) {
      this.brokerUrl = m.url;
    } else {
      this.broker = await startEmbeddedBroker(m.embeddedHost, m.embeddedPort, this.d.log, limits.maxBytes);
      this.brokerUrl = this.broker.url;
    }
    const client = (this.client = new TelemetryClient(
      {
        url: this.brokerUrl,
        username: m.username ?? undefined,
        password: m.password ?? undefined,
        caFile: m.caFile ?? undefined,
        certFile: m.certFile ?? undefined,
        keyFile: m.keyFile ?? undefined,
        rejectUnauthorized: m.rejectUnauthorized,
        keepaliveS: m.keepaliveS,
        backoffMinMs: m.backoffMinMs,
        backoffMaxMs: m.backoffMaxMs,
        connectTimeoutMs: 10_000,
        // aedes speaks 3.1.1 only
        protocolVersion: m.url ? m.protocolVersion : 4,
        maxPacketBytes: limits.maxBytes,
        publishLimit: limits.publishLimit,
      },
      this.d.topics,
      this.d.deviceId,
      this.d.agentVersion,
      `edgefit-${this.d.deviceId}`,
      this.d.control,
    ));
    const link = {
      get connected() {
        return client.connected;
      },
      publish: (t: string, p: string) => client.publish(t, p),
    };
    const publisher = (this.publisher = new OutboxPublisher(this.d.store, link, m.drainRatePerSec));
    client.on('connected', () => {
      this.d.log(`connected to ${this.brokerUrl}`);
      const dropped = this.d.store.takeUnreportedDrops();
      if (dropped > 0) {
        bus.report('outbox-dropped', `${dropped} queued messages were dropped while the broker was away (outbox bound ${m.outboxMax})`, {
          dropped,
          total: this.d.store.counter('outbox_dropped'),
        });
      }
      this.publishProfile();
      publisher.kick();
    });
    client.on('disconnected', () => undefined);
    client.on('error', (e) => this.d.log(`mqtt: ${oneLine(e)}`));
    client.on('request', (verb, payload, bytes) => bus.emit('command', verb, payload, bytes));
    client.start();
    publisher.start();
    bus.report('agent-started', `agent ${this.d.agentVersion} started`, { stateDir: this.d.stateDir, broker: this.brokerUrl });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    const { store, bus } = this.d;
    if (store.db.open) {
      bus.report('agent-stopping', 'agent stopping');
      // flush what is queued while we still have a connection (bounded: the rest waits on disk)
      const until = Date.now() + 2000;
      while (this.client?.connected && store.outboxPending() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    }
    this.publisher?.stop();
    await this.client?.stop();
    for (const off of this.offs.splice(0)) off();
    await this.broker?.close();
  }

  private listen<K extends keyof AgentBusEvents>(event: K, f: (...a: AgentBusEvents[K]) => void): void {
    // the cast: TypeScript cannot resolve EventEmitter's conditional listener type for a generic K
    // (the signature above is what checks each listener)
    const bus = this.d.bus;
    bus.on(event, f as never);
    this.offs.push(() => bus.off(event, f as never));
  }

  uptimeS(): number {
    return Math.round((Date.now() - this.startedAt) / 1000);
  }

  private respond(verb: string, payload: ResponsePayload): void {
    this.client?.publish(this.d.topics.response(verb), JSON.stringify(payload)).catch(() => undefined);
  }

  private enqueueEvent(type: EventPayload['type'], message: string, data: Record<string, unknown>, txn?: string): void {
    if (!this.d.store.db.open) return;
    const build = (seq: number): string => {
      const ev: EventPayload = { v: PAYLOAD_VERSION, deviceId: this.d.deviceId, seq, ts: new Date().toISOString(), type, message, data };
      if (txn) ev.txn = txn;
      return JSON.stringify(ev);
    };
    this.d.store.enqueue('events', this.d.topics.events, build, { low: LOW_VALUE_EVENTS.has(type) });
    this.d.log(`${type}: ${message}`);
    this.publisher?.kick();
  }

  metricsPayload(seq: number): MetricsPayload {
    const fit = this.d.fits.current();
    const cur = this.d.deployed();
    const level = this.d.fits.level();
    const entry = level !== null ? fit?.frontier[level] : undefined;
    const b = this.d.budgets();
    const original = this.d.originalMs?.() ?? (fit?.fit.referenceLatencyP50Ms || null);
    const eff = latencyBudgetMs(b, original);
    const lat = this.lastLatency;
    const rss = this.d.modelRssMb();
    // a figure taken while the agent's own fit used the cores judges nothing (prober.ts): unknown
    const judged = lat && !lat.busy ? latencyOfRuns(lat) : null;
    const met = meets({ latencyMs: judged, ramMb: rss, fidelity: entry?.fidelity ?? null }, b, original).met;
    return {
      v: PAYLOAD_VERSION,
      deviceId: this.d.deviceId,
      seq,
      ts: new Date().toISOString(),
      system: readSystem(() => this.hw?.throttledNow() ?? null),
      agent: {
        rssMb: Math.round(rssBytes() / 104857.6) / 10,
        cpuPercent: this.cpu.read(),
        uptimeS: this.uptimeS(),
        outboxPending: this.d.store.outboxPending(),
        outboxDropped: this.d.store.counter('outbox_dropped'),
      },
      model: {
        id: cur?.candidateId ?? (cur ? (cur.source === 'original' ? 'original' : 'shipped') : null),
        level,
        levels: fit?.frontier.length ?? 0,
        version: cur?.version ?? null,
        latencyP50Ms: lat?.p50 ?? null,
        latencyP95Ms: lat?.p95 ?? null,
        latencySource: lat ? (lat.source ?? 'probe') : null,
        ...(lat?.busy ? { latencyBusy: lat.busy.slice(0, BUSY_MAX) } : {}),
        modelRssMb: rss,
        fidelity: entry?.fidelity ?? null,
      },
      budgets: { ...b, effectiveLatencyMs: eff },
      meets: { latency: met.latency, ram: met.ram, fidelity: met.fidelity },
      fit: {
        id: fit?.fitId ?? null,
        running: this.d.fitRunning?.() ?? false,
        task: fit?.fit.task ?? this.d.expectedTask?.task ?? null,
        fidelityMetric: fit?.fit.fidelityMetric ?? this.d.expectedTask?.metric ?? null,
        originalLatencyMs: original,
        shortfall: fit?.unmet?.shortfall ?? null,
        keeping: fit?.unmet?.keeping ?? null,
        message: fit?.unmet?.message ?? null,
        ...(this.d.training ? { training: this.d.training() } : {}),
      },
      ...(this.d.serving ? { served: servedStatus(this.d.serving(), this.lastServed, cur?.version) } : {}),
    };
  }

  private metricsTick(): void {
    if (this.stopped) return;
    try {
      let m: MetricsPayload | undefined;
      this.d.store.enqueue('metrics', this.d.topics.metrics, (s) => JSON.stringify((m = this.metricsPayload(s))));
      if (m) {
        this.d.store.addMetric({
          ts: Math.floor(Date.now() / 1000),
          cpuLoad: m.system.cpuLoad,
          temperatureC: m.system.temperatureC,
          memAvailableMb: m.system.memAvailableMb,
          rssMb: m.agent.rssMb,
          latencyP50Ms: m.model.latencyP50Ms,
          latencyP95Ms: m.model.latencyP95Ms,
          level: m.model.level,
        });
      }
      if (++this.metricTicks % 60 === 0) this.d.store.compactMetrics();
      this.publisher?.kick();
    } catch (e) {
      this.d.log(`metrics: ${oneLine(e)}`);
    }
  }

  private publishProfile(): void {
    const hw = this.hw;
    if (!hw || !this.client?.connected) return;
    const p: ProfilePayload = {
      v: PAYLOAD_VERSION,
      deviceId: this.d.deviceId,
      ts: new Date().toISOString(),
      profile: hw.profile,
      hardwareHash: hw.hash,
      hardware: hw.hardware,
      budgets: this.d.budgets(),
    };
    this.client.publish(this.d.topics.profile, JSON.stringify(p), { retain: true }).catch(() => undefined);
  }
}
