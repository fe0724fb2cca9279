// The one place that knows the agent's wire payloads (src/telemetry) and maps them onto the
// dashboard's view model. Payloads are validated before they get here (./mqtt.ts); these
// functions still read defensively because retained messages may come from older agents.
import type { Budgets, BudgetKey, DeviceEvent, FrontierPoint, MetricPoint } from './model.js';

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {};
}
function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
function str(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return null;
}
function first(o: Obj, ...keys: string[]): unknown {
  for (const k of keys) if (o[k] !== undefined) return o[k];
  return undefined;
}
function tsOf(o: Obj, now: number): number {
  const t = first(o, 'ts', 'time', 'timestamp');
  if (typeof t === 'number' && Number.isFinite(t)) return t < 1e12 ? t * 1000 : t;
  if (typeof t === 'string') {
    const p = Date.parse(t);
    if (Number.isFinite(p)) return p;
  }
  return now;
}

export function adaptStatus(raw: unknown): { online: boolean } {
  if (typeof raw === 'string') return { online: raw === 'online' };
  const o = obj(raw);
  const s = first(o, 'state', 'status');
  if (typeof s === 'string') return { online: s === 'online' };
  return { online: o.online === true };
}

export function adaptProfile(raw: unknown): { board: string | null } {
  const o = obj(raw);
  const board = str(first(o, 'board', 'boardName', 'profile', 'name'))
    ?? str(obj(o.board).name) ?? str(obj(o.hardware).board) ?? str(first(obj(o.cpu), 'model', 'brand'));
  return { board };
}

function budgetsOf(v: unknown): Budgets | undefined {
  const o = obj(v);
  if (!Object.keys(o).length) return undefined;
  const b: Budgets = {};
  const lat = num(first(o, 'latencyMs', 'latency_ms', 'latency'));
  const ram = num(first(o, 'ramMb', 'ram_mb', 'memoryMb', 'ram'));
  const fid = num(first(o, 'fidelity', 'minFidelity'));
  if (lat !== null) b.latencyMs = lat;
  if (ram !== null) b.ramMb = ram;
  if (fid !== null) b.fidelity = fid;
  return b;
}

function metOf(v: unknown): Partial<Record<BudgetKey, boolean>> {
  if (typeof v === 'boolean') return v ? {} : { latencyMs: false };
  const o = obj(v);
  const out: Partial<Record<BudgetKey, boolean>> = {};
  const pick = (k: BudgetKey, ...names: string[]): void => {
    const x = first(o, ...names);
    if (typeof x === 'boolean') out[k] = x;
  };
  pick('latencyMs', 'latencyMs', 'latency');
  pick('ramMb', 'ramMb', 'ram', 'memory');
  pick('fidelity', 'fidelity');
  return out;
}

export interface AdaptedMetrics {
  point: MetricPoint;
  modelId?: string | null;
  level?: string | null;
  budgets?: Budgets;
  met: Partial<Record<BudgetKey, boolean>>;
}

export function adaptMetrics(raw: unknown, now: number): AdaptedMetrics {
  const o = obj(raw);
  const lat = obj(first(o, 'latency', 'liveLatency'));
  const model = obj(first(o, 'model', 'deployed'));
  const mem = obj(o.memory);
  const point: MetricPoint = {
    ts: tsOf(o, now),
    latencyMs: num(first(o, 'latencyP50Ms', 'latencyMs', 'p50Ms')) ?? num(first(lat, 'p50Ms', 'p50')),
    latencyP95Ms: num(first(o, 'latencyP95Ms', 'p95Ms')) ?? num(first(lat, 'p95Ms', 'p95')),
    ramMb: num(first(o, 'modelRamMb', 'ramMb')) ?? num(first(model, 'ramMb')) ?? num(first(mem, 'modelMb')),
    tempC: num(first(o, 'temperatureC', 'tempC', 'temperature')),
    cpuLoad: num(first(o, 'cpuLoad', 'cpu')),
    fidelity: num(first(o, 'fidelity')) ?? num(first(model, 'fidelity')),
  };
  const out: AdaptedMetrics = { point, met: metOf(first(o, 'budgetsMet', 'met')) };
  const mid = str(first(o, 'modelId')) ?? str(first(model, 'id', 'modelId'));
  if (mid !== null) out.modelId = mid;
  const lvl = str(first(o, 'level')) ?? str(first(model, 'level'));
  if (lvl !== null) out.level = lvl;
  const b = budgetsOf(first(o, 'budgets', 'budget'));
  if (b) out.budgets = b;
  return out;
}

export function adaptEvent(raw: unknown, now: number): DeviceEvent {
  const o = obj(raw);
  const type = str(first(o, 'type', 'event', 'kind')) ?? 'event';
  const rest = Object.entries(o).filter(([k]) => !['type', 'event', 'kind', 'ts', 'seq', 'time'].includes(k));
  const detail = str(first(o, 'message', 'detail'))
    ?? rest.map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ').slice(0, 300);
  return { ts: tsOf(o, now), type, detail, payload: raw };
}

/** The frontier from a get-frontier response (or anything that holds one). */
export function adaptFrontier(raw: unknown, chosenLevel: string | null): FrontierPoint[] {
  const o = obj(raw);
  const list = Array.isArray(raw) ? raw
    : first(o, 'frontier', 'candidates', 'points') ?? first(obj(o.result), 'frontier', 'candidates', 'points');
  if (!Array.isArray(list)) return [];
  const chosen = str(first(o, 'chosen', 'deployedLevel', 'level')) ?? str(first(obj(o.result), 'chosen', 'level')) ?? chosenLevel;
  const out: FrontierPoint[] = [];
  for (const c of list) {
    const p = obj(c);
    const latencyMs = num(first(p, 'latencyMs', 'latencyP50Ms', 'p50Ms'));
    const fidelity = num(first(p, 'fidelity'));
    if (latencyMs === null || fidelity === null) continue;
    const level = str(first(p, 'level', 'id', 'name')) ?? String(out.length);
    out.push({
      level, latencyMs, fidelity, ramMb: num(first(p, 'ramMb', 'peakRamMb')),
      chosen: p.chosen === true || p.deployed === true || (chosen !== null && level === chosen),
    });
  }
  return out;
}

/** Whether a response reports success; null when it does not say. */
export function responseOk(raw: unknown): boolean | null {
  const o = obj(raw);
  if (typeof o.ok === 'boolean') return o.ok;
  if (o.error !== undefined && o.error !== null) return false;
  const s = str(o.status);
  if (s) return s === 'ok';
  return null;
}

export function responseTx(raw: unknown): string | null {
  const o = obj(raw);
  return str(first(o, 'tx', 'txId', 'transactionId', 'id'));
}

/** A request payload in the agent's schema. */
export function buildRequest(verb: string, tx: string, args: Record<string, unknown>): Record<string, unknown> {
  return { tx, ts: Date.now(), ...args };
}
