// The dashboard's view model: what the server keeps per device and sends to browsers.
// Shared by the server and the browser code (type-only imports, erased at compile time), so the
// two cannot drift. Wire payloads from devices are the agent's (src/telemetry); ./adapt.ts maps
// them onto these shapes in one place.
import { meets, type Budgets as AgentBudgets } from '../budgets/index.js';
import type { Judged } from '../fidelity/task-compare.js';
import type { TrainingStatus } from '../telemetry/payloads.js';
import type { Verb } from '../telemetry/topics.js';

/** One metrics sample reduced to what the charts draw. null = the device did not report it. */
export interface MetricPoint {
  ts: number;
  /** The latency budgets are judged on (src/budgets LATENCY_STATISTIC, the p50). */
  latencyMs: number | null;
  latencyP95Ms: number | null;
  ramMb: number | null;
  tempC: number | null;
  cpuLoad: number | null;
  fidelity: number | null;
}

/**
 * Budgets as the agent states them (src/budgets). `latencyMs` in a summary is the effective
 * absolute budget (the agent resolves a relative `latencyFactor` and reports the result).
 */
export type Budgets = Pick<AgentBudgets, 'latencyMs' | 'ramMb' | 'minFidelity' | 'sizeMb'>;

/** Keys of the agent's `meets` object in metrics. */
export const MEET_KEYS = ['latency', 'ram', 'fidelity'] as const;
export type MeetKey = (typeof MEET_KEYS)[number];

/**
 * What a device says about its fit (metrics.fit): the fidelity metric's name ('fidelity' before a
 * fit says), a relative latency budget with the original's live p50 it resolves against, and
 * when budgets cannot all be met, which and by how much (one line from the agent).
 */
export interface FitSummary {
  metric: string;
  task: string | null;
  /** '0.5x' budgets: the factor, and the original's p50 it is a fraction of (null until timed). */
  latencyFactor: number | null;
  originalMs: number | null;
  running: boolean;
  /** "latency 62 ms p50 vs budget 40 ms: cannot be met; keeping …", null when every budget is met. */
  unmet: string | null;
  /** The budgets named in `unmet` ('latency', 'ram', 'fidelity', 'size'). */
  unmetKeys: string[];
  /** The latest training on the box, deployed or not (metrics.fit.training); null when none ran. */
  training: TrainingStatus | null;
}

export function emptyFit(): FitSummary {
  return {
    metric: 'fidelity',
    task: null,
    latencyFactor: null,
    originalMs: null,
    running: false,
    unmet: null,
    unmetKeys: [],
    training: null,
  };
}

/** What the device's local inference endpoint served (metrics.served, issue 19). */
export interface ServedSummary {
  on: boolean;
  url: string | null;
  socket: string | null;
  /** Opt-in input capture is on: the box keeps samples of its applications' inputs. */
  capture: boolean;
  requestsPerS: number | null;
  runP50Ms: number | null;
  runP95Ms: number | null;
  totalP50Ms: number | null;
  totalP95Ms: number | null;
  /** Where the Latency line's figures come from: served requests or a probe. */
  source: 'served' | 'probe' | null;
}

export interface DeviceSummary {
  id: string;
  online: boolean;
  /** ms since epoch of the last message from (or about) the device */
  lastSeen: number;
  board: string | null;
  modelId: string | null;
  /** index in the device's stored frontier, 0 = largest (the agent's metrics.model.level) */
  level: number | null;
  levels: number | null;
  budgets: Budgets;
  /** per budget: met or not; absent when the device did not say */
  met: Partial<Record<MeetKey, boolean>>;
  /** 0 when every budget is met; grows with how far the worst one is missed (sort key) */
  violation: number;
  fit: FitSummary;
  /** Absent from agents before issue 19 (no serving). */
  served?: ServedSummary | null;
  /** Why the last latency figures judge no budget: the box's own fit was using its cores. */
  latencyBusy?: string | null;
  last: MetricPoint | null;
  /** the most recent SPARK_POINTS values, oldest first */
  spark: { lat: (number | null)[]; ram: (number | null)[]; temp: (number | null)[] };
}

export const SPARK_POINTS = 40;

export interface FrontierPoint {
  /** index in the frontier (0 = largest), as metrics report the deployed level */
  level: number;
  id: string;
  /** what the candidate is: precision and pruning */
  label: string;
  latencyMs: number;
  /**
   * The fit's latency as a ratio to the original timed beside it, when measured so: the page plots
   * ratio x the original's live p50, the figure the agent judges the level by (a candidate timed
   * while the box was loaded has a raw p50 far off its place on the frontier).
   */
  ratio?: number;
  fidelity: number;
  ramMb: number | null;
  chosen: boolean;
  /** The loss curve when the candidate was trained on the box (distillation or QAT). */
  training?: {
    kind: string;
    minutes: number;
    seconds: number;
    steps: number;
    heldOutBefore: number;
    heldOutAfter: number;
    /** The task's held-out score before and after (the fit's metric picked the weights kept). */
    judged?: Judged;
    /** The stem left frozen while the rest trained: how many layers, before which stride. */
    frozen?: { layers: number; stride: number };
    curve: { step: number; loss: number; heldOut?: number }[];
  };
}

export interface DeviceEvent {
  ts: number;
  type: string;
  detail: string;
  payload: unknown;
}

export interface ActionView {
  tx: string;
  verb: string;
  ts: number;
  request: unknown;
  response: unknown;
  responseTs: number | null;
  /** true/false once answered; null while waiting */
  ok: boolean | null;
}

/** What a device page loads once; live updates then arrive over SSE. */
export interface DeviceDetail {
  summary: DeviceSummary;
  profile: unknown;
  status: unknown;
  frontier: FrontierPoint[];
  history: MetricPoint[];
  events: DeviceEvent[];
  actions: ActionView[];
}

/** Server-sent messages. One `fleet` message carries every device that changed since the last flush. */
export type StreamMessage =
  | { kind: 'fleet'; devices: DeviceSummary[]; total: number }
  | { kind: 'metrics'; device: string; points: MetricPoint[] }
  | { kind: 'event'; device: string; events: DeviceEvent[] }
  | { kind: 'action'; device: string; action: ActionView }
  | { kind: 'frontier'; device: string; frontier: FrontierPoint[] }
  /** the dashboard's own broker connection: while it is down, device states are stale */
  | { kind: 'link'; mqtt: boolean };

/** Actions a user can take from the device page, mapped to agent request verbs. */
export const ACTIONS = {
  'set-budget': { label: 'Set budget' },
  fit: { label: 'Re-fit' },
  rollback: { label: 'Roll back' },
  ping: { label: 'Ping' },
  'get-frontier': { label: 'Refresh frontier' },
} as const satisfies Partial<Record<Verb, { label: string }>>;
export type ActionVerb = keyof typeof ACTIONS;

/** Violation score: relative overshoot of the worst budget (0.25 = 25 % over), as src/budgets judges it. */
export function violationScore(budgets: Budgets, p: MetricPoint | null, met: Partial<Record<MeetKey, boolean>>): number {
  let worst = 0;
  if (p) worst = Math.max(0, ...Object.values(meets({ latencyMs: p.latencyMs, ramMb: p.ramMb, fidelity: p.fidelity }, budgets).relative));
  // a device that says a budget is unmet but whose figures we cannot compare still sorts above
  // the ones that meet everything
  if (worst <= 0 && Object.values(met).some((m) => m === false)) worst = 1e-6;
  return Math.max(0, worst);
}
