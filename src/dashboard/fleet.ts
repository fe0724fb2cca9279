// In-memory fleet state: one entry per device, updated by MQTT messages, flushed every tick.
// Messages only mark devices dirty; the flush (every ~250 ms) writes one SQLite transaction and
// sends browsers one batched update, so cost scales with ticks, not with message rate.
import type { DashboardStore } from './store.js';
import {
  SPARK_POINTS,
  emptyFit,
  violationScore,
  type ActionView,
  type DeviceEvent,
  type DeviceSummary,
  type FrontierPoint,
  type MetricPoint,
  type StreamMessage,
} from './model.js';
import { adaptMetrics, adaptProfile, adaptStatus, adaptEvent, adaptFrontier } from './adapt.js';
import type { EventPayload, MetricsPayload, ProfilePayload, ResponsePayload, StatusPayload } from '../telemetry/payloads.js';
import { validatePayload } from './validate.js';

interface DeviceState {
  summary: DeviceSummary;
  status: unknown;
  profile: unknown;
  frontier: FrontierPoint[];
}

type Pending =
  | { kind: 'status'; id: string; raw: unknown; online: boolean; ts: number }
  | { kind: 'profile'; id: string; raw: unknown; ts: number }
  | { kind: 'metrics'; id: string; raw: unknown; point: MetricPoint }
  | { kind: 'event'; id: string; raw: unknown; ts: number }
  | { kind: 'frontier'; id: string; raw: unknown };

function emptySummary(id: string): DeviceSummary {
  return {
    id,
    online: false,
    lastSeen: 0,
    board: null,
    modelId: null,
    level: null,
    levels: null,
    budgets: {},
    met: {},
    violation: 0,
    fit: emptyFit(),
    last: null,
    spark: { lat: [], ram: [], temp: [] },
  };
}

function push<T>(arr: T[], v: T): void {
  arr.push(v);
  if (arr.length > SPARK_POINTS) arr.splice(0, arr.length - SPARK_POINTS);
}

export class Fleet {
  private readonly devices = new Map<string, DeviceState>();
  private dirty = new Set<string>();
  private pending: Pending[] = [];
  private perDevice: StreamMessage[] = [];

  constructor(private readonly store: DashboardStore) {
    // warm start: the last known state of every device, then live messages take over
    for (const d of store.devices()) {
      const st: DeviceState = { summary: emptySummary(d.id), status: d.status, profile: d.profile, frontier: [] };
      st.summary.lastSeen = d.lastSeen;
      st.summary.online = d.online;
      // stored payloads were valid when they arrived; re-check in case the schema moved on
      const prof = validatePayload('profile', d.profile);
      if ('ok' in prof) Object.assign(st.summary, adaptProfile(prof.ok));
      const met = validatePayload('metrics', d.metrics);
      if ('ok' in met) this.applyMetricsToSummary(st.summary, met.ok, null);
      for (const p of store.history(d.id, 0, SPARK_POINTS)) this.pushSpark(st.summary, p);
      const fr = validatePayload('response', d.frontier);
      if ('ok' in fr) st.frontier = adaptFrontier(fr.ok, st.summary.level);
      this.devices.set(d.id, st);
    }
  }

  private get(id: string): DeviceState {
    let d = this.devices.get(id);
    if (!d) {
      d = { summary: emptySummary(id), status: null, profile: null, frontier: [] };
      this.devices.set(id, d);
    }
    return d;
  }

  private pushSpark(s: DeviceSummary, p: MetricPoint): void {
    push(s.spark.lat, p.latencyMs);
    push(s.spark.ram, p.ramMb);
    push(s.spark.temp, p.tempC);
  }

  private applyMetricsToSummary(s: DeviceSummary, raw: MetricsPayload, point: MetricPoint | null): void {
    const m = adaptMetrics(raw, Date.now());
    s.modelId = m.modelId;
    s.level = m.level;
    s.levels = m.levels;
    s.budgets = m.budgets;
    s.met = m.met;
    s.fit = m.fit;
    s.served = m.served;
    s.latencyBusy = m.latencyBusy;
    s.last = point ?? m.point;
    // a figure taken while the box's own fit was training sorts nothing over budget (the agent sent meets.latency null)
    s.violation = violationScore(s.budgets, s.last && s.latencyBusy ? { ...s.last, latencyMs: null } : s.last, s.met);
  }

  onStatus(id: string, raw: StatusPayload, now = Date.now()): void {
    const d = this.get(id);
    const { online } = adaptStatus(raw);
    d.status = raw;
    d.summary.online = online;
    d.summary.lastSeen = now;
    this.dirty.add(id);
    this.pending.push({ kind: 'status', id, raw, online, ts: now });
  }

  onProfile(id: string, raw: ProfilePayload, now = Date.now()): void {
    const d = this.get(id);
    d.profile = raw;
    Object.assign(d.summary, adaptProfile(raw));
    d.summary.lastSeen = now;
    this.dirty.add(id);
    this.pending.push({ kind: 'profile', id, raw, ts: now });
  }

  onMetrics(id: string, raw: MetricsPayload, now = Date.now()): void {
    const d = this.get(id);
    const point = adaptMetrics(raw, now).point;
    this.applyMetricsToSummary(d.summary, raw, point);
    this.pushSpark(d.summary, point);
    d.summary.lastSeen = now;
    // a device that sends metrics is connected, whatever a stale retained status said
    d.summary.online = true;
    this.dirty.add(id);
    this.pending.push({ kind: 'metrics', id, raw, point });
    this.perDevice.push({ kind: 'metrics', device: id, points: [point] });
  }

  onEvent(id: string, raw: EventPayload, now = Date.now()): void {
    const ev = adaptEvent(raw, now);
    this.get(id).summary.lastSeen = now;
    this.dirty.add(id);
    this.pending.push({ kind: 'event', id, raw, ts: ev.ts });
    this.perDevice.push({ kind: 'event', device: id, events: [ev] });
  }

  onFrontier(id: string, raw: ResponsePayload): void {
    const d = this.get(id);
    d.frontier = adaptFrontier(raw, d.summary.level);
    this.pending.push({ kind: 'frontier', id, raw });
    this.perDevice.push({ kind: 'frontier', device: id, frontier: d.frontier });
  }

  onAction(id: string, action: ActionView): void {
    this.perDevice.push({ kind: 'action', device: id, action });
  }

  has(id: string): boolean {
    return this.devices.has(id);
  }

  size(): number {
    return this.devices.size;
  }

  summaries(): DeviceSummary[] {
    return [...this.devices.values()].map((d) => d.summary);
  }

  state(id: string): DeviceState | undefined {
    return this.devices.get(id);
  }

  /**
   * Persist everything that arrived since the last flush in one transaction and return the
   * messages to stream: one `fleet` message with the changed summaries, then per-device detail.
   */
  flush(): StreamMessage[] {
    const pending = this.pending;
    this.pending = [];
    if (pending.length) {
      this.store.batch(() => {
        for (const p of pending) {
          switch (p.kind) {
            case 'status':
              this.store.setStatus(p.id, p.raw, p.online, p.ts);
              break;
            case 'profile':
              this.store.setProfile(p.id, p.raw, p.ts);
              break;
            case 'metrics':
              this.store.addMetrics(p.id, p.raw, p.point);
              break;
            case 'event':
              this.store.addEvent(p.id, p.ts, p.raw);
              break;
            case 'frontier':
              this.store.setFrontier(p.id, p.raw);
              break;
          }
        }
      });
    }
    const out: StreamMessage[] = [];
    if (this.dirty.size) {
      const devices: DeviceSummary[] = [];
      for (const id of this.dirty) {
        const d = this.devices.get(id);
        if (d) devices.push(d.summary);
      }
      this.dirty = new Set();
      out.push({ kind: 'fleet', devices, total: this.devices.size });
    }
    out.push(...this.perDevice);
    this.perDevice = [];
    return out;
  }
}

export type { DeviceEvent };
