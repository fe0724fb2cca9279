// Deployer: the only writer of the model store. Deploys a fit's choice when the fit manager
// announces it, frontier entries and shipped bytes on request (commands, step down/up), and
// rollbacks; each as pending row, durable file, load for serving, pointer swap, active row.
// Loading comes before the swap so a deploy is all or nothing: when the model does not load (or
// anything after fails), the pointer, the active row and the served model stay the previous
// version and 'deploy-failed' says why. State changes are serialised (exclusive) so they never interleave.
// On a first run (nothing deployed) the original model is deployed at once (ensureDeployed), so a
// device works while it fits; a fit whose choice is the bytes already served is only recorded.
import { EdgefitError, oneLine } from '../errors.js';
import type { FrontierEntry } from '../fit/types.js';
import type { Store } from '../store/index.js';
import type { AgentBus, AgentBusEvents, Component } from './bus.js';
import { ModelStore, sha256File, sha256Hex, type ModelVersion } from './model-store.js';

/** Whatever serves the deployed model (the probe side): it must load a version before it counts as deployed. */
export interface ModelServer {
  /** Serve `v` from now on; when it throws, what was served before should still be (the deployer reloads it if not). */
  load(v: ModelVersion): Promise<void>;
  readonly loaded: boolean;
  readonly modelRssMb: number;
}

export interface DeployerDeps {
  bus: AgentBus;
  store: Store;
  modelsDir: string;
  server: ModelServer;
  /** Level on the frontier of what is deployed now (for the 'deployed' event). */
  level: () => number | null;
  log: (line: string) => void;
  /** Test hook: pause between writing a model and swapping the pointer (EDGEFIT_FAULT_DEPLOY_PAUSE_MS). */
  faultPauseMs?: number;
  /** The original model: deployed on a first run, and when no fit entry keeps the fidelity floor. */
  original?: { path: string; sha256: string };
}

export interface DeployMeta {
  fitId: number | null;
  candidateId: string | null;
  source: string;
  expectSha256?: string;
}

export class Deployer implements Component {
  private models: ModelStore | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly onFit = (f: AgentBusEvents['fit:done'][0]): void => {
    const cur = this.current();
    // already serving this choice of this fit
    if (this.stopped || (cur && cur.fitId === f.fitId && cur.candidateId === (f.chosen?.id ?? null) && this.d.server.loaded)) return;
    const chosen = f.chosen;
    this.exclusive(() => (chosen ? this.deployEntry(f.fitId, chosen, 'fit', f.txn) : this.deployOriginal(f.fitId, f.txn))).catch((e) =>
      this.d.log(`fit: ${oneLine(e)}`),
    );
  };

  constructor(private readonly d: DeployerDeps) {}

  /** Reconcile interrupted deployments, then serve what was deployed before the restart. */
  async start(): Promise<void> {
    const { store, bus } = this.d;
    const models = (this.models = new ModelStore(this.d.modelsDir, this.d.faultPauseMs ?? 0));
    // a kill -9 mid-deploy leaves a pending row: the pointer wins. Before the swap it still names
    // the previous model and the row was interrupted; after it (killed before the row turned
    // active) the new model is deployed and its row becomes the active one
    for (const p of store.pendingDeployments()) {
      const stays = models.current()?.version ?? 'nothing';
      if (stays === p.version) {
        store.activateDeployment(p.id);
        continue;
      }
      store.setDeploymentState(p.id, 'interrupted');
      bus.report('deploy-interrupted', `deployment of ${p.version} was interrupted; ${stays} stays deployed`, { version: p.version });
    }
    bus.on('fit:done', this.onFit);
    // current.onnx follows the pointer; a crash between the two is repaired here
    if (models.syncCurrentFile()) this.d.log(`${models.currentPath} now holds ${models.current()?.version ?? '?'}`);
    const cur = models.current();
    if (cur && models.verify(cur)) await this.d.server.load(cur).catch((e) => this.d.log(`cannot load deployed model: ${oneLine(e)}`));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.d.bus.off('fit:done', this.onFit);
    await this.lock.catch(() => undefined);
  }

  current(): ModelVersion | undefined {
    return this.models?.current();
  }

  /**
   * First run: when nothing is deployed (or what was fails its check), deploy the original now,
   * so the device serves a working model while the fit runs. Returns what it deployed, if anything.
   */
  async ensureDeployed(): Promise<ModelVersion | undefined> {
    const cur = this.current();
    if (!this.d.original || (cur && this.d.server.loaded)) return undefined;
    return this.exclusive(() => this.deployOriginal(null));
  }

  /** Deploy the original model (already served: only record the fit). Call inside exclusive(). */
  deployOriginal(fitId: number | null, txn?: string): Promise<ModelVersion> {
    const o = this.d.original;
    if (!o) return Promise.reject(new EdgefitError('INTERNAL', 'the deployer has no original model'));
    return this.deployBytes({ file: o.path }, { fitId, candidateId: null, source: 'original', expectSha256: o.sha256 }, txn);
  }

  /** Serialise state changes (deploy, rollback, step) so they never interleave. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    // stop() waits for what is queued; nothing new starts after it (a command or a probe that
    // raced the shutdown gets an error, not a deploy into a closing store)
    if (this.stopped) return Promise.reject(new EdgefitError('INTERNAL', 'the agent is stopping'));
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Deploy a frontier entry or shipped bytes: pending row, durable file, load, pointer swap, active
   * row. All or nothing: on any failure the previous version stays current and served. Call inside exclusive().
   */
  async deployBytes(src: { bytes: Uint8Array } | { file: string }, meta: DeployMeta, txn?: string): Promise<ModelVersion> {
    const { store, bus, server } = this.d;
    const models = this.modelStore();
    const sha = 'bytes' in src ? sha256Hex(src.bytes) : sha256File(src.file);
    const before = models.current();
    if (before && before.sha256 === sha && server.loaded && (meta.expectSha256 ?? sha) === sha) return this.relabel(before, meta, txn);
    const version = ModelStore.versionFor(sha);
    const depId = store.beginDeployment(version, sha, meta.source, meta.fitId, meta.candidateId);
    bus.report('deploy-started', `deploying ${version}`, { version, candidateId: meta.candidateId, source: meta.source }, txn);
    let served = false;
    try {
      // loaded before the pointer swap: a model onnxruntime refuses never becomes current
      const v = await models.deploy(src, { ...meta, version }, async (staged) => {
        await server.load(staged);
        served = true;
      });
      store.activateDeployment(depId);
      bus.emit('deployed', { version: v, source: meta.source, txn });
      this.reportDeployed(`deployed ${version}${meta.candidateId ? ` (${meta.candidateId})` : ''}`, version, sha, meta, txn);
      this.reportChanged(v, txn);
      return v;
    } catch (e) {
      await this.undo(depId, version, before, served);
      const stays = before?.version ?? 'nothing';
      bus.report(
        'deploy-failed',
        `deploying ${version} failed: ${oneLine(e)}; ${stays} stays deployed`,
        { version, error: oneLine(e), current: before?.version ?? null },
        txn,
      );
      throw e;
    }
  }

  /**
   * The bytes asked for are the ones served (a fit chose the deployed original): record the fit
   * and level, reload for the entry's thread count, write and swap nothing.
   */
  private async relabel(before: ModelVersion, meta: DeployMeta, txn?: string): Promise<ModelVersion> {
    const { store, bus, server } = this.d;
    const v = this.modelStore().relabel({ fitId: meta.fitId, candidateId: meta.candidateId, source: meta.source });
    // the fit may time this level at another thread count than the original was served at
    await server.load(v).catch((e) => this.d.log(`reloading ${v.version}: ${oneLine(e)}`));
    const depId = store.beginDeployment(v.version, v.sha256, meta.source, meta.fitId, meta.candidateId);
    store.activateDeployment(depId);
    bus.emit('deployed', { version: v, source: meta.source, txn });
    this.reportDeployed(
      `${before.version} stays deployed${meta.candidateId ? ` as ${meta.candidateId}` : ''} (fit ${meta.fitId ?? '-'}: the same bytes)`,
      v.version,
      v.sha256,
      meta,
      txn,
    );
    return v;
  }

  /** The 'deployed' event: what is served now, at which level, and what it costs in RAM. */
  private reportDeployed(message: string, version: string, sha256: string, meta: DeployMeta, txn?: string): void {
    const data = {
      version,
      sha256,
      candidateId: meta.candidateId,
      fitId: meta.fitId,
      level: this.d.level(),
      modelRssMb: this.d.server.modelRssMb,
    };
    this.d.bus.report('deployed', message, data, txn);
  }

  /**
   * 'model-changed': <models>/current.onnx now holds other bytes. Published on the events topic
   * like every event, so an application on the box that loads the model itself subscribes to it
   * (the serve process's SSE route says the same to HTTP clients). Not sent on a relabel: the
   * bytes stay.
   */
  private reportChanged(v: ModelVersion, txn?: string): void {
    const path = this.modelStore().currentPath;
    this.d.bus.report(
      'model-changed',
      `${path} is now ${v.version}${v.candidateId ? ` (${v.candidateId})` : ''}`,
      { path, version: v.version, sha256: v.sha256, candidateId: v.candidateId, level: this.d.level() },
      txn,
    );
  }

  /** The stable path applications load the deployed model from (<models>/current.onnx). */
  get currentPath(): string {
    return this.modelStore().currentPath;
  }

  /**
   * After a failed deploy: its row failed, the pointer back on `before` if it had moved (the
   * swap done, the active row not), and `before` served again if the server lost it. Each step
   * is best effort and logged, so the failure that got us here is the one reported.
   */
  private async undo(depId: number, version: string, before: ModelVersion | undefined, served: boolean): Promise<void> {
    const { store, server, log } = this.d;
    const models = this.modelStore();
    const step = async (what: string, fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        log(`after the failed deploy of ${version}, ${what} failed: ${oneLine(e)}`);
      }
    };
    await step('marking it failed', () => store.setDeploymentState(depId, 'failed'));
    if (before && models.current()?.version === version) await step('restoring the pointer', () => models.rollback());
    if (before && (served || !server.loaded)) await step(`reloading ${before.version}`, () => server.load(before));
  }

  /** Call inside exclusive(). */
  deployEntry(fitId: number, entry: FrontierEntry, source: string, txn?: string): Promise<ModelVersion> {
    return this.deployBytes({ file: entry.modelPath }, { fitId, candidateId: entry.id, source, expectSha256: entry.sha256 }, txn);
  }

  async rollback(txn?: string): Promise<ModelVersion> {
    return this.exclusive(async () => {
      const { store, bus } = this.d;
      const models = this.modelStore();
      const from = models.current();
      // loaded before the pointer moves back, as for a deploy; when it does not load, `from` stays served
      const v = await models.rollback(async (prev) => {
        try {
          await this.d.server.load(prev);
        } catch (e) {
          if (from && !this.d.server.loaded)
            await this.d.server.load(from).catch((r) => this.d.log(`reloading ${from.version}: ${oneLine(r)}`));
          throw e;
        }
      });
      const depId = store.beginDeployment(v.version, v.sha256, 'rollback', v.fitId, v.candidateId);
      store.activateDeployment(depId);
      bus.emit('deployed', { version: v, source: 'rollback', txn });
      bus.report(
        'rolled-back',
        `rolled back from ${from?.version ?? '?'} to ${v.version}`,
        { from: from?.version ?? null, to: v.version },
        txn,
      );
      this.reportChanged(v, txn);
      return v;
    });
  }

  private modelStore(): ModelStore {
    if (!this.models) throw new EdgefitError('INTERNAL', 'deployer not started');
    return this.models;
  }
}
