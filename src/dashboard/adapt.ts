// The one place that maps the agent's wire payloads (src/telemetry/payloads.ts, validated by
// ./validate.ts before they get here) onto the dashboard's view model.
import type {
  EventPayload,
  MetricsPayload,
  ProfilePayload,
  PublicFrontierEntry,
  RequestPayload,
  ResponsePayload,
  StatusPayload,
} from '../telemetry/payloads.js';
import { latencyOf } from '../budgets/index.js';
import { configLabel } from '../fit/label.js';
import { signRequest, type SigningKey } from '../telemetry/signing.js';
import {
  emptyFit,
  type Budgets,
  type DeviceEvent,
  type FitSummary,
  type FrontierPoint,
  type MeetKey,
  type MetricPoint,
  type ServedSummary,
} from './model.js';

/** The agent sends ISO-8601 times; a broken one falls back to arrival time. */
export function tsOf(iso: string, now: number): number {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : now;
}

export function adaptStatus(p: StatusPayload): { online: boolean } {
  return { online: p.state === 'online' };
}

export function adaptProfile(p: ProfilePayload): { board: string } {
  return { board: p.profile };
}

export interface AdaptedMetrics {
  point: MetricPoint;
  modelId: string | null;
  level: number | null;
  levels: number;
  budgets: Budgets;
  met: Partial<Record<MeetKey, boolean>>;
  fit: FitSummary;
  served: ServedSummary | null;
  /** Why the latency figures judge no budget (metrics.model.latencyBusy), or null. */
  latencyBusy: string | null;
}

/** metrics.served (agents before issue 19 send none) with the latency line's source. */
export function adaptServed(p: MetricsPayload): ServedSummary | null {
  const s = p.served;
  if (!s) return null;
  return {
    on: s.on,
    url: s.url,
    socket: s.socket,
    capture: s.capture,
    requestsPerS: s.requestsPerS,
    runP50Ms: s.runP50Ms ?? null,
    runP95Ms: s.runP95Ms ?? null,
    totalP50Ms: s.totalP50Ms ?? null,
    totalP95Ms: s.totalP95Ms ?? null,
    source: p.model.latencySource ?? null,
  };
}

/** What a task metric's name may look like where a page shows one a device sent ('boxF1'). */
const METRIC_NAME = /^[A-Za-z0-9 ]{1,24}$/;

/** metrics.fit (agents before issue 16 send none) and a relative budget, as the pages show them. */
export function adaptFit(p: MetricsPayload): FitSummary {
  const f = p.fit;
  const out = emptyFit();
  if (p.budgets.latencyFactor !== undefined) out.latencyFactor = p.budgets.latencyFactor;
  if (!f) return out;
  out.metric = f.fidelityMetric ?? 'fidelity';
  out.task = f.task;
  out.originalMs = f.originalLatencyMs;
  out.running = f.running;
  out.unmet = f.message;
  const keys = { latencyMs: 'latency', ramMb: 'ram', fidelity: 'fidelity', sizeMb: 'size' } as const;
  out.unmetKeys = f.shortfall ? Object.keys(f.shortfall).map((k) => keys[k as keyof typeof keys] ?? k) : [];
  // schema-checked on arrival (link.ts); the judge's name is shown, so it must look like a metric's
  const j = f.training?.judged;
  out.training = f.training && (!j || [j, j.finer].every((x) => !x || METRIC_NAME.test(x.name))) ? f.training : null;
  return out;
}

export function adaptMetrics(p: MetricsPayload, now: number): AdaptedMetrics {
  const point: MetricPoint = {
    ts: tsOf(p.ts, now),
    latencyMs: latencyOf(p.model),
    latencyP95Ms: p.model.latencyP95Ms,
    ramMb: p.model.modelRssMb,
    tempC: p.system.temperatureC,
    cpuLoad: p.system.cpuLoad,
    fidelity: p.model.fidelity,
  };
  const budgets: Budgets = {};
  // a relative budget (latencyFactor) is shown as the absolute figure the agent resolved it to
  const lat = p.budgets.effectiveLatencyMs ?? p.budgets.latencyMs;
  if (lat !== undefined && lat !== null) budgets.latencyMs = lat;
  if (p.budgets.ramMb !== undefined) budgets.ramMb = p.budgets.ramMb;
  if (p.budgets.minFidelity !== undefined) budgets.minFidelity = p.budgets.minFidelity;
  if (p.budgets.sizeMb !== undefined) budgets.sizeMb = p.budgets.sizeMb;
  const met: Partial<Record<MeetKey, boolean>> = {};
  for (const k of ['latency', 'ram', 'fidelity'] as const) {
    const v = p.meets[k];
    if (v !== null) met[k] = v;
  }
  return {
    point,
    modelId: p.model.id,
    level: p.model.level,
    levels: p.model.levels,
    budgets,
    met,
    fit: adaptFit(p),
    served: adaptServed(p),
    latencyBusy: p.model.latencyBusy ?? null,
  };
}

export function adaptEvent(p: EventPayload, now: number): DeviceEvent {
  return { ts: tsOf(p.ts, now), type: p.type, detail: p.message, payload: p };
}

/** Short description of a frontier candidate: precision, then pruning (src/fit/label.ts). */
export function candidateLabel(e: Pick<PublicFrontierEntry, 'config'>): string {
  return configLabel(e.config);
}

/** A trained entry's summary as the device page draws it; anything malformed is left out. */
function adaptTraining(t: unknown): Pick<FrontierPoint, 'training'> {
  if (typeof t !== 'object' || t === null) return {};
  const x = t as Record<string, unknown>;
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const curve = (Array.isArray(x.curve) ? x.curve : [])
    .slice(0, 200)
    .map((p: unknown) => {
      const q = (p ?? {}) as Record<string, unknown>;
      const step = num(q.step);
      const loss = num(q.loss);
      const heldOut = num(q.heldOut);
      return step !== null && loss !== null ? { step, loss, ...(heldOut !== null ? { heldOut } : {}) } : null;
    })
    .filter((p): p is { step: number; loss: number; heldOut?: number } => p !== null);
  const [minutes, seconds, steps, before, after] = [x.minutes, x.seconds, x.steps, x.heldOutBefore, x.heldOutAfter].map(num);
  if (minutes === null || seconds === null || steps === null || before === null || after === null) return {};
  const kind = x.kind === 'qat' ? 'qat' : 'distill';
  // the judge's scores, and its finer figure when it has one; malformed: left out
  const scores = (v: unknown): { name: string; before: number; after: number } | null => {
    const j = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
    const [jb, ja] = [num(j.before), num(j.after)];
    return typeof j.name === 'string' && METRIC_NAME.test(j.name) && jb !== null && ja !== null
      ? { name: j.name, before: jb, after: ja }
      : null;
  };
  const head = scores(x.judged);
  const finer = head && scores((x.judged as Record<string, unknown>).finer);
  const judged = head && { ...head, ...(finer ? { finer } : {}) };
  // the frozen stem: two small whole numbers, else left out
  const f = (typeof x.frozen === 'object' && x.frozen !== null ? x.frozen : {}) as Record<string, unknown>;
  const [layers, stride] = [num(f.layers), num(f.stride)];
  const frozen = layers !== null && stride !== null && Number.isInteger(layers) && Number.isInteger(stride) && layers > 0 && stride > 1;
  return {
    training: {
      kind,
      minutes,
      seconds,
      steps,
      heldOutBefore: before,
      heldOutAfter: after,
      ...(judged ? { judged } : {}),
      ...(frozen ? { frozen: { layers, stride } } : {}),
      curve,
    },
  };
}

/**
 * The frontier from a get-frontier response: result.frontier is the stored frontier (index =
 * level, as metrics report it); the chosen point is the deployed level, else result.chosenId.
 */
export function adaptFrontier(resp: ResponsePayload, deployedLevel: number | null): FrontierPoint[] {
  const r = resp.result ?? {};
  const list = Array.isArray(r.frontier) ? (r.frontier as unknown[]) : [];
  const chosenId = typeof r.chosenId === 'string' ? r.chosenId : null;
  const out: FrontierPoint[] = [];
  list.forEach((x, i) => {
    if (typeof x !== 'object' || x === null) return;
    const e = x as Partial<PublicFrontierEntry>;
    const latencyMs = latencyOf({ latencyP50Ms: e.latencyP50Ms ?? null, latencyP95Ms: e.latencyP95Ms ?? null });
    if (typeof latencyMs !== 'number' || typeof e.fidelity !== 'number') return;
    out.push({
      level: i,
      id: typeof e.id === 'string' ? e.id : String(i),
      label: e.config && typeof e.config === 'object' ? candidateLabel(e as PublicFrontierEntry) : `L${i}`,
      latencyMs,
      ...(typeof e.latencyRatio === 'number' && e.latencyRatio > 0 ? { ratio: e.latencyRatio } : {}),
      fidelity: e.fidelity,
      ramMb: typeof e.modelRssMb === 'number' ? e.modelRssMb : null,
      chosen: deployedLevel !== null ? deployedLevel === i : chosenId !== null && e.id === chosenId,
      ...adaptTraining(e.training),
    });
  });
  return out;
}

/** A request in the agent's schema for one device; signed when the dashboard holds a key. */
export function buildRequest(deviceId: string, verb: string, txn: string, args: Record<string, unknown>, key?: SigningKey): RequestPayload {
  const ts = Date.now();
  const req: RequestPayload = { txn, ts, args };
  if (key) req.sig = signRequest(key, deviceId, verb, txn, ts, args);
  return req;
}
