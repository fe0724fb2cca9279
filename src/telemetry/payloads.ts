// Every MQTT payload, defined once: a TypeScript type and its JSON Schema side by side.
// The agent validates what it receives and (in tests) what it sends against these schemas;
// docs/asyncapi.yaml documents the same shapes and the dashboard imports these types. Budgets
// and their schema are src/budgets' (the same one the agent config validates against).
import { budgetsSchema, type Budgets, type Shortfall } from '../budgets/index.js';
import type { Judged } from '../fidelity/task-compare.js';
import type { FrontierEntry, TrainingSummary } from '../fit/types.js';

export const PAYLOAD_VERSION = 1;

// ---- shared pieces -------------------------------------------------------------------

const num = { type: 'number' } as const;
const nullableNum = { type: ['number', 'null'] } as const;
const nullableBool = { type: ['boolean', 'null'] } as const;
const isoTs = { type: 'string', minLength: 20, maxLength: 40 } as const;
const hex64 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
/** Longest reason metrics.model.latencyBusy may give (the agent cuts its own to it). */
export const BUSY_MAX = 120;

// ---- status (retained; the Last Will publishes state 'offline', reason 'lwt') ------------

export const STATUS_STATES = ['online', 'offline'] as const;
export const STATUS_REASONS = ['start', 'shutdown', 'lwt'] as const;
/**
 * Who may change the device (issue 20): 'read-only' no key is pinned, state-changing commands are
 * refused; 'operator-key' commands signed by a pinned ed25519 key; 'hmac-legacy' the shared secret.
 */
export const CONTROL_MODES = ['read-only', 'operator-key', 'hmac-legacy'] as const;
export type ControlMode = (typeof CONTROL_MODES)[number];
export interface StatusPayload {
  v: number;
  deviceId: string;
  state: (typeof STATUS_STATES)[number];
  reason: (typeof STATUS_REASONS)[number];
  ts: string;
  agentVersion: string;
  /** Absent from agents before issue 20 (and simulators). */
  control?: ControlMode;
}
export const statusSchema = {
  type: 'object',
  required: ['v', 'deviceId', 'state', 'reason', 'ts', 'agentVersion'],
  additionalProperties: false,
  properties: {
    v: { const: PAYLOAD_VERSION },
    deviceId: { type: 'string' },
    state: { enum: STATUS_STATES },
    reason: { enum: STATUS_REASONS },
    ts: isoTs,
    agentVersion: { type: 'string' },
    control: { enum: CONTROL_MODES },
  },
} as const;

// ---- profile (retained) -------------------------------------------------------------------

export interface ProfilePayload {
  v: number;
  deviceId: string;
  ts: string;
  /** Name of the matching hardware profile (src/profile), 'generic' when none matched. */
  profile: string;
  /** Hash of the probed hardware facts; a change triggers a re-fit. */
  hardwareHash: string;
  hardware: Record<string, unknown>;
  budgets: Budgets;
}
export const profileSchema = {
  type: 'object',
  required: ['v', 'deviceId', 'ts', 'profile', 'hardwareHash', 'hardware', 'budgets'],
  additionalProperties: false,
  properties: {
    v: { const: PAYLOAD_VERSION },
    deviceId: { type: 'string' },
    ts: isoTs,
    profile: { type: 'string' },
    hardwareHash: { type: 'string' },
    hardware: { type: 'object' },
    budgets: budgetsSchema,
  },
} as const;

// ---- metrics (through the outbox, seq contiguous per device) ----------------------------

export interface MetricsPayload {
  v: number;
  deviceId: string;
  seq: number;
  ts: string;
  system: {
    /** 1-minute load average divided by the core count. */
    cpuLoad: number;
    cores: number;
    temperatureC: number | null;
    /** true when the SoC reports current throttling (Raspberry Pi), null when unknown. */
    throttled: boolean | null;
    memTotalMb: number;
    memAvailableMb: number;
  };
  agent: { rssMb: number; cpuPercent: number; uptimeS: number; outboxPending: number; outboxDropped: number };
  model: {
    id: string | null;
    /** Index in the stored frontier, 0 = largest; null when nothing is deployed. */
    level: number | null;
    levels: number;
    version: string | null;
    latencyP50Ms: number | null;
    latencyP95Ms: number | null;
    /** Where latencyP50Ms/P95Ms come from: the application's served requests or a probe (absent before issue 19). */
    latencySource?: 'served' | 'probe' | null;
    /** Why the latency figures judge no budget: the agent's own fit was using the cores while
     * they were taken ('fit 2 is training on this box'); meets.latency is then null. */
    latencyBusy?: string;
    modelRssMb: number | null;
    fidelity: number | null;
  };
  budgets: Budgets & { effectiveLatencyMs: number | null };
  meets: { latency: boolean | null; ram: boolean | null; fidelity: boolean | null };
  /** The fit behind what is deployed and what it could not achieve (absent from agents before issue 16). */
  fit?: FitStatus;
  /** The local inference endpoint and what it served in its last stats window (absent before issue 19). */
  served?: ServedStatus;
}

/** What the box's applications got from the serve process (issue 19). Latencies are of the deployed
 * version in the last stats window; null when it served nothing there. */
export interface ServedStatus {
  /** The serve process is up (false: serve.enabled off, or it failed; see the serve-failed event). */
  on: boolean;
  url: string | null;
  socket: string | null;
  /** Opt-in input capture (serve.capture.enabled): real inputs are being kept on the box. */
  capture: boolean;
  /** Length of the last stats window, s (null: none yet). */
  windowS: number | null;
  requests: number;
  requestsPerS: number | null;
  errors: number;
  rejected: number;
  /** onnxruntime run time in the serve worker (what adaptation judges). */
  runP50Ms: number | null;
  runP95Ms: number | null;
  /** Request received to response written (what the application experiences). */
  totalP50Ms: number | null;
  totalP95Ms: number | null;
}
const nat = { type: 'integer', minimum: 0 } as const;
export const servedStatusSchema = {
  type: 'object',
  required: ['on', 'url', 'socket', 'capture', 'windowS', 'requests', 'requestsPerS', 'errors', 'rejected'],
  additionalProperties: false,
  properties: {
    on: { type: 'boolean' },
    url: { type: ['string', 'null'], maxLength: 300 },
    socket: { type: ['string', 'null'], maxLength: 300 },
    capture: { type: 'boolean' },
    windowS: nullableNum,
    requests: nat,
    requestsPerS: nullableNum,
    errors: nat,
    rejected: nat,
    runP50Ms: nullableNum,
    runP95Ms: nullableNum,
    totalP50Ms: nullableNum,
    totalP95Ms: nullableNum,
  },
} as const;

/** What a device says about its fit: before one, budgets are shown with 'fidelity' and the live original. */
export interface FitStatus {
  /** The fit behind what is deployed (or the latest for the current budgets); null before any. */
  id: number | null;
  /** A fit is running now (the original, or the previous choice, is served meanwhile). */
  running: boolean;
  /** The task fidelity is judged for and its metric's name (e.g. 'text-det', 'boxF1'); null before a fit says. */
  task: string | null;
  fidelityMetric: string | null;
  /** The original model's p50 as timed live on this box (else as the fit timed it): a relative budget is a fraction of it. */
  originalLatencyMs: number | null;
  /** Which budgets cannot be met and by how much (src/budgets Shortfall); null when all are met. */
  shortfall: Shortfall | null;
  /** What stays deployed instead ('original' or a frontier entry id) when budgets are unmet. */
  keeping: string | null;
  /** One line for a human: "latency 62 ms p50 vs budget 40 ms: cannot be met; keeping …". */
  message: string | null;
  /** The latest training on this box (issue 18), deployed or not; absent/null when none ran. */
  training?: TrainingStatus | null;
}

/** What the latest training fit trained (its record's figures), and whether it is what the box serves. */
export interface TrainingStatus extends Pick<
  TrainingSummary,
  'kind' | 'minutes' | 'seconds' | 'steps' | 'heldOutBefore' | 'heldOutAfter' | 'frozen'
> {
  fitId: number;
  candidateId: string;
  /** The task's held-out score before training and of the weights kept (null: judged by the loss). */
  judged: Judged | null;
  /** The trained candidate's fidelity as the fit measured it on the judge images. */
  fidelity: number;
  /** Its training fit chose it (it beat the first fit's choice); false: it did not, and is not deployed. */
  won: boolean;
  /** It is what the box serves now (a won training can be stepped away from when the box throttles). */
  deployed: boolean;
}

/** A judge's figure before training and of the weights kept (Judged; its finer figure the same shape). */
const judgedPairSchema = {
  type: 'object',
  required: ['name', 'before', 'after'],
  additionalProperties: false,
  properties: { name: { type: 'string', maxLength: 64 }, before: num, after: num },
} as const;

const trainingStatusSchema = {
  type: 'object',
  required: [
    'fitId',
    'candidateId',
    'kind',
    'minutes',
    'seconds',
    'steps',
    'heldOutBefore',
    'heldOutAfter',
    'judged',
    'fidelity',
    'won',
    'deployed',
  ],
  additionalProperties: false,
  properties: {
    fitId: { type: 'integer', minimum: 1 },
    candidateId: { type: 'string', maxLength: 128 },
    kind: { enum: ['distill', 'qat'] },
    minutes: num,
    seconds: num,
    steps: { type: 'integer', minimum: 0 },
    heldOutBefore: num,
    heldOutAfter: num,
    judged: {
      oneOf: [{ type: 'null' }, { ...judgedPairSchema, properties: { ...judgedPairSchema.properties, finer: judgedPairSchema } }],
    },
    fidelity: num,
    won: { type: 'boolean' },
    deployed: { type: 'boolean' },
    frozen: {
      type: 'object',
      required: ['layers', 'stride'],
      additionalProperties: false,
      properties: { layers: { type: 'integer', minimum: 1 }, stride: { type: 'integer', minimum: 2 } },
    },
  },
} as const;

const shortfallSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { latencyMs: num, ramMb: num, fidelity: num, sizeMb: num },
} as const;

export const fitStatusSchema = {
  type: 'object',
  required: ['id', 'running', 'task', 'fidelityMetric', 'originalLatencyMs', 'shortfall', 'keeping', 'message'],
  additionalProperties: false,
  properties: {
    id: { type: ['integer', 'null'] },
    running: { type: 'boolean' },
    task: { type: ['string', 'null'], maxLength: 64 },
    fidelityMetric: { type: ['string', 'null'], maxLength: 64 },
    originalLatencyMs: nullableNum,
    shortfall: { oneOf: [{ type: 'null' }, shortfallSchema] },
    keeping: { type: ['string', 'null'], maxLength: 128 },
    message: { type: ['string', 'null'], maxLength: 1000 },
    training: { oneOf: [{ type: 'null' }, trainingStatusSchema] },
  },
} as const;
export const metricsSchema = {
  type: 'object',
  required: ['v', 'deviceId', 'seq', 'ts', 'system', 'agent', 'model', 'budgets', 'meets'],
  additionalProperties: false,
  properties: {
    v: { const: PAYLOAD_VERSION },
    deviceId: { type: 'string' },
    seq: { type: 'integer', minimum: 1 },
    ts: isoTs,
    system: {
      type: 'object',
      required: ['cpuLoad', 'cores', 'temperatureC', 'throttled', 'memTotalMb', 'memAvailableMb'],
      additionalProperties: false,
      properties: {
        cpuLoad: num,
        cores: { type: 'integer', minimum: 1 },
        temperatureC: nullableNum,
        throttled: nullableBool,
        memTotalMb: num,
        memAvailableMb: num,
      },
    },
    agent: {
      type: 'object',
      required: ['rssMb', 'cpuPercent', 'uptimeS', 'outboxPending', 'outboxDropped'],
      additionalProperties: false,
      properties: {
        rssMb: num,
        cpuPercent: num,
        uptimeS: num,
        outboxPending: { type: 'integer', minimum: 0 },
        outboxDropped: { type: 'integer', minimum: 0 },
      },
    },
    model: {
      type: 'object',
      required: ['id', 'level', 'levels', 'version', 'latencyP50Ms', 'latencyP95Ms', 'modelRssMb', 'fidelity'],
      additionalProperties: false,
      properties: {
        id: { type: ['string', 'null'] },
        level: { type: ['integer', 'null'] },
        levels: { type: 'integer', minimum: 0 },
        version: { type: ['string', 'null'] },
        latencyP50Ms: nullableNum,
        latencyP95Ms: nullableNum,
        latencySource: { enum: ['served', 'probe', null] },
        latencyBusy: { type: 'string', maxLength: BUSY_MAX },
        modelRssMb: nullableNum,
        fidelity: nullableNum,
      },
    },
    budgets: {
      type: 'object',
      required: ['effectiveLatencyMs'],
      additionalProperties: false,
      properties: { ...budgetsSchema.properties, effectiveLatencyMs: nullableNum },
    },
    meets: {
      type: 'object',
      required: ['latency', 'ram', 'fidelity'],
      additionalProperties: false,
      properties: { latency: nullableBool, ram: nullableBool, fidelity: nullableBool },
    },
    fit: fitStatusSchema,
    served: servedStatusSchema,
  },
} as const;

// ---- events (through the outbox, own seq) -----------------------------------------------

export const EVENT_TYPES = [
  'agent-started',
  'agent-stopping',
  'profiled',
  'fit-started',
  'fit-progress',
  'fit-done',
  'fit-failed',
  // an interrupted fit goes on after a restart (agent/fit-manager.ts)
  'fit-resumed',
  'budgets-unmet',
  'deploy-started',
  'deployed',
  'deploy-failed',
  'deploy-interrupted',
  'rolled-back',
  'stepped-down',
  'stepped-up',
  'budgets-changed',
  'outbox-dropped',
  'command-rejected',
  // serving (issue 19): current.onnx changed (apps re-load on it); the serve process's life
  'model-changed',
  'serve-started',
  'serve-restarted',
  'serve-failed',
  // a training fit holds between steps while the box serves requests (agent/train-hold.ts)
  'training-held',
  'training-resumed',
  // issue 20: a damaged state.db was moved aside and rebuilt from the model pointer
  'state-recovered',
  // issue 18: a training fit finished without beating what is deployed (its scores in data)
  'training-rejected',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface EventPayload {
  v: number;
  deviceId: string;
  seq: number;
  ts: string;
  type: EventType;
  /** One line for a human. */
  message: string;
  /** Transaction id of the request that caused this event, when one did. */
  txn?: string;
  data: Record<string, unknown>;
}
export const eventSchema = {
  type: 'object',
  required: ['v', 'deviceId', 'seq', 'ts', 'type', 'message', 'data'],
  additionalProperties: false,
  properties: {
    v: { const: PAYLOAD_VERSION },
    deviceId: { type: 'string' },
    seq: { type: 'integer', minimum: 1 },
    ts: isoTs,
    type: { enum: EVENT_TYPES },
    message: { type: 'string', maxLength: 1000 },
    txn: { type: 'string' },
    data: { type: 'object' },
  },
} as const;

// ---- requests and responses ---------------------------------------------------------------

/** Body of `request/<verb>`. When signing is configured, `sig` is required: see signing.ts. */
export interface RequestPayload {
  txn: string;
  /** Milliseconds since the epoch; required when signing is on (replay window). */
  ts?: number;
  args?: Record<string, unknown>;
  sig?: string;
}
export const TXN_RE = '^[A-Za-z0-9_.:-]{1,64}$';
export const requestSchema = {
  type: 'object',
  required: ['txn'],
  additionalProperties: false,
  properties: {
    txn: { type: 'string', pattern: TXN_RE },
    ts: { type: 'integer', minimum: 0 },
    args: { type: 'object' },
    sig: { type: 'string', minLength: 1, maxLength: 1024 },
  },
} as const;

export interface PingArgs {
  [k: string]: never;
}
export interface FitArgs {
  budgets?: Budgets;
}
export type SetBudgetArgs = Budgets;
export interface RollbackArgs {
  [k: string]: never;
}
/** Deploy either a stored frontier entry or a model shipped in the payload (never a path). */
export type DeployArgs = { candidateId: string } | { modelB64: string; sha256: string; signature?: string; name?: string };
export interface GetFrontierArgs {
  [k: string]: never;
}

const empty = { type: 'object', additionalProperties: false, properties: {} } as const;
export const argsSchemas = {
  ping: empty,
  fit: { type: 'object', additionalProperties: false, properties: { budgets: budgetsSchema } },
  'set-budget': { ...budgetsSchema, minProperties: 1 },
  rollback: empty,
  deploy: {
    oneOf: [
      {
        type: 'object',
        required: ['candidateId'],
        additionalProperties: false,
        properties: { candidateId: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' } },
      },
      {
        type: 'object',
        required: ['modelB64', 'sha256'],
        additionalProperties: false,
        properties: {
          modelB64: { type: 'string', minLength: 4, contentEncoding: 'base64' },
          sha256: hex64,
          signature: { type: 'string', minLength: 1, maxLength: 256 },
          name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
        },
      },
    ],
  },
  'get-frontier': empty,
} as const;

export interface ErrorBody {
  code: string;
  message: string;
}
export interface ResponsePayload {
  v: number;
  deviceId: string;
  /** Echo of the request's txn; null when the request was too broken to carry one. */
  txn: string | null;
  verb: string;
  ok: boolean;
  ts: string;
  result?: Record<string, unknown>;
  error?: ErrorBody;
}
export const responseSchema = {
  type: 'object',
  required: ['v', 'deviceId', 'txn', 'verb', 'ok', 'ts'],
  additionalProperties: false,
  properties: {
    v: { const: PAYLOAD_VERSION },
    deviceId: { type: 'string' },
    txn: { type: ['string', 'null'] },
    verb: { type: 'string' },
    ok: { type: 'boolean' },
    ts: isoTs,
    result: { type: 'object' },
    error: {
      type: 'object',
      required: ['code', 'message'],
      additionalProperties: false,
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

/** What get-frontier returns per entry: the frontier without local file paths. */
export type PublicFrontierEntry = Omit<FrontierEntry, 'modelPath'>;

export const PAYLOAD_SCHEMAS = {
  status: statusSchema,
  profile: profileSchema,
  metrics: metricsSchema,
  event: eventSchema,
  request: requestSchema,
  response: responseSchema,
} as const;
export type PayloadKind = keyof typeof PAYLOAD_SCHEMAS;
export interface PayloadTypes {
  status: StatusPayload;
  profile: ProfilePayload;
  metrics: MetricsPayload;
  event: EventPayload;
  request: RequestPayload;
  response: ResponsePayload;
}
