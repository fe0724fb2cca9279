// Fit manager: fits the model when no fit exists for model + shapes + budgets + hardware
// (+ calibration data), caches fits in the store by that key, and announces the choice on the
// bus ('fit:done'); the deployer serves it. The fitter itself runs in a child (fit-worker.ts).
import { createHash } from 'node:crypto';
import { configMessage } from '../config/remedy.js';
import { EdgefitError } from '../errors.js';
import type { FitResult, Fitter, FrontierEntry } from '../fit/types.js';
import type { Store } from '../store/index.js';
import type { BudgetStore } from './budget-store.js';
import type { AgentBus, Component } from './bus.js';
import type { HardwareFacts } from './hardware.js';
import type { ModelVersion } from './model-store.js';
import { resolveFitter } from './reference-fitter.js';
import type { Task } from '../fidelity/tasks.js';

export interface FitModel {
  path: string;
  sha256: string;
  shapes: Record<string, number[]>;
  calib: string | undefined;
  /** What the model is for (absent: detected by the fitter). */
  task?: Task;
}

export interface CurrentFit {
  fitId: number;
  fit: FitResult;
  frontier: FrontierEntry[];
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
}

export class FitManager implements Component, FitView {
  private fitter: Fitter | undefined;
  private fitterName = '';
  private fitterClose: (() => void) | undefined;
  private fitting: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly d: FitManagerDeps) {}

  start(): void {
    if (this.d.store.failStaleFits() > 0) this.d.log('a fit was interrupted by a restart; it will be redone');
    const f = this.d.fitter ? { fitter: this.d.fitter, name: 'injected', close: undefined } : resolveFitter(this.d.mode, this.d.hw().hash);
    this.fitter = f.fitter;
    this.fitterName = f.name;
    this.fitterClose = f.close;
    this.ensure();
  }

  stop(): void {
    this.stopped = true;
    // a running fit is not awaited: it may take minutes; its child is killed, the fit is marked
    // failed and redone on restart
    this.fitterClose?.();
  }

  key(): string {
    const m = this.d.model;
    const parts = [m.sha256, m.shapes, this.d.budgets.get(), this.d.hw().hash, ...(m.calib ? [m.calib] : []), ...(m.task ? [m.task] : [])];
    return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
  }

  /** The fit behind what is deployed (or the latest for the current key), with its frontier. */
  current(): CurrentFit | undefined {
    const cur = this.d.deployed();
    const row = cur?.fitId != null ? this.d.store.getFit(cur.fitId) : this.d.store.latestDoneFit(this.key());
    if (!row || row.status !== 'done') return undefined;
    const frontier = this.d.store.frontier(row.id);
    return {
      fitId: row.id,
      frontier,
      fit: { chosenId: row.chosenId ?? '', frontier, referenceLatencyP50Ms: row.referenceLatencyMs ?? 0, fitter: row.fitter },
    };
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
      });
    return true;
  }

  private async run(fitter: Fitter, txn: string | undefined, force: boolean): Promise<void> {
    const { bus, store, model } = this.d;
    const hw = this.d.hw();
    const key = this.key();
    let row = force ? undefined : store.latestDoneFit(key);
    let fitId: number;
    if (row) {
      fitId = row.id;
    } else {
      const budgets = this.d.budgets.get();
      fitId = store.beginFit(key, model.sha256, budgets, hw.hash, this.fitterName);
      bus.report(
        'fit-started',
        `fitting ${model.path} to profile '${hw.profile}' with ${this.fitterName}`,
        { fitId, budgets, fitter: this.fitterName },
        txn,
      );
      let lastReport = 0;
      try {
        const result = await fitter(
          {
            modelPath: model.path,
            shapes: model.shapes,
            budgets,
            profile: hw.profile,
            calibDataPath: model.calib,
            task: model.task,
            outputDir: this.d.fitDir(fitId),
            threads: this.d.threads ?? hw.threads ?? undefined,
          },
          (p) => {
            if (Date.now() - lastReport < 2000 && p.fraction < 1) return; // progress at most every 2 s
            lastReport = Date.now();
            bus.report('fit-progress', `${p.stage} ${Math.round(p.fraction * 100)}%`, { fitId, fraction: p.fraction, stage: p.stage }, txn);
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
          },
          txn,
        );
      } catch (e) {
        const why = configMessage(e); // fits fail on the agent's inputs: say which config key fixes it
        store.failFit(fitId, why);
        bus.report('fit-failed', `fit ${fitId} failed: ${why}`, { fitId, error: why }, txn);
        return;
      }
      row = store.getFit(fitId)!;
    }
    if (this.stopped) return;
    const chosen = store.frontier(fitId).find((e) => e.id === row.chosenId)!;
    bus.emit('fit:done', { fitId, chosen, txn });
  }
}
