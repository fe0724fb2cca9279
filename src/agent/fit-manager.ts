// Fit manager: fits the model when no fit exists for model + shapes + budgets + hardware
// (+ calibration data), caches fits in the store by that key, and announces the choice on the
// bus ('fit:done'); the deployer serves it. The fitter itself runs in a child (fit-worker.ts).
// What is announced keeps the fidelity floor (./floor.ts): a choice below it is replaced by the
// best entry meeting it, or the original; when budgets cannot all be met, 'budgets-unmet' says
// which and by how much. A fit a stop, kill or power loss interrupted is resumed by the next start
// (same row and folder, so what it measured is re-used; see takeInterrupted).
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { configMessage } from '../config/remedy.js';
import { EdgefitError } from '../errors.js';
import type { FitResult, Fitter, FrontierEntry, TrainedCandidate } from '../fit/types.js';
import { isMeasurementFile } from '../fit/cache.js';
import type { Task } from '../fidelity/tasks.js';
import { describeJudged } from '../fidelity/task-compare.js';
import type { FitRow, Store } from '../store/index.js';
import type { TrainingStatus } from '../telemetry/payloads.js';
import type { BudgetStore } from './budget-store.js';
import type { AgentBus, Component } from './bus.js';
import { deployableChoice, fidelityFloor, unmetBudgets, type Unmet } from './floor.js';
import type { HardwareFacts } from './hardware.js';
import type { ModelVersion } from './model-store.js';
import { resolveFitter } from './reference-fitter.js';
import { TrainingHold, type FitActivity, type HoldLink, type Quiet } from './train-hold.js';
import { fitOriginalMs } from './original.js';

/** A fit interrupted by this many agent starts in a row (kill, crash, power loss; a clean stop does
 * not count) is failed instead of resumed: it may be what brings the agent down. */
export const MAX_FIT_STARTS = 3;

export interface FitModel {
  path: string;
  sha256: string;
  shapes: Record<string, number[]>;
  calib: string | undefined;
  /** Data candidates are judged on (undefined: the calibration data's judge/ subfolder or a split of it). */
  judge?: string | undefined;
  /** What the model is for (absent: detected by the fitter). */
  task?: Task;
}

export interface CurrentFit {
  fitId: number;
  fit: FitResult;
  frontier: FrontierEntry[];
  /** What the agent deploys for this fit: its choice if that keeps the fidelity floor, else the
   * best entry that does, null = the original. */
  deployable: FrontierEntry | null;
  /** Which budgets what is deployed for this fit misses and by how much; null when it meets them all. */
  unmet: Unmet | null;
}

/** Read-only questions other components ask about fits. */
export interface FitView {
  current(): CurrentFit | undefined;
  level(): number | null;
  /** A stored fit's frontier (a version being deployed is loaded before it is current()). */
  frontier(fitId: number): FrontierEntry[];
}

export interface FitManagerDeps {
  bus: AgentBus;
  store: Store;
  budgets: BudgetStore;
  model: FitModel;
  mode: 'auto' | 'reference-only';
  threads: number | null;
  hw: () => HardwareFacts;
  /** What the deployer serves now. */
  deployed: () => ModelVersion | undefined;
  fitDir: (fitId: number) => string;
  log: (line: string) => void;
  /** Injected fitter (tests); default: resolveFitter(mode). */
  fitter?: Fitter;
  /** The injected fitter's hold (train-hold.ts); resolveFitter's child fitter brings its own. */
  fitterHold?: HoldLink;
  /** How long a live probe waits for the held training to stop at its gate (default PROBE_PARK_MS). */
  parkMs?: number;
  /** Fits wait for this first (the agent's first run times the original on a quiet box). */
  gate?: () => Promise<unknown> | undefined;
  /** The original model's p50 as timed live on this box (null until timed): relative budgets are judged on it. */
  originalMs?: () => number | null;
  /**
   * After a fit's search, before its choice is deployed (the box is quiet: the search is over): the
   * agent times the original live again, while the original is what is served, when the fit's
   * timing of it beside its candidates (ms, original.ts fitOriginalMs) says the first was slowed.
   */
  checkOriginal?: (fitMs: number) => Promise<void>;
  /** Minutes a second, training fit may spend (config train.minutes; 0: none). See FitManager.run. */
  trainMinutes?: () => number;
  /** Opt-in captured inputs (serve.capture, capture.ts): once `ready`, fits calibrate and judge on
   * the snapshot folder `dir` instead of model.calib / model.judge; `snapshot()` refreshes it. */
  captured?: { dir: string; ready: () => boolean; snapshot: () => number };
}

export class FitManager implements Component, FitView {
  private fitter: Fitter | undefined;
  private fitterName = '';
  private fitterClose: (() => void) | undefined;
  /** Set while a training fit runs: served traffic and live probes hold it (train-hold.ts). */
  private training = false;
  private holds: TrainingHold | undefined;
  private fitting: Promise<void> | undefined;
  private stopped = false;
  /** Fits a stop or crash left 'running', by key: the next fit for that key goes on with it. */
  private readonly resumable = new Map<string, FitRow>();
  /** The fit under way (its row is 'running'). */
  private fitId: number | undefined;

  constructor(private readonly d: FitManagerDeps) {}

  /** Run a live probe with the agent's own training held (TrainingHold.quietFor). */
  async quietFor<T>(f: () => Promise<T>): Promise<Quiet<T>> {
    if (this.holds) return this.holds.quietFor(f);
    return { value: await f() };
  }

  /** Whether the agent's own fit uses the cores now (why): see TrainingHold.busy. */
  busy(): string | undefined {
    return this.holds?.busy();
  }

  private activity(): FitActivity {
    if (this.fitId === undefined) return { kind: 'idle' };
    return { kind: this.training ? 'training' : 'measuring', fitId: this.fitId };
  }

  start(): void {
    this.takeInterrupted();
    const f = this.d.fitter
      ? { fitter: this.d.fitter, name: 'injected', close: undefined, hold: this.d.fitterHold }
      : resolveFitter(this.d.mode, this.d.hw().hash);
    this.fitter = f.fitter;
    this.fitterName = f.name;
    this.fitterClose = f.close;
    this.holds = new TrainingHold(this.d.bus, () => this.activity(), this.d.parkMs);
    this.holds.start(f.hold);
    this.ensure();
  }

  stop(): void {
    this.stopped = true;
    this.holds?.stop();
    // a running fit is not awaited: it may take minutes; its child is killed and the fit stays
    // 'running', resumed on restart from what its folder's cache holds (a clean stop is no crash)
    if (this.fitId !== undefined) this.d.store.fitStopped(this.fitId);
    this.fitterClose?.();
  }

  /**
   * Fits a stop, kill or power loss left 'running': the newest per key is resumed when a fit for
   * its key runs (same row, same folder: every candidate already built and measured is a cache
   * hit), unless it was interrupted MAX_FIT_STARTS starts in a row; older ones are failed.
   */
  private takeInterrupted(): void {
    const { store, bus, log } = this.d;
    for (const r of store.runningFits()) {
      const starts = store.fitStarts(r.id);
      if (this.resumable.has(r.fitKey)) {
        store.failFit(r.id, 'interrupted; superseded by a newer fit of the same key');
      } else if (starts >= MAX_FIT_STARTS) {
        const why = `interrupted ${starts} starts in a row (the agent was killed or crashed during it each time); not resumed again, refit to retry`;
        store.failFit(r.id, why);
        bus.report('fit-failed', `fit ${r.id} failed: ${why}`, { fitId: r.id, error: why, starts });
      } else {
        this.resumable.set(r.fitKey, r);
        log(`fit ${r.id} was interrupted by a restart; it resumes when its fit runs (start ${starts + 1} of at most ${MAX_FIT_STARTS})`);
      }
    }
  }

  /** Interrupted fits no fit of this start resumed (budgets, model or box changed): failed as before. */
  private dropUnresumed(): void {
    if (this.stopped) return;
    for (const r of this.resumable.values()) this.d.store.failFit(r.id, 'interrupted; not resumed: the model, budgets or box changed');
    this.resumable.clear();
  }

  /** The key of the fit for the current model, budgets and box; `train` minutes make the training fit's key. */
  key(train = 0): string {
    const m = this.d.model;
    const prefer = this.d.budgets.prefer();
    const data = this.data();
    const parts = [
      m.sha256,
      m.shapes,
      this.d.budgets.get(),
      this.d.hw().hash,
      ...(data.calib ? [data.calib] : []),
      ...(data.judge ? [data.judge] : []),
      ...(m.task ? [m.task] : []),
      ...(prefer === 'latency' ? [prefer] : []),
      ...(train > 0 ? [`train${train}`] : []),
    ];
    return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
  }

  /** What fits calibrate and judge on: captured inputs once there are enough, else the model's data. */
  private data(): { calib: string | undefined; judge: string | undefined; captured: boolean } {
    const c = this.d.captured;
    if (c?.ready()) return { calib: c.dir, judge: undefined, captured: true };
    return { calib: this.d.model.calib, judge: this.d.model.judge, captured: false };
  }

  /** The fit behind what is deployed (or the latest for the current key), with its frontier. */
  current(): CurrentFit | undefined {
    const cur = this.d.deployed();
    const minutes = this.trainMinutes();
    const row =
      cur?.fitId != null
        ? this.d.store.getFit(cur.fitId)
        : ((minutes > 0 ? this.d.store.latestDoneFit(this.key(minutes)) : undefined) ?? this.d.store.latestDoneFit(this.key()));
    if (!row || row.status !== 'done') return undefined;
    return this.view(row);
  }

  private view(row: FitRow): CurrentFit {
    const frontier = this.d.store.frontier(row.id);
    const fit: FitResult = {
      chosenId: row.chosenId ?? '',
      frontier,
      referenceLatencyP50Ms: row.referenceLatencyMs ?? 0,
      fitter: row.fitter,
    };
    if (row.shortfall) fit.shortfall = row.shortfall;
    if (row.task) fit.task = row.task as Task;
    if (row.fidelityMetric) fit.fidelityMetric = row.fidelityMetric;
    const b = this.d.budgets.get();
    const deployable = deployableChoice(frontier, fit.chosenId, b, this.d.budgets.prefer(), fit.referenceLatencyP50Ms || null);
    // a relative budget is judged against the original as timed live when it has been (the fit's
    // figures are re-based by their ratio to the fit's own reference)
    const live = this.d.originalMs?.() ?? null;
    const ref = fit.referenceLatencyP50Ms || null;
    const timedBeside = deployable?.referenceP50Ms ?? ref; // the original as timed beside this entry
    const rebased =
      live !== null && timedBeside !== null && b.latencyFactor !== undefined ? rebase(deployable, live / timedBeside) : deployable;
    const unmet = unmetBudgets(rebased, b, live ?? ref, fit.fidelityMetric ?? null);
    return { fitId: row.id, frontier, fit, deployable, unmet };
  }

  frontier(fitId: number): FrontierEntry[] {
    return this.d.store.frontier(fitId);
  }

  /** Index on the current frontier of what is deployed (0 = largest), or null. */
  level(): number | null {
    const cur = this.d.deployed();
    const fit = this.current();
    if (!cur || !fit || cur.candidateId === null) return null;
    const i = fit.frontier.findIndex((e) => e.id === cur.candidateId);
    return i >= 0 ? i : null;
  }

  get running(): boolean {
    return this.fitting !== undefined;
  }

  /** Fit when no fit exists for the current key (or always when forced); false when one runs. */
  ensure(txn?: string, force = false): boolean {
    if (this.fitting || this.stopped) return false;
    if (!this.fitter) throw new EdgefitError('USAGE', 'the agent is still starting (profiling the hardware); try again shortly');
    this.fitting = this.run(this.fitter, txn, force)
      .catch((e) => this.d.log(`fit: ${configMessage(e)}`))
      .finally(() => {
        this.fitting = undefined;
        this.dropUnresumed();
      });
    return true;
  }

  private trainMinutes(): number {
    return this.d.trainMinutes?.() ?? 0;
  }

  /**
   * Fit in two phases. The first fit (no training) is what the box deploys soon after start. Then,
   * when config gives training minutes, a second fit trains its best candidate (distillation from
   * the original, or quantization-aware training for int8) at low priority, re-using the first
   * fit's measured candidates (same output folder, same cache), and is hot-swapped in when it
   * chose something else. A restart with a finished training fit goes straight to it.
   */
  private async run(fitter: Fitter, txn: string | undefined, force: boolean): Promise<void> {
    await this.d.gate?.();
    if (this.stopped) return;
    const minutes = this.trainMinutes();
    const trainedRow = minutes > 0 && !force ? this.d.store.latestDoneFit(this.key(minutes)) : undefined;
    if (trainedRow) {
      // as below: a training fit whose choice is not trained leaves the first fit's choice deployed
      const base = this.wonByTraining(trainedRow) ? undefined : this.d.store.latestDoneFit(this.key());
      this.announce(base ?? trainedRow, txn);
      return;
    }
    const base = await this.phase(fitter, txn, force, 0, undefined);
    if (!base || this.stopped) return;
    await this.d
      .checkOriginal?.(fitOriginalMs(this.d.store.frontier(base.id), base.referenceLatencyMs) ?? 0)
      .catch((e: unknown) => this.d.log(`re-timing the original: ${configMessage(e)}`));
    if (this.stopped) return;
    this.announce(base, txn);
    if (minutes <= 0 || this.stopped) return;
    const trained = await this.phase(fitter, txn, force, minutes, base.id);
    if (!trained || this.stopped) return;
    // only a trained candidate replaces the first fit's choice: the training fit searches again, and
    // on a shared box its re-timed search can land on a neighbour of the first choice by noise alone
    if (!this.wonByTraining(trained)) {
      this.reportRejected(trained, base, txn);
      return;
    }
    this.announce(trained, txn);
  }

  private wonByTraining(row: FitRow): boolean {
    return this.chosenEntry(row)?.config.train !== undefined;
  }

  /** The stored frontier entry a finished fit chose. */
  private chosenEntry(row: FitRow): FrontierEntry | undefined {
    return this.d.store.frontier(row.id).find((e) => e.id === row.chosenId);
  }

  /** Says once, with the scores, that a training ran and lost (metrics' fit.training keeps saying it). */
  private reportRejected(trained: FitRow, base: FitRow, txn: string | undefined): void {
    const best = bestTrained(trained.trained);
    const what = best ? `${trainingLine(best)}; it` : 'no candidate was trained; the fit';
    // the first fit's choice may no longer be what is served: a live probe may have stepped from it
    const cur = this.d.deployed()?.candidateId ?? null;
    const kept = base.chosenId ?? 'the original';
    const stays =
      cur === null || cur === base.chosenId
        ? 'which stays deployed'
        : `which stays the fit's choice (${cur}, stepped to at run time, is deployed)`;
    this.d.bus.report(
      'training-rejected',
      `training fit ${trained.id}: ${what} did not beat ${kept}, ${stays}`,
      { fitId: trained.id, baseFitId: base.id, kept: base.chosenId, trained: trained.trained },
      txn,
    );
  }

  /** The latest training fit's best trained candidate, and whether the box serves it (null: none ran). */
  lastTraining(): TrainingStatus | null {
    const minutes = this.trainMinutes();
    const row = minutes > 0 ? this.d.store.latestDoneFit(this.key(minutes)) : undefined;
    const best = row && bestTrained(row.trained);
    if (!row || !best) return null;
    const cur = this.d.deployed();
    const t = best.training;
    return {
      fitId: row.id,
      candidateId: best.id,
      kind: t.kind,
      minutes: t.minutes,
      seconds: t.seconds,
      steps: t.steps,
      heldOutBefore: t.heldOutBefore,
      heldOutAfter: t.heldOutAfter,
      judged: t.judged ?? null,
      ...(t.frozen ? { frozen: t.frozen } : {}),
      fidelity: best.fidelity,
      won: row.chosenId === best.id,
      deployed: cur?.fitId === row.id && cur.candidateId === best.id,
    };
  }

  /** One fit (or the stored one for its key): the row when done, undefined when it failed. */
  private async phase(
    fitter: Fitter,
    txn: string | undefined,
    force: boolean,
    train: number,
    baseFitId: number | undefined,
  ): Promise<FitRow | undefined> {
    const { bus, store, model } = this.d;
    const hw = this.d.hw();
    const key = this.key(train);
    const row = force ? undefined : store.latestDoneFit(key);
    if (row) return row;
    const budgets = this.d.budgets.get();
    // captured inputs: the newest of the ring, frozen for this fit (the ring rotates meanwhile)
    const data = this.data();
    const captured = data.captured ? this.d.captured!.snapshot() : 0;
    // an interrupted fit of this key goes on (a forced refit starts afresh)
    const prior = force ? undefined : this.resumable.get(key);
    if (prior) this.resumable.delete(key);
    const fitId = prior ? prior.id : store.beginFit(key, model.sha256, budgets, hw.hash, this.fitterName);
    const outputDir = this.d.fitDir(baseFitId ?? fitId);
    // the training fit trains what the first fit deployed (the search falls back to its own pick
    // when that is not trainable: the original, or a model already trained)
    const base = baseFitId !== undefined ? store.getFit(baseFitId) : undefined;
    const trainFrom = base && this.chosenEntry(base)?.config;
    const what =
      train > 0
        ? `training ${trainFrom ? `${base!.chosenId}, the choice of fit ${baseFitId},` : `the best candidate of fit ${baseFitId}`} for up to ${train} min (low priority)`
        : `fitting ${model.path}`;
    const on = data.captured ? ` on ${captured} captured inputs` : '';
    if (prior) {
      const starts = store.resumeFit(fitId);
      const reused = measuredCandidates(outputDir);
      bus.report(
        'fit-resumed',
        `resuming fit ${fitId} (interrupted by a restart): ${what}${on}, re-using ${reused} measured candidate${reused === 1 ? '' : 's'}; start ${starts} of at most ${MAX_FIT_STARTS}`,
        { fitId, budgets, fitter: this.fitterName, reusedCandidates: reused, starts, startedAt: prior.startedAt },
        txn,
      );
    } else {
      bus.report(
        'fit-started',
        `${what}${on} to profile '${hw.profile}' with ${this.fitterName}`,
        { fitId, budgets, fitter: this.fitterName, ...(data.captured ? { capturedSamples: captured } : {}) },
        txn,
      );
    }
    this.fitId = fitId;
    let lastReport = 0;
    this.training = train > 0;
    try {
      const result = await fitter(
        {
          modelPath: model.path,
          shapes: model.shapes,
          budgets,
          profile: hw.profile,
          calibDataPath: data.calib,
          judgeDataPath: data.judge,
          task: model.task,
          // the training fit works in the first fit's folder: its measured candidates are cache hits
          outputDir,
          threads: this.d.threads ?? hw.threads ?? undefined,
          prefer: this.d.budgets.prefer(),
          ...(train > 0 ? { trainMinutes: train, ...(trainFrom ? { trainFrom } : {}) } : {}),
        },
        (p) => {
          // progress at most every 2 s; a training run's step-by-step loss every 30 s (minutes of it)
          if (Date.now() - lastReport < (p.stage === 'training' ? 30_000 : 2000) && p.fraction < 1) return;
          lastReport = Date.now();
          const eta = p.etaS !== undefined ? `, about ${Math.max(1, Math.round(p.etaS))} s left` : '';
          bus.report(
            'fit-progress',
            `${p.stage} ${Math.round(p.fraction * 100)}%${eta}${p.message && p.stage === 'training' ? `: ${p.message}` : ''}`,
            {
              fitId,
              fraction: p.fraction,
              stage: p.stage,
              ...(p.etaS !== undefined ? { etaS: Math.round(p.etaS) } : {}),
              // the dashboard draws the running training's loss curve from these, one point per report
              ...(p.train ? { train: p.train } : {}),
            },
            txn,
          );
        },
      );
      if (!result.frontier.some((e) => e.id === result.chosenId)) {
        throw new EdgefitError('INTERNAL', `fitter chose '${result.chosenId}', which is not on its frontier`);
      }
      store.finishFit(fitId, result);
      bus.report(
        'fit-done',
        `fit ${fitId} chose ${result.chosenId} of ${result.frontier.length}${result.shortfall ? ' (budgets not met)' : ''}`,
        {
          fitId,
          chosenId: result.chosenId,
          levels: result.frontier.length,
          referenceLatencyP50Ms: result.referenceLatencyP50Ms,
          shortfall: result.shortfall ?? null,
          ...(result.cacheHits !== undefined ? { cacheHits: result.cacheHits } : {}),
        },
        txn,
      );
    } catch (e) {
      // stopped: the killed child is no failure, the fit stays 'running' and resumes on restart
      if (this.stopped) return undefined;
      const why = configMessage(e); // fits fail on the agent's inputs: say which config key fixes it
      store.failFit(fitId, why);
      bus.report('fit-failed', `fit ${fitId} failed: ${why}`, { fitId, error: why }, txn);
      return undefined;
    } finally {
      this.training = false;
      this.fitId = undefined;
    }
    return store.getFit(fitId)!;
  }

  /** Hand a finished fit's deployable choice to the deployer (unless what is deployed for it already keeps the floor). */
  private announce(row: FitRow, txn: string | undefined): void {
    if (this.stopped) return;
    const { bus } = this.d;
    const fitId = row.id;
    const { frontier, deployable, unmet } = this.view(row);
    const b = this.d.budgets.get();
    const floor = fidelityFloor(b, this.d.budgets.prefer());
    if (deployable?.id !== row.chosenId) {
      this.d.log(
        `fit ${fitId} chose ${row.chosenId}, below the fidelity floor ${floor}; deploying ${deployable?.id ?? 'the original'} instead`,
      );
    }
    if (unmet) bus.report('budgets-unmet', unmet.message, { fitId, ...unmet, budgets: b }, txn);
    // what is deployed for this fit already keeps the floor (a restart after a step down): stay
    const deployed = this.d.deployed();
    const at = deployed?.fitId === fitId ? frontier.find((e) => e.id === deployed.candidateId) : undefined;
    if (at && (floor === null || at.fidelity >= floor)) {
      // (a restart printed nothing of what it serves: nothing is redeployed to say so)
      this.d.log(`fit ${fitId}: ${at.id} is deployed and keeps the budgets' floor, so it stays`);
      return;
    }
    bus.emit('fit:done', { fitId, chosen: deployable, txn });
  }
}

/** The trained candidate that measured best (a fit trains one; resumed or re-run fits may hold more). */
function bestTrained(trained: readonly TrainedCandidate[]): TrainedCandidate | undefined {
  return trained.reduce<TrainedCandidate | undefined>((a, c) => (!a || c.fidelity > a.fidelity ? c : a), undefined);
}

/** "distillation of l0.5-d12: 334 steps in 11.9 min; boxF1 0.9967 -> 0.9967 on held-out images, fidelity 0.990" */
function trainingLine(c: TrainedCandidate): string {
  const t = c.training;
  const what = t.kind === 'qat' ? 'quantization-aware training' : 'distillation';
  const score = t.judged ? describeJudged(t.judged) : `loss ${t.heldOutBefore.toPrecision(3)} -> ${t.heldOutAfter.toPrecision(3)}`;
  return `${what} of ${c.id}: ${t.steps} steps in ${(t.seconds / 60).toFixed(1)} min; ${score} on held-out images, fidelity ${c.fidelity.toFixed(3)}`;
}

/** An entry with its latencies scaled (the fit's figures re-based on the original's live p50). */
function rebase(e: FrontierEntry | null, k: number): FrontierEntry | null {
  if (!e || !(k > 0)) return e;
  const { referenceP50Ms: _r, ...rest } = e;
  return { ...rest, latencyP50Ms: e.latencyP50Ms * k, latencyP95Ms: e.latencyP95Ms * k };
}

/** Candidates a fit's folder holds measured (src/fit/cache.ts: one `<key>.json` per measurement in
 * cache/, beside the sensitivity probe's and re-timings' files): what a resumed fit gets as cache hits. */
function measuredCandidates(outputDir: string): number {
  try {
    return readdirSync(join(outputDir, 'cache')).filter(isMeasurementFile).length;
  } catch {
    return 0; // no folder yet: interrupted before its first measurement
  }
}
