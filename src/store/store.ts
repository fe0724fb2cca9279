// The agent's state in one SQLite file (better-sqlite3, WAL, synchronous=FULL so a committed
// row survives power loss). Synchronous by design: every call is a short local transaction.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { EdgefitError } from '../errors.js';
import type { Budgets, FitResult, FrontierEntry, TrainedCandidate } from '../fit/types.js';
import { MIGRATIONS } from './migrations.js';

export const STREAMS = ['metrics', 'events'] as const;
export type Stream = (typeof STREAMS)[number];

export interface FitRow {
  id: number;
  fitKey: string;
  modelSha256: string;
  budgets: Budgets;
  hardwareHash: string;
  fitter: string;
  status: 'running' | 'done' | 'failed';
  chosenId: string | null;
  referenceLatencyMs: number | null;
  shortfall: FitResult['shortfall'] | null;
  /** What fidelity was judged for, and the metric's name; null for fits stored before issue 16. */
  task: string | null;
  fidelityMetric: string | null;
  /** The candidates the fit trained (FitResult.trained); empty for fits that trained none. */
  trained: TrainedCandidate[];
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
}
export interface DeploymentRow {
  id: number;
  version: string;
  fitId: number | null;
  candidateId: string | null;
  modelSha256: string;
  source: string;
  state: string;
  startedAt: string;
  finishedAt: string | null;
}
export interface MetricSample {
  ts: number;
  cpuLoad: number | null;
  temperatureC: number | null;
  memAvailableMb: number | null;
  rssMb: number | null;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  level: number | null;
}

export interface StoreOptions {
  /** Outbox bound: beyond it the oldest rows are dropped (low-value ones first) and counted. */
  outboxMax: number;
  /** Low-value rows kept at most (the rest of outboxMax is reserved for the others). */
  outboxLowMax: number;
  /** Raw metric rows kept (then folded into 5-minute means, kept for `downsampledKeepS`). */
  rawKeepS: number;
  downsampledKeepS: number;
}
export const DEFAULT_STORE_OPTIONS: StoreOptions = { outboxMax: 10_000, outboxLowMax: 500, rawKeepS: 3600, downsampledKeepS: 7 * 86400 };
const BUCKET_S = 300;

const nowIso = (): string => new Date().toISOString();
const fitStartsKey = (id: number): string => `fit-starts:${id}`;

export class Store {
  readonly db: Database.Database;
  private readonly opts: StoreOptions;

  constructor(path: string, opts: Partial<StoreOptions> = {}) {
    this.opts = { ...DEFAULT_STORE_OPTIONS, ...opts };
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('busy_timeout = 5000');
    } catch (e) {
      throw new EdgefitError('CONFIG', `cannot open state database ${path}: ${(e as Error).message}`, { cause: e });
    }
    this.migrate();
  }

  get schemaVersion(): number {
    return (this.db.prepare('SELECT version FROM schema_version').get() as { version: number }).version;
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    if (!this.db.prepare('SELECT 1 FROM schema_version').get()) this.db.prepare('INSERT INTO schema_version VALUES (0)').run();
    const have = this.schemaVersion;
    if (have > MIGRATIONS.length) {
      throw new EdgefitError('CONFIG', `state database has schema ${have}, newer than this agent (${MIGRATIONS.length}); upgrade edgefit`);
    }
    for (let v = have; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.prepare('UPDATE schema_version SET version = ?').run(v + 1);
      })();
    }
  }

  integrityOk(): boolean {
    const r = this.db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    return r.length === 1 && r[0]!.integrity_check === 'ok';
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  // ---- key/value and counters ----
  getKv(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM kv WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }
  setKv(key: string, value: string): void {
    this.db.prepare('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }
  counter(name: string): number {
    return (this.db.prepare('SELECT value FROM counters WHERE name = ?').get(name) as { value: number } | undefined)?.value ?? 0;
  }
  private bump(name: string, by: number): void {
    this.db
      .prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value')
      .run(name, by);
  }

  // ---- replay protection: signed txns accepted within the freshness window ----
  /**
   * Record a signed request's txn (ts in ms, as signed); false when that txn was accepted before.
   * Rows whose ts is older than `windowMs` before `now` go: a request that old fails the freshness
   * check before it gets here, so forgetting it reopens nothing.
   */
  acceptTxn(txn: string, tsMs: number, windowMs: number, now = Date.now()): boolean {
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM accepted_txns WHERE ts < ?').run(now - windowMs);
      return this.db.prepare('INSERT INTO accepted_txns (txn, ts) VALUES (?, ?) ON CONFLICT(txn) DO NOTHING').run(txn, tsMs).changes === 1;
    })();
  }
  acceptedTxns(): number {
    return (this.db.prepare('SELECT COUNT(*) AS c FROM accepted_txns').get() as { c: number }).c;
  }

  // ---- hardware profile ----
  saveHardware(hash: string, profile: string, json: unknown): void {
    this.db
      .prepare('INSERT INTO hardware_profile (ts, hash, profile, json) VALUES (?, ?, ?, ?)')
      .run(nowIso(), hash, profile, JSON.stringify(json));
  }
  lastHardware(): { hash: string; profile: string; json: unknown } | undefined {
    const r = this.db.prepare('SELECT hash, profile, json FROM hardware_profile ORDER BY id DESC LIMIT 1').get() as
      { hash: string; profile: string; json: string } | undefined;
    return r && { hash: r.hash, profile: r.profile, json: JSON.parse(r.json) };
  }

  // ---- fits ----
  beginFit(fitKey: string, modelSha256: string, budgets: Budgets, hardwareHash: string, fitter: string): number {
    return this.db.transaction(() => {
      const id = Number(
        this.db
          .prepare(
            `INSERT INTO fits (fit_key, model_sha256, budgets, hardware_hash, fitter, status, started_at) VALUES (?, ?, ?, ?, ?, 'running', ?)`,
          )
          .run(fitKey, modelSha256, JSON.stringify(budgets), hardwareHash, fitter, nowIso()).lastInsertRowid,
      );
      this.setKv(fitStartsKey(id), '1');
      return id;
    })();
  }
  /**
   * Starts of a running fit that did not end cleanly, counting the one under way (kv, so no
   * schema change): 1 after beginFit, one more per resume, one less when the agent stops cleanly.
   * A fit left 'running' by an agent before resume existed counts as 1.
   */
  fitStarts(id: number): number {
    const n = Number(this.getKv(fitStartsKey(id)) ?? 1);
    return Number.isInteger(n) && n >= 0 ? n : 1;
  }
  /** Go on with an interrupted fit: it stays 'running', one more start; returns the starts so far. */
  resumeFit(id: number): number {
    return this.db.transaction(() => {
      const n = this.fitStarts(id) + 1;
      this.setKv(fitStartsKey(id), String(n));
      return n;
    })();
  }
  /** The agent stopped cleanly (SIGTERM) during this fit: that start did not crash, so it does not count. */
  fitStopped(id: number): void {
    this.setKv(fitStartsKey(id), String(Math.max(0, this.fitStarts(id) - 1)));
  }
  /** Fits left 'running' by a stop or crash, newest first: the fit manager resumes the one for its key. */
  runningFits(): FitRow[] {
    return (this.db.prepare(`SELECT * FROM fits WHERE status = 'running' ORDER BY id DESC`).all() as Array<Record<string, unknown>>).map(
      (r) => this.fitRow(r)!,
    );
  }
  finishFit(id: number, result: FitResult): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          `UPDATE fits SET status = 'done', chosen_id = ?, reference_latency_ms = ?, shortfall = ?, fitter = ?, task = ?, fidelity_metric = ?, trained = ?, finished_at = ? WHERE id = ?`,
        )
        .run(
          result.chosenId,
          result.referenceLatencyP50Ms,
          result.shortfall ? JSON.stringify(result.shortfall) : null,
          result.fitter,
          result.task ?? null,
          result.fidelityMetric ?? null,
          result.trained?.length ? JSON.stringify(result.trained) : null,
          nowIso(),
          id,
        );
      const ins = this.db.prepare('INSERT INTO candidates (fit_id, idx, id, json) VALUES (?, ?, ?, ?)');
      result.frontier.forEach((c, i) => ins.run(id, i, c.id, JSON.stringify(c)));
      this.db.prepare('DELETE FROM kv WHERE key = ?').run(fitStartsKey(id));
    })();
  }
  failFit(id: number, error: string): void {
    this.db.transaction(() => {
      this.db.prepare(`UPDATE fits SET status = 'failed', error = ?, finished_at = ? WHERE id = ?`).run(error, nowIso(), id);
      this.db.prepare('DELETE FROM kv WHERE key = ?').run(fitStartsKey(id));
    })();
  }
  /** Fails every fit left 'running' (the fit manager resumes instead: runningFits, resumeFit). */
  failStaleFits(): number {
    return this.db.transaction(() => {
      for (const r of this.runningFits()) this.db.prepare('DELETE FROM kv WHERE key = ?').run(fitStartsKey(r.id));
      return this.db
        .prepare(`UPDATE fits SET status = 'failed', error = 'interrupted', finished_at = ? WHERE status = 'running'`)
        .run(nowIso()).changes;
    })();
  }
  private fitRow(r: Record<string, unknown> | undefined): FitRow | undefined {
    if (!r) return undefined;
    return {
      id: r.id as number,
      fitKey: r.fit_key as string,
      modelSha256: r.model_sha256 as string,
      budgets: JSON.parse(r.budgets as string) as Budgets,
      hardwareHash: r.hardware_hash as string,
      fitter: r.fitter as string,
      status: r.status as FitRow['status'],
      chosenId: (r.chosen_id as string | null) ?? null,
      referenceLatencyMs: (r.reference_latency_ms as number | null) ?? null,
      shortfall: r.shortfall ? (JSON.parse(r.shortfall as string) as FitResult['shortfall']) : null,
      task: (r.task as string | null) ?? null,
      fidelityMetric: (r.fidelity_metric as string | null) ?? null,
      trained: r.trained ? (JSON.parse(r.trained as string) as TrainedCandidate[]) : [],
      error: (r.error as string | null) ?? null,
      startedAt: r.started_at as string,
      finishedAt: (r.finished_at as string | null) ?? null,
    };
  }
  latestDoneFit(fitKey: string): FitRow | undefined {
    return this.fitRow(
      this.db.prepare(`SELECT * FROM fits WHERE fit_key = ? AND status = 'done' ORDER BY id DESC LIMIT 1`).get(fitKey) as
        Record<string, unknown> | undefined,
    );
  }
  getFit(id: number): FitRow | undefined {
    return this.fitRow(this.db.prepare('SELECT * FROM fits WHERE id = ?').get(id) as Record<string, unknown> | undefined);
  }
  frontier(fitId: number): FrontierEntry[] {
    return (this.db.prepare('SELECT json FROM candidates WHERE fit_id = ? ORDER BY idx').all(fitId) as Array<{ json: string }>).map(
      (r) => JSON.parse(r.json) as FrontierEntry,
    );
  }

  // ---- deployments ----
  beginDeployment(version: string, modelSha256: string, source: string, fitId: number | null, candidateId: string | null): number {
    return Number(
      this.db
        .prepare(
          `INSERT INTO deployments (version, fit_id, candidate_id, model_sha256, source, state, started_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)`,
        )
        .run(version, fitId, candidateId, modelSha256, source, nowIso()).lastInsertRowid,
    );
  }
  activateDeployment(id: number): void {
    this.db.transaction(() => {
      this.db.prepare(`UPDATE deployments SET state = 'superseded' WHERE state = 'active' AND id != ?`).run(id);
      this.db.prepare(`UPDATE deployments SET state = 'active', finished_at = ? WHERE id = ?`).run(nowIso(), id);
    })();
  }
  setDeploymentState(id: number, state: 'failed' | 'interrupted' | 'rolled-back' | 'active'): void {
    this.db.prepare('UPDATE deployments SET state = ?, finished_at = ? WHERE id = ?').run(state, nowIso(), id);
  }
  pendingDeployments(): DeploymentRow[] {
    return (this.db.prepare(`SELECT * FROM deployments WHERE state = 'pending' ORDER BY id`).all() as Array<Record<string, unknown>>).map(
      depRow,
    );
  }
  activeDeployment(): DeploymentRow | undefined {
    const r = this.db.prepare(`SELECT * FROM deployments WHERE state = 'active' ORDER BY id DESC LIMIT 1`).get() as
      Record<string, unknown> | undefined;
    return r ? depRow(r) : undefined;
  }
  deploymentByVersion(version: string): DeploymentRow | undefined {
    const r = this.db
      .prepare(`SELECT * FROM deployments WHERE version = ? AND state != 'pending' ORDER BY id DESC LIMIT 1`)
      .get(version) as Record<string, unknown> | undefined;
    return r ? depRow(r) : undefined;
  }

  /**
   * A rebuilt database's record of what the model pointer names (the pointer is the truth, see
   * agent/recovery.ts): one finished row per version, 'active' for the current one.
   */
  restoreDeployment(
    v: { version: string; sha256: string; source: string; fitId: number | null; candidateId: string | null },
    state: 'active' | 'superseded',
  ): number {
    const at = nowIso();
    return Number(
      this.db
        .prepare(
          `INSERT INTO deployments (version, fit_id, candidate_id, model_sha256, source, state, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(v.version, v.fitId, v.candidateId, v.sha256, v.source, state, at, at).lastInsertRowid,
    );
  }
  /** New fits get ids above `id` (a rebuilt database must not hand out ids that name earlier fits' folders). */
  reserveFitIds(id: number): void {
    this.db.transaction(() => {
      const cur = this.db.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'fits'`).get() as { seq: number } | undefined;
      if (!cur) this.db.prepare(`INSERT INTO sqlite_sequence (name, seq) VALUES ('fits', ?)`).run(id);
      else if (cur.seq < id) this.db.prepare(`UPDATE sqlite_sequence SET seq = ? WHERE name = 'fits'`).run(id);
    })();
  }

  // ---- metric history: raw rows, folded into 5-minute means, both bounded in time ----
  addMetric(m: MetricSample): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO metrics (ts, resolution, n, cpu_load, temperature_c, mem_available_mb, rss_mb, latency_p50_ms, latency_p95_ms, level)
       VALUES (?, 0, 1, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(m.ts, m.cpuLoad, m.temperatureC, m.memAvailableMb, m.rssMb, m.latencyP50Ms, m.latencyP95Ms, m.level);
  }
  /** Fold raw rows older than rawKeepS into buckets; drop buckets older than downsampledKeepS. */
  compactMetrics(nowS = Math.floor(Date.now() / 1000)): void {
    const cut = nowS - this.opts.rawKeepS;
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO metrics (ts, resolution, n, cpu_load, temperature_c, mem_available_mb, rss_mb, latency_p50_ms, latency_p95_ms, level)
         SELECT (ts / ${BUCKET_S}) * ${BUCKET_S} AS b, ${BUCKET_S}, COUNT(*), AVG(cpu_load), AVG(temperature_c), AVG(mem_available_mb), AVG(rss_mb),
                AVG(latency_p50_ms), MAX(latency_p95_ms), MAX(level)
         FROM metrics WHERE resolution = 0 AND ts < ? GROUP BY b
         ON CONFLICT(resolution, ts) DO UPDATE SET
           cpu_load = (cpu_load * n + excluded.cpu_load * excluded.n) / (n + excluded.n),
           rss_mb = (rss_mb * n + excluded.rss_mb * excluded.n) / (n + excluded.n),
           latency_p50_ms = (latency_p50_ms * n + excluded.latency_p50_ms * excluded.n) / (n + excluded.n),
           latency_p95_ms = MAX(latency_p95_ms, excluded.latency_p95_ms),
           n = n + excluded.n`,
        )
        .run(cut);
      this.db.prepare('DELETE FROM metrics WHERE resolution = 0 AND ts < ?').run(cut);
      this.db.prepare('DELETE FROM metrics WHERE resolution > 0 AND ts < ?').run(nowS - this.opts.downsampledKeepS);
    })();
  }
  metricHistory(resolution: number): Array<MetricSample & { n: number }> {
    return (
      this.db.prepare('SELECT * FROM metrics WHERE resolution = ? ORDER BY ts').all(resolution) as Array<Record<string, number | null>>
    ).map((r) => ({
      ts: r.ts as number,
      n: r.n as number,
      cpuLoad: r.cpu_load ?? null,
      temperatureC: r.temperature_c ?? null,
      memAvailableMb: r.mem_available_mb ?? null,
      rssMb: r.rss_mb ?? null,
      latencyP50Ms: r.latency_p50_ms ?? null,
      latencyP95Ms: r.latency_p95_ms ?? null,
      level: r.level ?? null,
    }));
  }

  // ---- outbox: sequence numbers are assigned in the same transaction as the insert ----
  /** Enqueue; `build(seq)` makes the payload so the seq inside it is the committed one.
   * `low`: a low-value row (command-rejected): sent after the others, and the bound evicts low
   * rows first and keeps at most outboxLowMax of them, so a flood of them cannot delay or push
   * out metrics and important events. Returns how many rows the bounds forced out (0 normally). */
  enqueue(stream: Stream, topic: string, build: (seq: number) => string, opts: { low?: boolean } = {}): { seq: number; dropped: number } {
    const low = opts.low === true;
    return this.db.transaction(() => {
      const row = this.db
        .prepare('INSERT INTO sequences (stream, last) VALUES (?, 1) ON CONFLICT(stream) DO UPDATE SET last = last + 1 RETURNING last')
        .get(stream) as { last: number };
      this.db
        .prepare('INSERT INTO outbox (stream, seq, topic, payload, created_at, low) VALUES (?, ?, ?, ?, ?, ?)')
        .run(stream, row.last, topic, build(row.last), nowIso(), low ? 1 : 0);
      let dropped = 0;
      const evict = (where: string, n: number): void => {
        if (n <= 0) return;
        dropped += this.db.prepare(`DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ${where} ORDER BY id LIMIT ?)`).run(n).changes;
      };
      if (low) {
        const lows = (this.db.prepare('SELECT COUNT(*) AS c FROM outbox WHERE low = 1').get() as { c: number }).c;
        evict('WHERE low = 1', lows - Math.min(this.opts.outboxLowMax, this.opts.outboxMax));
      }
      const count = (this.db.prepare('SELECT COUNT(*) AS c FROM outbox').get() as { c: number }).c;
      if (count > this.opts.outboxMax) {
        // the oldest low-value rows go first, then the oldest of the rest
        const before = dropped;
        evict('WHERE low = 1', count - this.opts.outboxMax);
        evict('', count - (dropped - before) - this.opts.outboxMax);
      }
      if (dropped > 0) {
        this.bump('outbox_dropped', dropped);
        this.bump('outbox_dropped_unreported', dropped);
      }
      return { seq: row.last, dropped };
    })();
  }
  /** Next rows to send: metrics and important events first, each class oldest first. */
  peek(limit: number): Array<{ id: number; topic: string; payload: string }> {
    return this.db.prepare('SELECT id, topic, payload FROM outbox ORDER BY low, id LIMIT ?').all(limit) as Array<{
      id: number;
      topic: string;
      payload: string;
    }>;
  }
  ack(id: number): void {
    this.db.prepare('DELETE FROM outbox WHERE id = ?').run(id);
  }
  outboxPending(): number {
    return (this.db.prepare('SELECT COUNT(*) AS c FROM outbox').get() as { c: number }).c;
  }
  /** Losses not yet reported in an event; reading resets the count. */
  takeUnreportedDrops(): number {
    return this.db.transaction(() => {
      const n = this.counter('outbox_dropped_unreported');
      if (n > 0) this.db.prepare(`UPDATE counters SET value = 0 WHERE name = 'outbox_dropped_unreported'`).run();
      return n;
    })();
  }
}

function depRow(r: Record<string, unknown>): DeploymentRow {
  return {
    id: r.id as number,
    version: r.version as string,
    fitId: (r.fit_id as number | null) ?? null,
    candidateId: (r.candidate_id as string | null) ?? null,
    modelSha256: r.model_sha256 as string,
    source: r.source as string,
    state: r.state as string,
    startedAt: r.started_at as string,
    finishedAt: (r.finished_at as string | null) ?? null,
  };
}
