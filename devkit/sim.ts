// Simulated devices for demos, tests and the scale benchmark. Each device is its own MQTT
// connection with a Last Will (status offline, retained), publishes retained status and profile,
// metrics at a fixed rate and events, and answers requests with the agent's payload schema.
// Figures follow a plausible PP-OCRv4-det frontier per board, with noise and slow drift, so the
// dashboard shows what a real fleet looks like rather than uniform noise.
import { connect, type MqttClient } from 'mqtt';
import { join } from 'node:path';
import { EdgefitError } from '../src/errors.js';
import { PREFIX_RE } from '../src/dashboard/link.js';
import { candidateLabel } from '../src/dashboard/adapt.js';
import { meets, type Budgets } from '../src/budgets/index.js';
import {
  PAYLOAD_VERSION,
  type EventPayload,
  type EventType,
  type MetricsPayload,
  type ProfilePayload,
  type PublicFrontierEntry,
  type ResponsePayload,
  type StatusPayload,
} from '../src/telemetry/payloads.js';
import { checkArgs } from '../src/telemetry/validate.js';
import { isVerb } from '../src/telemetry/topics.js';
import { mqttTlsOptions, type MqttTlsFiles } from '../src/telemetry/tls.js';

/** Per board profile (names as in profiles/): the det model's frontier (latency p50 ms, fidelity, model RSS MB) by level. */

/** How long a simulated device's clean shutdown may take before it is cut. */
const STOP_MS = 2000;
/** How long each step of a simulated device's start (CONNACK, SUBACK, PUBACK) may take. */
const START_MS = 30_000;

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export const SIM_BOARDS = {
  'raspberry-pi-4': {
    model: 'Raspberry Pi 4 Model B Rev 1.4',
    arch: 'arm64',
    ramTotalMb: 4096,
    baseTempC: 52,
    frontier: [
      [1850, 1, 118],
      [980, 0.991, 46],
      [760, 0.982, 38],
      [560, 0.961, 30],
      [410, 0.93, 24],
    ],
  },
  'raspberry-pi-5': {
    model: 'Raspberry Pi 5 Model B Rev 1.0',
    arch: 'arm64',
    ramTotalMb: 8192,
    baseTempC: 48,
    frontier: [
      [720, 1, 118],
      [390, 0.991, 46],
      [300, 0.982, 38],
      [225, 0.961, 30],
      [170, 0.93, 24],
    ],
  },
  'jetson-orin-nano': {
    model: 'NVIDIA Jetson Orin Nano Developer Kit',
    arch: 'arm64',
    ramTotalMb: 8192,
    baseTempC: 44,
    frontier: [
      [240, 1, 118],
      [150, 0.991, 46],
      [118, 0.982, 38],
      [92, 0.961, 30],
      [70, 0.93, 24],
    ],
  },
  'generic-x86_64': {
    model: null,
    arch: 'x64',
    ramTotalMb: 16384,
    baseTempC: 40,
    frontier: [
      [160, 1, 118],
      [82, 0.991, 46],
      [66, 0.982, 38],
      [50, 0.961, 30],
      [39, 0.93, 24],
    ],
  },
} as const;
export type SimBoard = keyof typeof SIM_BOARDS;
const BOARD_NAMES = Object.keys(SIM_BOARDS) as SimBoard[];
/** The candidate behind each level: fp32 reference, int8, then int8 with more channels pruned. */
export const SIM_CONFIGS = [
  { structured: 0, unstructured: 0, quant: 'none', threads: 4 },
  { structured: 0, unstructured: 0, quant: 'int8-static', threads: 4 },
  { structured: 0.15, unstructured: 0, quant: 'int8-static', threads: 4 },
  { structured: 0.3, unstructured: 0, quant: 'int8-static', threads: 4 },
  { structured: 0.45, unstructured: 0, quant: 'int8-static', threads: 4 },
] as const;
const LEVELS = SIM_CONFIGS.length;
const MODEL_ID = 'ch_PP-OCRv4_det_infer';

export interface SimOptions {
  broker: string;
  devices: number;
  prefix?: string;
  /** metrics messages per second per device */
  rate?: number;
  /** first device number (ids are sim-0001, sim-0002, ...) */
  start?: number;
  /** connect at most this many devices per second (the broker's accept queue is finite) */
  connectRate?: number;
  /** CA (and server check) for an mqtts:// broker */
  tls?: Pick<MqttTlsFiles, 'caFile' | 'rejectUnauthorized'>;
  /** per-device client certificates <certDir>/<id>.crt and <id>.key (CN = device id, for use_identity_as_username) */
  certDir?: string;
  /** log in as username <id> with this password (one password file entry per simulated device) */
  password?: string;
  log?: (line: string) => void;
}

type DeviceOptions = Required<Pick<SimOptions, 'broker' | 'prefix' | 'rate'>> & Pick<SimOptions, 'log' | 'tls' | 'certDir' | 'password'>;

type SimBudgets = Required<Pick<Budgets, 'latencyMs' | 'ramMb' | 'minFidelity'>>;
const iso = (t = Date.now()): string => new Date(t).toISOString();

function simId(n: number): string {
  return `sim-${String(n).padStart(4, '0')}`;
}

/** Small deterministic PRNG so a device looks the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

export class SimDevice {
  readonly id: string;
  readonly board: SimBoard;
  private client: MqttClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;
  private eventSeq = 0;
  private readonly rand: () => number;
  private budgets: SimBudgets;
  private level: number;
  private prevLevel: number;
  private temp: number;
  /** extra latency factor (>1 = a busy or throttled box) */
  private slow = 1;
  private overBudgetStreak = 0;
  /** the latency reported instead of the simulated one while set (bench marker) */
  private forcedLatency: number | null = null;

  constructor(
    readonly n: number,
    private readonly opts: DeviceOptions,
  ) {
    this.id = simId(n);
    this.rand = rng(n * 2654435761);
    this.board = BOARD_NAMES[n % BOARD_NAMES.length]!;
    const f = SIM_BOARDS[this.board].frontier;
    // budgets a little above the int8 or pruned level, a few devices deliberately too tight
    const target = 1 + Math.floor(this.rand() * 3);
    const tight = this.rand() < 0.12;
    this.budgets = {
      latencyMs: Math.round(f[target]![0] * (tight ? 0.8 : 1.25)),
      ramMb: 256,
      minFidelity: Number((f[target]![1] - 0.005).toFixed(3)),
    };
    this.level = this.choose();
    this.prevLevel = this.level;
    this.temp = SIM_BOARDS[this.board].baseTempC + this.rand() * 6;
    if (this.rand() < 0.08) this.slow = 1.35;
  }

  private get topic(): string {
    return `${this.opts.prefix}/${this.id}`;
  }

  /** The highest-fidelity level within the latency budget (the fit's decision), else the fastest. */
  private choose(): number {
    const f = SIM_BOARDS[this.board].frontier;
    for (let i = 0; i < f.length; i++) if (f[i]![0] <= this.budgets.latencyMs && f[i]![1] >= this.budgets.minFidelity) return i;
    for (let i = 0; i < f.length; i++) if (f[i]![0] <= this.budgets.latencyMs) return i;
    return f.length - 1;
  }

  statusPayload(state: 'online' | 'offline', reason: StatusPayload['reason']): StatusPayload {
    return { v: PAYLOAD_VERSION, deviceId: this.id, state, reason, ts: iso(), agentVersion: '0.1.0-sim' };
  }

  profilePayload(): ProfilePayload {
    const b = SIM_BOARDS[this.board];
    return {
      v: PAYLOAD_VERSION,
      deviceId: this.id,
      ts: iso(),
      profile: this.board,
      hardwareHash: `sim-${this.board}-${this.n}`,
      hardware: { arch: b.arch, board: { id: this.board, model: b.model }, ramTotalMb: b.ramTotalMb, cores: 4, simulated: true },
      budgets: { ...this.budgets },
    };
  }

  frontierPayload(): PublicFrontierEntry[] {
    return SIM_BOARDS[this.board].frontier.map(([lat, fid, ram], i) => {
      const config = { ...SIM_CONFIGS[i]! };
      return {
        id: `L${i}-${candidateLabel({ config }).replace(/[^A-Za-z0-9]+/g, '-')}`,
        config,
        sha256: '0'.repeat(64),
        sizeBytes: Math.round(4_700_000 / (i ? 3.6 + i * 0.6 : 1)),
        latencyP50Ms: lat,
        latencyP95Ms: lat * 1.15,
        modelRssMb: ram,
        fidelity: fid,
        meets: this.meets(lat, ram, fid),
      };
    });
  }

  metricsPayload(): MetricsPayload {
    const [lat, fid, ram] = SIM_BOARDS[this.board].frontier[this.level]!;
    this.temp += (this.rand() - 0.5) * 0.6 + (SIM_BOARDS[this.board].baseTempC + 4 - this.temp) * 0.02;
    const noise = 1 + (this.rand() - 0.5) * 0.12;
    let p50 = lat * this.slow * noise;
    if (this.forcedLatency !== null) p50 = this.forcedLatency;
    const p95 = p50 * (1.12 + this.rand() * 0.1);
    const modelRam = ram + this.rand() * 3;
    const total = SIM_BOARDS[this.board].ramTotalMb;
    return {
      v: PAYLOAD_VERSION,
      deviceId: this.id,
      seq: ++this.seq,
      ts: iso(),
      system: {
        cpuLoad: Number((0.2 + this.rand() * 0.5 + (this.slow > 1 ? 0.9 : 0)).toFixed(2)),
        cores: 4,
        temperatureC: Number(this.temp.toFixed(1)),
        throttled: this.temp > 80,
        memTotalMb: total,
        memAvailableMb: Math.round(total * 0.6),
      },
      agent: {
        rssMb: Number((58 + this.rand() * 4).toFixed(1)),
        cpuPercent: 0.4,
        uptimeS: Math.round(process.uptime()),
        outboxPending: 0,
        outboxDropped: 0,
      },
      model: {
        id: MODEL_ID,
        level: this.level,
        levels: LEVELS,
        version: `v${this.level + 1}`,
        latencyP50Ms: Number(p50.toFixed(2)),
        latencyP95Ms: Number(p95.toFixed(2)),
        modelRssMb: Number(modelRam.toFixed(1)),
        fidelity: fid,
      },
      budgets: { ...this.budgets, effectiveLatencyMs: this.budgets.latencyMs },
      meets: this.meets(p50, modelRam, fid),
    };
  }

  /** Judged like the agent judges (src/budgets); every sim budget is set, so no flag is null. */
  private meets(latencyMs: number, ramMb: number, fidelity: number): { latency: boolean; ram: boolean; fidelity: boolean } {
    const m = meets({ latencyMs, ramMb, fidelity }, this.budgets).met;
    return { latency: m.latency !== false, ram: m.ram !== false, fidelity: m.fidelity !== false };
  }

  async connect(): Promise<void> {
    const client = connect(this.opts.broker, {
      clientId: `${this.id}-${process.pid}`,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      ...(this.opts.password !== undefined ? { username: this.id, password: this.opts.password } : {}),
      ...mqttTlsOptions(this.opts.broker, {
        ...this.opts.tls,
        ...(this.opts.certDir
          ? { certFile: join(this.opts.certDir, `${this.id}.crt`), keyFile: join(this.opts.certDir, `${this.id}.key`) }
          : {}),
      }),
      will: {
        topic: `${this.topic}/status`,
        payload: Buffer.from(JSON.stringify(this.statusPayload('offline', 'lwt'))),
        qos: 1,
        retain: true,
      },
    });
    this.client = client;
    client.on('error', (e) => this.opts.log?.(`${this.id}: ${e.message}`));
    // without reconnects a connection that closes before CONNACK, or before a QoS 1 answer, would
    // leave these awaits pending for good: each is bounded and says which device and step hung
    await withDeadline(
      new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
        client.once('close', () => reject(new Error('connection closed before CONNACK')));
      }),
      START_MS,
    ).catch((e: unknown) => {
      throw new Error(`${this.id}: connect: ${(e as Error).message}`);
    });
    client.on('message', (topic, payload) => this.onRequest(topic, payload));
    const step = <T>(what: string, p: Promise<T>): Promise<T> =>
      withDeadline(p, START_MS).catch((e: unknown) => {
        throw new Error(`${this.id}: ${what}: ${(e as Error).message}`);
      });
    await step('subscribe', client.subscribeAsync(`${this.topic}/request/+`, { qos: 1 }));
    await step(
      'status',
      client.publishAsync(`${this.topic}/status`, JSON.stringify(this.statusPayload('online', 'start')), { qos: 1, retain: true }),
    );
    await step('profile', client.publishAsync(`${this.topic}/profile`, JSON.stringify(this.profilePayload()), { qos: 1, retain: true }));
    this.event('deployed', `deployed ${MODEL_ID} level ${this.level}`, { modelId: MODEL_ID, level: this.level });
    const period = 1000 / this.opts.rate;
    // spread devices over the period so 1,000 of them do not fire in the same millisecond
    const phase = this.rand() * period;
    this.timer = setTimeout(() => {
      this.publishMetrics();
      this.timer = setInterval(() => this.publishMetrics(), period);
    }, phase);
  }

  publishMetrics(): void {
    const c = this.client;
    if (!c?.connected) return;
    const m = this.metricsPayload();
    c.publish(`${this.topic}/metrics`, JSON.stringify(m), { qos: 0 });
    // run-time adaptation as the agent does it: step down after 3 slow probes in a row
    this.overBudgetStreak = m.meets.latency ? 0 : this.overBudgetStreak + 1;
    if (this.overBudgetStreak >= 3 && this.level < LEVELS - 1) {
      this.prevLevel = this.level;
      this.level++;
      this.overBudgetStreak = 0;
      this.event('stepped-down', `latency over budget 3 probes in a row: level ${this.prevLevel} -> ${this.level}`, {
        from: this.prevLevel,
        to: this.level,
      });
    }
  }

  /**
   * Report this latency from now on and publish it at once (publish -> screen checks). Holding
   * the value means a later message in the same dashboard batch cannot hide it.
   */
  publishMarker(latencyMs: number): void {
    this.forcedLatency = latencyMs;
    this.publishMetrics();
  }

  event(type: EventType, message: string, data: Record<string, unknown>, txn?: string): void {
    const e: EventPayload = {
      v: PAYLOAD_VERSION,
      deviceId: this.id,
      seq: ++this.eventSeq,
      ts: iso(),
      type,
      message,
      data,
      ...(txn ? { txn } : {}),
    };
    this.client?.publish(`${this.topic}/events`, JSON.stringify(e), { qos: 1 });
  }

  private respond(
    verb: string,
    txn: string | null,
    body: { ok: true; result: Record<string, unknown> } | { ok: false; error: { code: string; message: string } },
  ): void {
    const r: ResponsePayload = { v: PAYLOAD_VERSION, deviceId: this.id, txn, verb, ts: iso(), ...body };
    this.client?.publish(`${this.topic}/response/${verb}`, JSON.stringify(r), { qos: 1 });
  }

  private onRequest(topic: string, payload: Buffer): void {
    const verb = topic.slice(`${this.topic}/request/`.length);
    let req: Record<string, unknown>;
    try {
      const v = JSON.parse(payload.toString('utf8')) as unknown;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      req = v as Record<string, unknown>;
    } catch {
      return this.respond(verb, null, { ok: false, error: { code: 'DATA', message: 'request is not a JSON object' } });
    }
    const txn = typeof req.txn === 'string' && req.txn ? req.txn : null;
    if (!txn) return this.respond(verb, null, { ok: false, error: { code: 'DATA', message: 'request without txn' } });
    if (!isVerb(verb)) return this.respond(verb, txn, { ok: false, error: { code: 'USAGE', message: `unknown verb '${verb}'` } });
    let args: Record<string, unknown>;
    try {
      args = checkArgs(verb, req.args ?? {});
    } catch (e) {
      return this.respond(verb, txn, { ok: false, error: { code: 'DATA', message: (e as Error).message } });
    }
    switch (verb) {
      case 'ping':
        return this.respond(verb, txn, { ok: true, result: { pong: true, uptimeS: Math.round(process.uptime()) } });
      case 'get-frontier': {
        const frontier = this.frontierPayload();
        return this.respond(verb, txn, { ok: true, result: { modelId: MODEL_ID, chosenId: frontier[this.level]!.id, frontier } });
      }
      case 'set-budget': {
        const before = this.level;
        this.budgets = { ...this.budgets, ...(args as Partial<SimBudgets>) };
        this.level = this.choose();
        this.respond(verb, txn, { ok: true, result: { budgets: this.budgets, level: this.level, refit: false } });
        this.event('budgets-changed', 'budgets changed by request', { budgets: this.budgets }, txn);
        if (before !== this.level)
          this.event(
            'deployed',
            `level ${before} -> ${this.level} from the stored frontier (new budgets)`,
            { from: before, to: this.level },
            txn,
          );
        return;
      }
      case 'fit':
        this.respond(verb, txn, { ok: true, result: { accepted: true } });
        this.event('fit-started', `fitting ${MODEL_ID}`, { modelId: MODEL_ID }, txn);
        setTimeout(() => {
          this.level = this.choose();
          this.event(
            'fit-done',
            `fit done: ${LEVELS} candidates on the frontier, chose level ${this.level}`,
            { modelId: MODEL_ID, level: this.level, candidates: LEVELS },
            txn,
          );
        }, 800);
        return;
      case 'rollback': {
        const from = this.level;
        this.level = this.prevLevel;
        this.prevLevel = from;
        this.respond(verb, txn, { ok: true, result: { level: this.level } });
        this.event('rolled-back', `rolled back: level ${from} -> ${this.level}`, { from, to: this.level }, txn);
        return;
      }
      default:
        return this.respond(verb, txn, {
          ok: false,
          error: { code: 'UNSUPPORTED', message: `simulated devices do not implement '${verb}'` },
        });
    }
  }

  /** Cut the TCP connection without DISCONNECT: the broker must publish the Last Will. */
  kill(): void {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
    const c = this.client;
    this.client = null;
    if (c) {
      c.options.reconnectPeriod = 0;
      c.stream.destroy();
      c.end(true);
    }
  }

  /** Clean shutdown as the agent does it: retained offline, then DISCONNECT. */
  async stop(): Promise<void> {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
    const c = this.client;
    this.client = null;
    if (!c) return;
    // bounded: a QoS 1 publish waits for its PUBACK, and a connection that drops after the check
    // (a broker stopped by an outage test) would keep it waiting, and the test's teardown, forever
    if (c.connected) {
      await withDeadline(
        c.publishAsync(`${this.topic}/status`, JSON.stringify(this.statusPayload('offline', 'shutdown')), { qos: 1, retain: true }),
        STOP_MS,
      ).catch(() => undefined);
    }
    if (
      !(await withDeadline(c.endAsync(), STOP_MS).then(
        () => true,
        () => false,
      ))
    )
      await c.endAsync(true);
  }
}

export class SimFleet {
  readonly devices: SimDevice[] = [];
  constructor(private readonly opts: SimOptions) {
    if (!Number.isInteger(opts.devices) || opts.devices < 1 || opts.devices > 10_000) {
      throw new EdgefitError('USAGE', '--devices must be an integer from 1 to 10000');
    }
    const rate = opts.rate ?? 1;
    if (!(rate > 0 && rate <= 50)) throw new EdgefitError('USAGE', '--rate must be in (0, 50] messages per second');
    const prefix = opts.prefix ?? 'edgefit';
    if (!PREFIX_RE.test(prefix)) throw new EdgefitError('USAGE', `bad --prefix '${prefix}'`);
    const first = opts.start ?? 1;
    for (let i = 0; i < opts.devices; i++) {
      this.devices.push(
        new SimDevice(first + i, {
          broker: opts.broker,
          prefix,
          rate,
          ...(opts.log ? { log: opts.log } : {}),
          ...(opts.tls ? { tls: opts.tls } : {}),
          ...(opts.certDir ? { certDir: opts.certDir } : {}),
          ...(opts.password !== undefined ? { password: opts.password } : {}),
        }),
      );
    }
  }

  async start(): Promise<void> {
    const perSecond = this.opts.connectRate ?? 500;
    const batch = Math.max(1, Math.round(perSecond / 10));
    for (let i = 0; i < this.devices.length; i += batch) {
      const t0 = Date.now();
      await Promise.all(this.devices.slice(i, i + batch).map((d) => d.connect()));
      const wait = 100 - (Date.now() - t0);
      if (wait > 0 && i + batch < this.devices.length) await new Promise((r) => setTimeout(r, wait));
    }
  }

  get(id: string): SimDevice | undefined {
    return this.devices.find((d) => d.id === id);
  }

  async stop(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.stop()));
  }
}
