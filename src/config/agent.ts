// The agent's configuration: one JSON Schema holding every default. Precedence, lowest first:
// schema defaults < config file < EDGEFIT_* environment < command-line flags. Every error of
// the merged result is reported at once, each with its path.
import { existsSync, readFileSync } from 'node:fs';
import { EdgefitError } from '../errors.js';
import { budgetsSchema, type Budgets } from '../budgets/index.js';
import { formatIssues, validate } from './validate.js';
import { TASK_NAMES, type Task } from '../fidelity/tasks.js';

const nullableString = { type: ['string', 'null'], default: null } as const;
export const DEFAULT_SERVE_PORT = 8551;
/** Minutes of the agent's training fit unless config says otherwise (train.minutes). */
export const TRAIN_MINUTES_DEFAULT = 12;

export const agentConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    deviceId: { ...nullableString, description: 'default: sha256 of /etc/machine-id, first 16 hex digits' },
    stateDir: { ...nullableString, description: 'default: $STATE_DIRECTORY (systemd), else ~/.local/state/edgefit' },
    model: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        path: { ...nullableString, description: 'default: the bundled PP-OCRv4 det model' },
        calib: {
          ...nullableString,
          description:
            'calibration data for fits (image folder with preprocess.json, .npy/.npz); default: assets/calib/det/calibrate for the bundled det model, else synthetic inputs (flagged)',
        },
        judge: {
          ...nullableString,
          description:
            'data fits judge candidates on, never calibrated on; default: the bundled judge images for the bundled det model, else the judge/ subfolder of model.calib, else every other sample of it',
        },
        task: {
          enum: ['auto', ...TASK_NAMES],
          default: 'auto',
          description:
            'what the model is for, which decides how fidelity is judged (box F1, text agreement, ...); auto: detected from the model',
        },
        shapes: {
          type: 'object',
          default: {},
          additionalProperties: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 1, maxItems: 8 },
        },
      },
    },
    profile: { ...nullableString, description: 'board profile name; default: auto-detected' },
    hardware: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        factsDir: {
          ...nullableString,
          description:
            'read every hardware fact (cpuinfo, device tree, L4T release, thermal zones, vcgencmd) from this facts folder ' +
            '(docs/facts-dir.md; written by `edgefit profile --capture DIR`) instead of the live machine; missing files are unknown facts',
        },
      },
    },
    budgets: { ...budgetsSchema, default: {}, description: 'overrides the profile budgets field by field' },
    prefer: {
      enum: ['fidelity', 'latency'],
      default: 'fidelity',
      description:
        "'fidelity': never deploy or step down below budgets.minFidelity; 'latency': the user trades the floor for speed knowingly",
    },
    fitter: { enum: ['auto', 'reference-only'], default: 'auto' },
    train: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        minutes: {
          type: 'number',
          minimum: 0,
          maximum: 1440,
          default: TRAIN_MINUTES_DEFAULT,
          description:
            'after the first fit is deployed, a second fit trains its best candidate on this box for up to this many minutes ' +
            '(distillation from the original; quantization-aware training for int8) at low priority, held while the box serves ' +
            'requests or a probe times the served model, and hot-swaps it in only when it measures better; 0: never. Default 12: ' +
            'on the bundled det model (2-core x86) 12 minutes of distillation raised the choice from box F1 0.980 to 0.983 in ' +
            'one run and lowered it to 0.957 in another, which the agent measured and did not deploy',
        },
      },
    },
    threads: { type: ['integer', 'null'], minimum: 1, maximum: 256, default: null },
    metricsIntervalS: { type: 'number', minimum: 0.2, maximum: 86400, default: 10 },
    probe: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        intervalS: { type: 'number', minimum: 0.2, maximum: 86400, default: 30 },
        runs: { type: 'integer', minimum: 1, maximum: 1000, default: 5 },
        stepDownAfter: { type: 'integer', minimum: 1, maximum: 1000, default: 3 },
        stepUpAfter: { type: 'integer', minimum: 1, maximum: 1000, default: 5 },
        headroom: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.9 },
        maxCpuPercent: {
          type: 'number',
          exclusiveMinimum: 0,
          maximum: 100,
          default: 1,
          description:
            'cap on the CPU probing may use, averaged, in % of one core: after a probe that cost c CPU-seconds the next waits at least c / (maxCpuPercent/100) s',
        },
      },
    },
    mqtt: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        url: { ...nullableString, description: 'mqtt://, mqtts://; null starts the embedded aedes broker' },
        embeddedHost: { type: 'string', default: '127.0.0.1' },
        embeddedPort: { type: 'integer', minimum: 0, maximum: 65535, default: 1883 },
        topicPrefix: { ...nullableString, description: "default 'edgefit/<deviceId>/'" },
        username: nullableString,
        password: nullableString,
        caFile: nullableString,
        certFile: nullableString,
        keyFile: nullableString,
        rejectUnauthorized: { type: 'boolean', default: true },
        keepaliveS: { type: 'integer', minimum: 1, maximum: 3600, default: 30 },
        backoffMinMs: { type: 'integer', minimum: 10, maximum: 600000, default: 500 },
        backoffMaxMs: { type: 'integer', minimum: 10, maximum: 3600000, default: 30000 },
        drainRatePerSec: { type: 'number', exclusiveMinimum: 0, maximum: 10000, default: 50 },
        outboxMax: { type: 'integer', minimum: 10, maximum: 10000000, default: 10000 },
        outboxLowMax: {
          type: 'integer',
          minimum: 1,
          maximum: 10000000,
          default: 500,
          description:
            'at most this many low-value events (command-rejected) wait in the outbox; the rest of outboxMax is reserved for ' +
            'metrics and important events, which are also sent first and evicted last',
        },
        protocolVersion: {
          enum: [4, 5],
          default: 5,
          description:
            '5: the packet limit (security.maxModelMb as base64 plus 64 KB) goes out as MQTT 5 Maximum Packet Size, so the broker ' +
            'drops bigger messages; 4: MQTT 3.1.1. Either way the client cuts an oversized message before buffering it; a broker ' +
            'refusing 5 gets 3.1.1 on the next connect; the embedded broker always speaks 3.1.1',
        },
      },
    },
    commands: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'bounds on the work MQTT requests can make (a flood of requests must not delay metrics or grow memory)',
      properties: {
        maxConcurrent: { type: 'integer', minimum: 1, maximum: 64, default: 4, description: 'command handlers running at once' },
        maxQueued: {
          type: 'integer',
          minimum: 0,
          maximum: 10000,
          default: 32,
          description: 'requests waiting for a handler; past it (or past one deploy of payload waiting) a request is refused BUSY',
        },
        rejectedReportS: {
          type: 'number',
          minimum: 0.1,
          maximum: 86400,
          default: 10,
          description:
            'rejected requests after a reported one are counted and reported as one command-rejected event per this many seconds',
        },
        rejectedResponsesPerS: {
          type: 'number',
          exclusiveMinimum: 0,
          maximum: 100000,
          default: 20,
          description: 'error responses to rejected requests per second (bursts of two seconds); the others get none, counted in the event',
        },
      },
    },
    dashboard: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'the fleet dashboard beside the agent, on 127.0.0.1 only (`npm start`)',
      properties: {
        port: {
          type: ['integer', 'null'],
          minimum: 0,
          maximum: 65535,
          default: null,
          description: 'null: 8080 when the broker is embedded, off with mqtt.url; 0: off',
        },
      },
    },
    serve: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: "the local inference endpoint serving the deployed model to this box's applications (KServe v2 HTTP; docs/serving.md)",
      properties: {
        enabled: { type: 'boolean', default: true },
        host: { type: 'string', default: '127.0.0.1', description: 'TCP host; anything but loopback needs serve.tokenFile' },
        port: {
          type: ['integer', 'null'],
          minimum: 0,
          maximum: 65535,
          default: DEFAULT_SERVE_PORT,
          description: '0: any free port (logged, and in the serve-started event); null: no TCP listener',
        },
        socket: {
          type: ['string', 'null'],
          default: 'serve.sock',
          description: 'Unix socket path, relative to stateDir unless absolute; null: none',
        },
        tokenFile: { ...nullableString, description: 'file holding the bearer token every route but health requires' },
        maxBodyMb: { type: 'number', exclusiveMinimum: 0, maximum: 4096, default: 64 },
        capture: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description:
            'OFF by default. On: 1 in `every` served request inputs is kept as .npy in <stateDir>/capture (a ring of at most maxMb, ' +
            'oldest deleted first), and the next fit calibrates on them once there are enough. ' +
            "These are your applications' real inputs, kept on disk",
          properties: {
            enabled: { type: 'boolean', default: false },
            maxMb: { type: 'number', exclusiveMinimum: 0, maximum: 65536, default: 256 },
            every: { type: 'integer', minimum: 1, maximum: 1000000, default: 20 },
          },
        },
      },
    },
    security: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        operatorKeys: {
          type: 'array',
          items: { type: 'string', minLength: 1 },
          maxItems: 64,
          default: [],
          description:
            'PEM ed25519 public key files (`edgefit keys generate`): fit, set-budget, rollback and deploy must be signed by one of them. ' +
            'None (and no hmacSecretFile): the agent is read-only, except the zero-setup key of the embedded loopback broker + built-in dashboard',
        },
        hmacSecretFile: {
          ...nullableString,
          description:
            'LEGACY: file holding a shared secret for HMAC-signed commands; prefer operatorKeys (a device can forge nothing with a public key)',
        },
        publicKeyFile: { ...nullableString, description: 'alias of one operatorKeys entry (kept for older configs)' },
        maxSkewS: { type: 'integer', minimum: 1, maximum: 86400, default: 300 },
        maxModelMb: { type: 'number', exclusiveMinimum: 0, maximum: 4096, default: 64 },
      },
    },
  },
} as const;

export interface AgentConfig {
  deviceId: string | null;
  stateDir: string | null;
  model: { path: string | null; calib: string | null; judge: string | null; task: Task | 'auto'; shapes: Record<string, number[]> };
  profile: string | null;
  hardware: { factsDir: string | null };
  budgets: Budgets;
  prefer: 'fidelity' | 'latency';
  fitter: 'auto' | 'reference-only';
  train: { minutes: number };
  threads: number | null;
  metricsIntervalS: number;
  probe: { intervalS: number; runs: number; stepDownAfter: number; stepUpAfter: number; headroom: number; maxCpuPercent: number };
  mqtt: {
    url: string | null;
    embeddedHost: string;
    embeddedPort: number;
    topicPrefix: string | null;
    username: string | null;
    password: string | null;
    caFile: string | null;
    certFile: string | null;
    keyFile: string | null;
    rejectUnauthorized: boolean;
    keepaliveS: number;
    backoffMinMs: number;
    backoffMaxMs: number;
    drainRatePerSec: number;
    outboxMax: number;
    outboxLowMax: number;
    protocolVersion: 4 | 5;
  };
  commands: { maxConcurrent: number; maxQueued: number; rejectedReportS: number; rejectedResponsesPerS: number };
  dashboard: { port: number | null };
  serve: {
    enabled: boolean;
    host: string;
    port: number | null;
    /** Relative to the state folder unless absolute (default serve.sock); null: none. */
    socket: string | null;
    tokenFile: string | null;
    maxBodyMb: number;
    capture: { enabled: boolean; maxMb: number; every: number };
  };
  security: {
    operatorKeys: string[];
    hmacSecretFile: string | null;
    publicKeyFile: string | null;
    maxSkewS: number;
    maxModelMb: number;
  };
}

export const DEFAULT_DASHBOARD_PORT = 8080;

/** Pinned operator public key files: security.operatorKeys and its older alias publicKeyFile. */
export function operatorKeyFiles(cfg: AgentConfig): string[] {
  const s = cfg.security;
  return [...new Set([...s.operatorKeys, ...(s.publicKeyFile ? [s.publicKeyFile] : [])])];
}

/**
 * The zero-setup exception (`npm start`): the embedded broker on loopback and the built-in
 * dashboard beside it, nothing configured. Only then may the agent make its own operator key and
 * hand it to that dashboard; with a fleet broker (mqtt.url) there is no such exception.
 */
export function zeroSetupControl(cfg: AgentConfig): boolean {
  return (
    cfg.mqtt.url === null &&
    isLoopback(cfg.mqtt.embeddedHost) &&
    dashboardPort(cfg) !== null &&
    operatorKeyFiles(cfg).length === 0 &&
    cfg.security.hmacSecretFile === null
  );
}

/** The port the local dashboard listens on, or null when it is off. */
export function dashboardPort(cfg: AgentConfig): number | null {
  const p = cfg.dashboard.port;
  if (p === null) return cfg.mqtt.url ? null : DEFAULT_DASHBOARD_PORT;
  return p === 0 ? null : p;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Fill `default`s of the schema into `data`, recursing into object properties. */
export function applyDefaults(schema: Json, data: Json): Json {
  const props = schema.properties as Record<string, Json> | undefined;
  if (!props) return data;
  const out: Json = { ...data };
  for (const [k, sub] of Object.entries(props)) {
    if (out[k] === undefined && 'default' in sub) out[k] = structuredClone(sub.default);
    if (isObj(out[k]) && sub.properties) out[k] = applyDefaults(sub, out[k] as Json);
  }
  return out;
}

function deepMerge(a: Json, b: Json): Json {
  const out: Json = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    out[k] = isObj(v) && isObj(out[k]) && k !== 'shapes' ? deepMerge(out[k] as Json, v) : v;
  }
  return out;
}

/** EDGEFIT_* variables, as a partial config. */
export function envOverrides(env: NodeJS.ProcessEnv): Json {
  const o: Json = {};
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new EdgefitError('CONFIG', `${name}='${v}' is not a number`);
    return n;
  };
  if (env.EDGEFIT_DEVICE_ID) o.deviceId = env.EDGEFIT_DEVICE_ID;
  if (env.EDGEFIT_STATE_DIR) o.stateDir = env.EDGEFIT_STATE_DIR;
  if (env.EDGEFIT_MODEL || env.EDGEFIT_CALIB)
    o.model = { ...(env.EDGEFIT_MODEL ? { path: env.EDGEFIT_MODEL } : {}), ...(env.EDGEFIT_CALIB ? { calib: env.EDGEFIT_CALIB } : {}) };
  if (env.EDGEFIT_PROFILE) o.profile = env.EDGEFIT_PROFILE;
  if (env.EDGEFIT_FACTS_DIR) o.hardware = { factsDir: env.EDGEFIT_FACTS_DIR };
  if (env.EDGEFIT_METRICS_INTERVAL) o.metricsIntervalS = num('EDGEFIT_METRICS_INTERVAL');
  if (env.EDGEFIT_DASHBOARD_PORT) o.dashboard = { port: num('EDGEFIT_DASHBOARD_PORT') };
  const serve: Json = {};
  if (env.EDGEFIT_SERVE) serve.enabled = !['0', 'false', 'off', 'no'].includes(env.EDGEFIT_SERVE.toLowerCase());
  if (env.EDGEFIT_SERVE_HOST) serve.host = env.EDGEFIT_SERVE_HOST;
  if (env.EDGEFIT_SERVE_PORT) serve.port = num('EDGEFIT_SERVE_PORT');
  if (env.EDGEFIT_SERVE_SOCKET) serve.socket = ['none', 'null', 'off'].includes(env.EDGEFIT_SERVE_SOCKET) ? null : env.EDGEFIT_SERVE_SOCKET;
  if (env.EDGEFIT_SERVE_TOKEN_FILE) serve.tokenFile = env.EDGEFIT_SERVE_TOKEN_FILE;
  if (env.EDGEFIT_CAPTURE) serve.capture = { enabled: !['0', 'false', 'off', 'no'].includes(env.EDGEFIT_CAPTURE.toLowerCase()) };
  if (Object.keys(serve).length) o.serve = serve;
  const mqtt: Json = {};
  if (env.EDGEFIT_BROKER) mqtt.url = env.EDGEFIT_BROKER;
  if (env.EDGEFIT_MQTT_USERNAME) mqtt.username = env.EDGEFIT_MQTT_USERNAME;
  if (env.EDGEFIT_MQTT_PASSWORD) mqtt.password = env.EDGEFIT_MQTT_PASSWORD;
  if (Object.keys(mqtt).length) o.mqtt = mqtt;
  return o;
}

export function loadAgentConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; flags?: Json }): AgentConfig {
  let fromFile: Json = {};
  if (opts.file) {
    if (!existsSync(opts.file)) throw new EdgefitError('FILE_NOT_FOUND', `config file ${opts.file} does not exist`);
    try {
      fromFile = JSON.parse(readFileSync(opts.file, 'utf8')) as Json;
    } catch (e) {
      throw new EdgefitError('CONFIG', `config file ${opts.file} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
    if (!isObj(fromFile)) throw new EdgefitError('CONFIG', `config file ${opts.file} must hold a JSON object`);
  }
  const merged = deepMerge(deepMerge(fromFile, envOverrides(opts.env ?? {})), opts.flags ?? {});
  const full = applyDefaults(agentConfigSchema as unknown as Json, merged);
  const r = validate<AgentConfig>(agentConfigSchema, full);
  if (!r.ok)
    throw new EdgefitError('CONFIG', `invalid agent configuration${opts.file ? ` (${opts.file})` : ''}: ${formatIssues(r.errors)}`);
  if (r.value.mqtt.backoffMinMs > r.value.mqtt.backoffMaxMs) {
    throw new EdgefitError('CONFIG', 'invalid agent configuration: mqtt.backoffMinMs: must not exceed mqtt.backoffMaxMs');
  }
  const sv = r.value.serve;
  if (sv.enabled && sv.port !== null && !isLoopback(sv.host) && !sv.tokenFile) {
    throw new EdgefitError('CONFIG', `invalid agent configuration: serve.host: ${sv.host} is not loopback, so serve.tokenFile must be set`);
  }
  return r.value;
}

/** Hosts that only this box can reach: the serve endpoint needs no token there. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
