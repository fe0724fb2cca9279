// Probe/adaptation: serves the deployed model to a latency source (loads it; the real source is
// LatencyProbe, which runs each probe in a child), probes it on a schedule, publishes each
// result on the bus ('latency'), and steps down/up the frontier when Adaptation says so.
// The latency source is injected so the step logic can be tested with scripted latencies.
// Real traffic first (issue 19): when the serve process reports that the deployed version served
// at least `probe.runs` requests in its last stats window, that window's run p50 (onnxruntime's
// run time in the serve worker: the statistic a probe measures, on the application's inputs) is
// what adaptation judges, once per window, and the probe is skipped: probes run only when idle.
import { oneLine } from '../errors.js';
import type { Budgets, FrontierEntry } from '../fit/types.js';
import type { Adaptation } from './adaptation.js';
import { latencyBudgetMs, latencyOfRuns } from '../budgets/index.js';
import type { AgentBus, Component } from './bus.js';
import type { ModelServer } from './deployer.js';
import type { FitView } from './fit-manager.js';
import type { LatencyStats, ProbeCost } from './latency.js';
import type { ModelVersion } from './model-store.js';
import type { ServeStats } from '../serve/types.js';
import type { Quiet } from './train-hold.js';

/** Where live latencies come from: LatencyProbe on a device, a script in tests. */
export interface LatencySource {
  /** Probe this model from now on; when it does not load, the model loaded before should stay loaded. */
  load(path: string, shapes: Record<string, number[]>, threads: number | null): Promise<void>;
  measure(runs: number): Promise<LatencyStats>;
  close(): Promise<void>;
  readonly loaded: boolean;
  /** RAM the loaded model costs, MiB. */
  readonly modelRssMb: number;
  /** Cost of the most recent probe, when the source knows it (it paces the probes). */
  readonly lastCost?: ProbeCost | undefined;
}

export interface ProbeSettings {
  intervalS: number;
  runs: number;
  maxCpuPercent: number;
}

export interface ProberDeps {
  bus: AgentBus;
  source: LatencySource;
  adaptation: Adaptation;
  probe: ProbeSettings;
  shapes: Record<string, number[]>;
  /** Threads when the frontier entry does not say: config, then the hardware profile. */
  threads: () => number | null;
  fits: FitView;
  budgets: () => Budgets;
  /** Lowest fidelity a step down may reach (budgets.minFidelity unless the user prefers latency). */
  floor?: () => number | null;
  /** The original's live p50 (null until timed): a relative budget is a fraction of it. */
  originalMs?: () => number | null;
  /** Deploy a frontier entry (the deployer, serialised with other deploys). */
  step: (fitId: number, entry: FrontierEntry, source: 'step-down' | 'step-up') => Promise<unknown>;
  log: (line: string) => void;
  /** What is deployed now: served stats count for it only (absent: served stats are ignored). */
  deployed?: () => ModelVersion | undefined;
  /** Runs a probe with the agent's own training held (FitManager.quietFor); absent: as it is. */
  quiet?: <T>(f: () => Promise<T>) => Promise<Quiet<T>>;
  /** Whether the agent's own fit uses the cores now (FitManager.busy): then live figures step nothing. */
  busy?: () => string | undefined;
}

/** The served figures of the deployed version in one stats window, as a latency measurement, or
 * undefined when it served fewer than `min` requests there (then a probe decides). */
export function servedLatency(stats: ServeStats, version: string, min: number): LatencyStats | undefined {
  const v = stats.perVersion.find((p) => p.version === version);
  if (!v || v.requests < min || !(v.runP50Ms > 0)) return undefined;
  return { p50: v.runP50Ms, p95: v.runP95Ms, runs: v.requests, source: 'served' };
}

/**
 * A newly deployed model is probed this soon rather than at the paced schedule's next turn: with
 * the default 1 % CPU cap a probe that costs 2 CPU-seconds is followed by 200 s of none, and until
 * the first probe the dashboard has no live figure of what is served (it shows '-').
 */
export const FRESH_PROBE_MS = 1000;

export class Prober implements Component, ModelServer {
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  private stopped = false;
  /** When the paced schedule wants the next probe (ms since the epoch). */
  private dueAt = 0;
  /** A model was deployed and no live figure of it has been published since. */
  private fresh = false;
  /** A timer-driven probe is in flight (its end arms the next wake-up). */
  private firing = false;
  private readonly onDeployed = (): void => {
    this.d.adaptation.reset();
    this.fresh = true;
    if (!this.firing) this.wake(Math.min(FRESH_PROBE_MS, Math.max(0, this.dueAt - Date.now())));
  };
  private readonly onServed = (s: ServeStats): void => void this.served(s);
  /** When served requests last stood in for a probe (ms since the epoch) and their window (s). */
  private servedAt = 0;
  private servedWindowS = 0;
  /** Why the last live figure stepped nothing (the agent's own fit was busy), logged on a change. */
  private busyWhy: string | undefined;

  constructor(private readonly d: ProberDeps) {}

  start(): void {
    this.d.bus.on('deployed', this.onDeployed);
    this.d.bus.on('serve:stats', this.onServed);
    // a restart loaded what was deployed before (the deployer starts first): its live figure is owed at once too
    this.fresh = this.d.source.loaded;
    this.arm(this.d.probe.intervalS * 1000);
  }

  /** Stops probing; the source is closed by its owner once nothing can deploy any more. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.d.bus.off('deployed', this.onDeployed);
    this.d.bus.off('serve:stats', this.onServed);
  }

  get loaded(): boolean {
    return this.d.source.loaded;
  }

  get modelRssMb(): number {
    return this.d.source.modelRssMb;
  }

  async load(v: ModelVersion): Promise<void> {
    // the thread count the fit measured this level at (it may have chosen fewer than the box has);
    // looked up by the version's own fit: it is loaded before the pointer makes it current()
    const entry =
      v.candidateId !== null && v.fitId !== null ? this.d.fits.frontier(v.fitId).find((e) => e.id === v.candidateId) : undefined;
    await this.d.source.load(v.file, this.d.shapes, entry?.config.threads ?? this.d.threads());
    this.d.bus.emit('latency', null);
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
    const p = this.d.probe;
    if (this.d.adaptation.confirming) return p.intervalS * 1000;
    const costMs = this.d.source.lastCost?.cpuMs ?? 0;
    return Math.max(p.intervalS * 1000, Math.round(costMs / (p.maxCpuPercent / 100)));
  }

  /** The paced schedule's next probe in `delayMs` (sooner when a fresh deploy wants one). */
  private arm(delayMs: number): void {
    this.dueAt = Date.now() + delayMs;
    this.wake(this.fresh ? Math.min(FRESH_PROBE_MS, delayMs) : delayMs);
  }

  /** One timer only: every wake-up replaces the one before. */
  private wake(delayMs: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.fire(), delayMs);
  }

  private async fire(): Promise<void> {
    // a wake-up for a fresh deploy whose figure came another way (timeServed, served traffic):
    // the paced schedule stands
    if (!this.fresh && Date.now() < this.dueAt) return this.wake(this.dueAt - Date.now());
    this.firing = true;
    try {
      await this.tick();
    } finally {
      this.firing = false;
      this.arm(this.nextProbeDelayMs());
    }
  }

  /**
   * Time what is served with the fit's protocol (`runs` timed runs after the warm-up): the
   * agent times the original this way before any fit result is deployed.
   */
  async timeServed(runs: number): Promise<LatencyStats | undefined> {
    if (!this.d.source.loaded || this.stopped) return undefined;
    this.fresh = false; // this timing is the served model's live figure
    const lat: LatencyStats = { ...(await this.d.source.measure(runs)), source: 'probe' };
    this.d.bus.emit('latency', lat);
    return lat;
  }

  /** Served traffic was judged within the last two stats windows (or probe intervals): no probe needed. */
  get busy(): boolean {
    const within = Math.max(2 * this.servedWindowS, this.d.probe.intervalS) * 1000;
    return this.servedAt > 0 && Date.now() - this.servedAt < within;
  }

  /** One probe and what follows from it (public for tests that drive probes themselves). */
  async tick(): Promise<void> {
    const { source } = this.d;
    if (this.probing || this.stopped) return;
    // nothing to probe, or served figures stand in: no fresh probe is owed either
    if (!source.loaded || this.busy) return void (this.fresh = false);
    this.fresh = false;
    this.probing = true;
    try {
      const measure = (): Promise<LatencyStats> => source.measure(this.d.probe.runs);
      const q = this.d.quiet ? await this.d.quiet(measure) : { value: await measure() };
      if (this.stopped || this.busy) return; // stopping, or served figures came in meanwhile
      await this.judge({ ...q.value, source: 'probe' }, q.busy);
    } catch (e) {
      this.d.log(`probe: ${oneLine(e)}`);
    } finally {
      this.probing = false;
    }
  }

  /** One stats window of the serve process: judged like a probe when the deployed version served enough. */
  async served(stats: ServeStats): Promise<void> {
    const cur = this.d.deployed?.();
    if (!cur || this.stopped) return;
    const lat = servedLatency(stats, cur.version, this.d.probe.runs);
    if (!lat) return;
    this.fresh = false; // the served model's live figure, from its own traffic
    this.servedAt = Date.now();
    this.servedWindowS = stats.windowS;
    // a probe in flight (or a step it started) decides this round; the next window counts
    if (this.probing) return;
    this.probing = true;
    try {
      await this.judge(lat, this.d.busy?.());
    } catch (e) {
      this.d.log(`served latency: ${oneLine(e)}`);
    } finally {
      this.probing = false;
    }
  }

  /**
   * Publish a live measurement and step down/up when adaptation says so; not while the agent's
   * own fit was using the cores (`busy`): that figure measures the agent, and a step down for it
   * outlived it (the fit's choice was not stepped back up to once the fit had ended).
   */
  private async judge(lat: LatencyStats, busy?: string): Promise<void> {
    const { bus } = this.d;
    // published all the same, marked: the dashboard shows it and judges no budget by it
    bus.emit('latency', busy ? { ...lat, busy } : lat);
    if (busy !== this.busyWhy) {
      this.busyWhy = busy;
      if (busy) this.d.log(`live latency steps nothing while ${busy}`);
    }
    if (busy) return;
    const fit = this.d.fits.current();
    const level = this.d.fits.level();
    if (!fit || level === null) return;
    // never above what the agent deploys for this fit (the fit's choice, unless that broke the floor)
    const chosen = Math.max(
      0,
      fit.frontier.findIndex((e) => e.id === (fit.deployable?.id ?? fit.fit.chosenId)),
    );
    const budget = latencyBudgetMs(this.d.budgets(), this.d.originalMs?.() ?? (fit.fit.referenceLatencyP50Ms || null));
    const live = latencyOfRuns(lat);
    const d = this.d.adaptation.observe(
      live,
      budget,
      fit.frontier,
      level,
      chosen,
      this.d.floor?.() ?? null,
      fit.fit.referenceLatencyP50Ms || null,
    );
    if (d.kind === 'stay') return;
    const to = fit.frontier[d.to]!;
    const from = fit.frontier[level]!;
    await this.d.step(fit.fitId, to, d.kind === 'down' ? 'step-down' : 'step-up');
    const src = lat.source ?? 'probe';
    const by = src === 'served' ? `${lat.runs} served requests` : 'probe';
    bus.report(
      d.kind === 'down' ? 'stepped-down' : 'stepped-up',
      `${d.kind === 'down' ? 'stepped down' : 'stepped up'} from ${from.id} to ${to.id}: live p50 ${live} ms (${by}) vs budget ${budget?.toFixed(3)} ms`,
      { from: from.id, to: to.id, fromLevel: level, toLevel: d.to, liveP50Ms: live, budgetMs: budget, source: src },
    );
  }
}
