// The dashboard's own SQLite file: the last known state of every device plus bounded history.
// History tables are ring buffers (primary key device+slot, slot = counter mod capacity) so the
// file cannot grow without bound however long the dashboard runs or however chatty a device is;
// nothing has to prune them. Writes arrive in batches (one transaction per flush) because 1,000
// devices at 1 msg/s would otherwise cost 1,000 fsyncs a second.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { EdgefitError } from '../errors.js';
import type { MetricPoint } from './model.js';

export const STORE_LIMITS = {
  /** metric points kept per device (1 h at the agent's default 1 s... or longer at slower rates) */
  metricsPerDevice: 3600,
  eventsPerDevice: 200,
  actionsKept: 5000,
} as const;

export interface StoredDevice {
  id: string;
  online: boolean;
  lastSeen: number;
  status: unknown;
  profile: unknown;
  metrics: unknown;
  frontier: unknown;
}

export interface StoredEvent {
  n: number;
  ts: number;
  payload: unknown;
}

export interface StoredAction {
  tx: string;
  device: string;
  verb: string;
  ts: number;
  request: unknown;
  response: unknown;
  responseTs: number | null;
}

const MIGRATIONS = [
  `CREATE TABLE devices (
     id TEXT PRIMARY KEY, online INTEGER NOT NULL DEFAULT 0, last_seen INTEGER NOT NULL DEFAULT 0,
     status TEXT, profile TEXT, metrics TEXT, frontier TEXT,
     metric_next INTEGER NOT NULL DEFAULT 0, event_next INTEGER NOT NULL DEFAULT 0);
   CREATE TABLE metrics (
     device TEXT NOT NULL, slot INTEGER NOT NULL, n INTEGER NOT NULL, ts INTEGER NOT NULL,
     lat REAL, p95 REAL, ram REAL, temp REAL, cpu REAL, fid REAL,
     PRIMARY KEY (device, slot)) WITHOUT ROWID;
   CREATE TABLE events (
     device TEXT NOT NULL, slot INTEGER NOT NULL, n INTEGER NOT NULL, ts INTEGER NOT NULL, payload TEXT NOT NULL,
     PRIMARY KEY (device, slot)) WITHOUT ROWID;
   CREATE TABLE actions (
     tx TEXT PRIMARY KEY, device TEXT NOT NULL, verb TEXT NOT NULL, ts INTEGER NOT NULL,
     request TEXT NOT NULL, response TEXT, response_ts INTEGER);
   CREATE INDEX actions_device ON actions(device, ts);`,
] as const;

function parse(s: unknown): unknown {
  if (typeof s !== 'string') return null;
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return null;
  }
}

export class DashboardStore {
  readonly db: Database.Database;
  private readonly stmts;
  private readonly next = new Map<string, { metric: number; event: number }>();

  constructor(stateDir: string) {
    try {
      mkdirSync(stateDir, { recursive: true });
      this.db = new Database(join(stateDir, 'dashboard.sqlite'));
    } catch (e) {
      throw new EdgefitError('CONFIG', `cannot open dashboard state in '${stateDir}': ${(e as Error).message}`, { cause: e });
    }
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a power cut can lose the last flush but never corrupts the file;
    // the devices republish their retained state anyway.
    this.db.pragma('synchronous = NORMAL');
    this.migrate();
    const db = this.db;
    this.stmts = {
      upsertDevice: db.prepare(`INSERT INTO devices (id) VALUES (?) ON CONFLICT(id) DO NOTHING`),
      setStatus: db.prepare(`UPDATE devices SET status = ?, online = ?, last_seen = ? WHERE id = ?`),
      setProfile: db.prepare(`UPDATE devices SET profile = ?, last_seen = ? WHERE id = ?`),
      setMetrics: db.prepare(`UPDATE devices SET metrics = ?, last_seen = ?, metric_next = ? WHERE id = ?`),
      setFrontier: db.prepare(`UPDATE devices SET frontier = ? WHERE id = ?`),
      setEventNext: db.prepare(`UPDATE devices SET event_next = ? WHERE id = ?`),
      putMetric: db.prepare(`INSERT OR REPLACE INTO metrics (device, slot, n, ts, lat, p95, ram, temp, cpu, fid)
                             VALUES (@device, @slot, @n, @ts, @lat, @p95, @ram, @temp, @cpu, @fid)`),
      putEvent: db.prepare(`INSERT OR REPLACE INTO events (device, slot, n, ts, payload) VALUES (?, ?, ?, ?, ?)`),
      allDevices: db.prepare(`SELECT id, online, last_seen, status, profile, metrics, frontier, metric_next, event_next FROM devices`),
      history: db.prepare(`SELECT n, ts, lat, p95, ram, temp, cpu, fid FROM metrics WHERE device = ? AND ts >= ? ORDER BY n DESC LIMIT ?`),
      events: db.prepare(`SELECT n, ts, payload FROM events WHERE device = ? ORDER BY n DESC LIMIT ?`),
      putAction: db.prepare(`INSERT INTO actions (tx, device, verb, ts, request) VALUES (?, ?, ?, ?, ?)`),
      answerAction: db.prepare(`UPDATE actions SET response = ?, response_ts = ? WHERE tx = ? AND device = ?`),
      actions: db.prepare(
        `SELECT tx, device, verb, ts, request, response, response_ts FROM actions WHERE device = ? ORDER BY ts DESC LIMIT ?`,
      ),
      action: db.prepare(`SELECT tx, device, verb, ts, request, response, response_ts FROM actions WHERE tx = ?`),
      trimActions: db.prepare(`DELETE FROM actions WHERE ts < (SELECT ts FROM actions ORDER BY ts DESC LIMIT 1 OFFSET ?)`),
    };
    for (const r of this.stmts.allDevices.all() as { id: string; metric_next: number; event_next: number }[]) {
      this.next.set(r.id, { metric: r.metric_next, event: r.event_next });
    }
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new EdgefitError('CONFIG', `dashboard state is from a newer edgefit (schema ${version} > ${MIGRATIONS.length})`);
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  private counters(id: string): { metric: number; event: number } {
    let c = this.next.get(id);
    if (!c) {
      this.stmts.upsertDevice.run(id);
      c = { metric: 0, event: 0 };
      this.next.set(id, c);
    }
    return c;
  }

  /** Run a batch of writes as one transaction. */
  batch(fn: () => void): void {
    this.db.transaction(fn)();
  }

  setStatus(id: string, status: unknown, online: boolean, ts: number): void {
    this.counters(id);
    this.stmts.setStatus.run(JSON.stringify(status), online ? 1 : 0, ts, id);
  }

  setProfile(id: string, profile: unknown, ts: number): void {
    this.counters(id);
    this.stmts.setProfile.run(JSON.stringify(profile), ts, id);
  }

  setFrontier(id: string, frontier: unknown): void {
    this.counters(id);
    this.stmts.setFrontier.run(JSON.stringify(frontier), id);
  }

  addMetrics(id: string, raw: unknown, p: MetricPoint): void {
    const c = this.counters(id);
    const n = c.metric++;
    this.stmts.putMetric.run({
      device: id,
      slot: n % STORE_LIMITS.metricsPerDevice,
      n,
      ts: p.ts,
      lat: p.latencyMs,
      p95: p.latencyP95Ms,
      ram: p.ramMb,
      temp: p.tempC,
      cpu: p.cpuLoad,
      fid: p.fidelity,
    });
    this.stmts.setMetrics.run(JSON.stringify(raw), p.ts, c.metric, id);
  }

  addEvent(id: string, ts: number, payload: unknown): void {
    const c = this.counters(id);
    const n = c.event++;
    this.stmts.putEvent.run(id, n % STORE_LIMITS.eventsPerDevice, n, ts, JSON.stringify(payload));
    this.stmts.setEventNext.run(c.event, id);
  }

  devices(): StoredDevice[] {
    return (this.stmts.allDevices.all() as Record<string, unknown>[]).map((r) => ({
      id: r.id as string,
      online: r.online === 1,
      lastSeen: r.last_seen as number,
      status: parse(r.status),
      profile: parse(r.profile),
      metrics: parse(r.metrics),
      frontier: parse(r.frontier),
    }));
  }

  /** Most recent points first trimmed to `limit`, returned oldest first. */
  history(id: string, sinceMs: number, limit: number): MetricPoint[] {
    const rows = this.stmts.history.all(id, sinceMs, limit) as Record<string, number | null>[];
    return rows.reverse().map((r) => ({
      ts: r.ts as number,
      latencyMs: r.lat ?? null,
      latencyP95Ms: r.p95 ?? null,
      ramMb: r.ram ?? null,
      tempC: r.temp ?? null,
      cpuLoad: r.cpu ?? null,
      fidelity: r.fid ?? null,
    }));
  }

  events(id: string, limit: number): StoredEvent[] {
    return (this.stmts.events.all(id, limit) as { n: number; ts: number; payload: string }[]).map((r) => ({
      n: r.n,
      ts: r.ts,
      payload: parse(r.payload),
    }));
  }

  addAction(a: { tx: string; device: string; verb: string; ts: number; request: unknown }): void {
    this.stmts.putAction.run(a.tx, a.device, a.verb, a.ts, JSON.stringify(a.request));
    this.stmts.trimActions.run(STORE_LIMITS.actionsKept);
  }

  /** Attach a response to the request it answers; false when no such request was sent by us. */
  answerAction(device: string, tx: string, response: unknown, ts: number): boolean {
    return this.stmts.answerAction.run(JSON.stringify(response), ts, tx, device).changes > 0;
  }

  actions(device: string, limit: number): StoredAction[] {
    return (this.stmts.actions.all(device, limit) as Record<string, unknown>[]).map(rowToAction);
  }

  action(tx: string): StoredAction | undefined {
    const r = this.stmts.action.get(tx) as Record<string, unknown> | undefined;
    return r ? rowToAction(r) : undefined;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function rowToAction(r: Record<string, unknown>): StoredAction {
  return {
    tx: r.tx as string,
    device: r.device as string,
    verb: r.verb as string,
    ts: r.ts as number,
    request: parse(r.request),
    response: parse(r.response),
    responseTs: (r.response_ts as number | null) ?? null,
  };
}
