// Serving (issue 19), the agent's side: the serve process (src/serve/, forked) answers the box's
// applications; this component starts it, loads each version into it before the deployer swaps
// the pointer (ServingModelServer: the probe check and the serve load both, so a version that
// does not load for serving is never current), relays its stats onto the bus ('serve:stats',
// which the prober judges and telemetry reports), and restarts it with the current model when
// it dies (a bounded number of times, each an event). When serving cannot start (port taken,
// serve.enabled false) the agent keeps working without it: fitting, deploying and current.onnx
// do not depend on it, and the reason goes out as a 'serve-failed' event.
import { oneLine } from '../errors.js';
import { configLabel } from '../fit/label.js';
import type { ServeOptions, ServeStats, ServedModel } from '../serve/types.js';
import type { AgentBus, Component } from './bus.js';
import type { ModelServer } from './deployer.js';
import type { FitView } from './fit-manager.js';
import type { ModelVersion } from './model-store.js';

/** The parent-side handle of a serve process (ServeProcess in src/serve/process.ts; a fake in tests). */
export interface ServeBackend {
  /** Resolves once listening; `statsEveryS` is the stats window (sent only when it saw requests). */
  start(opts: ServeOptions & { statsEveryS?: number }): Promise<{ url: string | null; socket: string | null }>;
  /** Resolves once the version serves requests; rejects (the previous one still serving) when it does not load. */
  load(model: ServedModel): Promise<unknown>;
  stop(): Promise<void>;
  on(event: 'stats', f: (s: ServeStats) => void): unknown;
  /** Something failed in the serve process after start (a version's worker died, ...). */
  on(event: 'error', f: (message: string) => void): unknown;
  /** The process ended (after stop() too: ignored then). */
  on(event: 'exit', f: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
}

export interface ServerDeps {
  bus: AgentBus;
  /** A fresh backend (one per start: a crashed one is replaced). */
  backend: () => ServeBackend;
  options: ServeOptions & { statsEveryS?: number };
  /** How a deployed version is described to the serve process (level, label, threads, shapes). */
  describe: (v: ModelVersion) => ServedModel;
  /** What the deployer has deployed now (a restarted process loads it). */
  current: () => ModelVersion | undefined;
  log: (line: string) => void;
  /** Restarts allowed within restartWindowMs before serving is given up (default 3 in 10 min). */
  maxRestarts?: number;
  restartWindowMs?: number;
}

/** Level, label and thread count of a version, looked up by its own fit as Prober.load does. */
export function servedModel(v: ModelVersion, fits: FitView, shapes: Record<string, number[]>, threads: () => number | null): ServedModel {
  const frontier = v.fitId !== null && v.candidateId !== null ? fits.frontier(v.fitId) : [];
  const level = frontier.findIndex((e) => e.id === v.candidateId);
  const entry = level >= 0 ? frontier[level] : undefined;
  return {
    file: v.file,
    version: v.version,
    sha256: v.sha256,
    level: entry ? level : null,
    label: entry ? configLabel(entry.config) : v.source === 'original' ? 'original' : v.source,
    threads: entry?.config.threads ?? threads() ?? 1,
    shapes,
  };
}

export class ServeComponent implements Component {
  private backend: ServeBackend | undefined;
  /** Pending (re)start: loads wait for it. */
  private ready: Promise<void> = Promise.resolve();
  private stopped = false;
  private restarts: number[] = [];
  /** The version the serve process serves now (null: none). */
  private servedVersion: ModelVersion | undefined;
  url: string | null = null;
  socket: string | null = null;
  /** The last stats window, with when it arrived. */
  lastStats: { stats: ServeStats; at: number } | undefined;

  constructor(private readonly d: ServerDeps) {}

  /** Serving is up (started and not given up). */
  get up(): boolean {
    return this.backend !== undefined;
  }

  get served(): ModelVersion | undefined {
    return this.servedVersion;
  }

  /**
   * Forks the serve process in the background: the components after this one start meanwhile (a
   * command may come in as soon as telemetry is up, and the deployer must be there for it); loads
   * wait for the start.
   */
  start(): void {
    this.ready = this.launch(false);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.ready.catch(() => undefined);
    const b = this.backend;
    this.backend = undefined;
    await b?.stop().catch((e: unknown) => this.d.log(`serve stop: ${oneLine(e)}`));
  }

  /** Serve `v` from now on; a no-op while serving is off (the deploy goes on without it). */
  async load(v: ModelVersion): Promise<void> {
    await this.ready;
    const b = this.backend;
    if (!b || this.stopped) return;
    await b.load(this.d.describe(v));
    this.servedVersion = v;
  }

  private async launch(restart: boolean): Promise<void> {
    const b = this.d.backend();
    b.on('stats', (stats) => {
      if (this.backend !== b) return;
      this.lastStats = { stats, at: Date.now() };
      this.d.bus.emit('serve:stats', stats);
    });
    b.on('error', (message) => this.d.log(`serve process: ${message}`));
    b.on('exit', (code, signal) => {
      if (this.backend !== b || this.stopped) return;
      const why = signal ?? `exit ${code}`;
      this.backend = undefined;
      this.servedVersion = undefined;
      this.lastStats = undefined;
      this.d.log(`serve process exited: ${why}`);
      this.ready = this.ready.then(() => this.restart(why));
    });
    try {
      const at = await b.start(this.d.options);
      if (this.stopped) return void (await b.stop().catch(() => undefined));
      this.backend = b;
      this.url = at.url;
      this.socket = at.socket;
      // at start the deployer loads what is deployed (through ServingModelServer); after a crash
      // nothing else would
      const cur = this.d.current();
      if (restart && cur) await b.load(this.d.describe(cur)).then(() => (this.servedVersion = cur));
      const where = [at.url, at.socket].filter(Boolean).join(' and ');
      this.d.bus.report(
        restart ? 'serve-restarted' : 'serve-started',
        restart ? `serving ${cur?.version ?? 'nothing'} again on ${where}` : `serving on ${where}`,
        { url: at.url, socket: at.socket, version: restart ? (cur?.version ?? null) : null },
      );
    } catch (e) {
      // the serve process is of no use without its listeners or the current model: give it up
      // (a restart may still bring it back), the agent goes on without serving
      this.backend = undefined;
      await b.stop().catch(() => undefined);
      this.d.bus.report('serve-failed', `serving is off: ${oneLine(e)}`, { error: oneLine(e), restart });
    }
  }

  private async restart(why: string): Promise<void> {
    if (this.stopped) return;
    const windowMs = this.d.restartWindowMs ?? 600_000;
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < windowMs);
    if (this.restarts.length >= (this.d.maxRestarts ?? 3)) {
      this.d.bus.report(
        'serve-failed',
        `the serve process died ${this.restarts.length + 1} times within ${Math.round(windowMs / 60000)} min (last: ${why}); serving is off until the agent restarts`,
        { error: why, restart: true },
      );
      return;
    }
    this.restarts.push(now);
    await this.launch(true);
  }
}

/**
 * The deployer's ModelServer when serving is on: a version counts as loaded once the probe side
 * checked it and the serve process serves it. Serve first: when the probe check then fails, the
 * serve process goes back to what it served before, so neither side is left on a version the
 * deployer abandons.
 */
export class ServingModelServer implements ModelServer {
  constructor(
    private readonly probe: ModelServer,
    private readonly serve: ServeComponent,
    private readonly log: (line: string) => void,
  ) {}

  get loaded(): boolean {
    return this.probe.loaded;
  }

  get modelRssMb(): number {
    return this.probe.modelRssMb;
  }

  async load(v: ModelVersion): Promise<void> {
    const before = this.serve.served;
    await this.serve.load(v);
    try {
      await this.probe.load(v);
    } catch (e) {
      if (before && before.version !== v.version)
        await this.serve.load(before).catch((r) => this.log(`serving ${before.version} again: ${oneLine(r)}`));
      throw e;
    }
  }
}
