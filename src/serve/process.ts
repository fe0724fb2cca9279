// The serve process (issue 19): the agent forks this module; it owns the listeners and the
// version workers and speaks ServeCommand / ServeEvent (types.ts) over the IPC channel. The
// parent-side handle is `ServeProcess`: start(opts) resolves once listening, load(model) once the
// version serves (rejected on load-failed, matched by txn), 'stats' every few seconds when there
// were requests, stop(). Options travel in the environment, not argv (a token must not show in ps).
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EdgefitError } from '../errors.js';
import { Engine } from './engine.js';
import { ServeServer } from './http.js';
import type { ServeCommand, ServedModel, ServeEvent, ServeOptions, ServeStats } from './types.js';

const OPTIONS_ENV = 'EDGEFIT_SERVE_OPTIONS';

export interface ServeProcessOptions extends ServeOptions {
  /** Seconds between stats events (sent only when the window saw requests); default 5. */
  statsEveryS?: number;
}

export interface Loaded {
  version: string;
  loadMs: number;
  rssMb: number;
}

export interface ServeProcessEvents {
  stats: [stats: ServeStats];
  /** Something went wrong in the serve process after start (a version's worker died, …). */
  error: [message: string];
  /** The serve process ended (by stop() or otherwise). */
  exit: [code: number | null, signal: NodeJS.Signals | null];
}

/** The agent's handle on a forked serve process. */
export class ServeProcess extends EventEmitter<ServeProcessEvents> {
  private child: ChildProcess | null = null;
  private txn = 0;
  private readonly loads = new Map<number, { resolve: (l: Loaded) => void; reject: (e: Error) => void }>();
  private where: { url: string | null; socket: string | null } | null = null;
  private serving: ServedModel | null = null;

  /** The version last loaded (what new requests run on), or null before the first load. */
  get current(): ServedModel | null {
    return this.serving;
  }

  /** The TCP URL and socket path, once listening. */
  get listening(): { url: string | null; socket: string | null } | null {
    return this.where;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Fork the serve process; resolves when it listens, rejects when it cannot. */
  start(opts: ServeProcessOptions): Promise<{ url: string | null; socket: string | null }> {
    if (this.child) return Promise.reject(new EdgefitError('INTERNAL', 'the serve process is already started'));
    const child = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, [OPTIONS_ENV]: JSON.stringify(opts) },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
      // the agent's small-heap tuning would only slow request parsing here
      execArgv: process.execArgv.filter((a) => !a.startsWith('--max-semi-space-size')),
    });
    this.child = child;
    // a send to a child that is exiting fails with EPIPE as an 'error' event on the ChildProcess:
    // unhandled, it took the agent down (seen on the start after a kill -9, whose first serve
    // process failed and was stopped while it exited). The exit handler below reports the end.
    child.on('error', (e) => {
      if (this.listenerCount('error')) this.emit('error', `serve process: ${e.message}`);
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    return new Promise((resolve, reject) => {
      let started = false;
      child.on('message', (m: ServeEvent) => {
        switch (m.t) {
          case 'listening':
            started = true;
            this.where = { url: m.url, socket: m.socket };
            return resolve(this.where);
          case 'loaded': {
            const p = this.loads.get(m.txn);
            this.loads.delete(m.txn);
            return p?.resolve({ version: m.version, loadMs: m.loadMs, rssMb: m.rssMb });
          }
          case 'load-failed': {
            const p = this.loads.get(m.txn);
            this.loads.delete(m.txn);
            return p?.reject(new EdgefitError('EVAL', m.message));
          }
          case 'stats':
            this.emit('stats', m.stats);
            return;
          case 'error':
            if (!started) return reject(new EdgefitError('USAGE', m.message));
            this.emit('error', m.message);
            return;
        }
      });
      child.once('exit', (code, signal) => {
        this.child = null;
        this.where = null;
        this.serving = null;
        const tail = stderr.trim().split('\n').slice(-1)[0] ?? '';
        const why = `the serve process ended (${signal ?? `exit ${code}`})${tail ? `: ${tail}` : ''}`;
        if (!started) reject(new EdgefitError('INTERNAL', why));
        for (const p of this.loads.values()) p.reject(new EdgefitError('EVAL', why));
        this.loads.clear();
        this.emit('exit', code, signal);
      });
    });
  }

  /** Load a version and make it current; resolves when it serves, rejects when it did not load (the old one keeps serving). */
  load(model: ServedModel): Promise<Loaded> {
    const child = this.child;
    if (!child || !this.where) return Promise.reject(new EdgefitError('INTERNAL', 'the serve process is not running'));
    const txn = ++this.txn;
    return new Promise((resolve, reject) => {
      this.loads.set(txn, {
        resolve: (l) => {
          this.serving = model;
          resolve(l);
        },
        reject,
      });
      child.send({ t: 'load', txn, model } satisfies ServeCommand);
    });
  }

  /** Ask the serve process to close its listeners and exit; killed after `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // a child that is going away answers EPIPE: then it only needs the signal
    if (child.connected) child.send({ t: 'stop' } satisfies ServeCommand, (e) => e && child.kill('SIGTERM'));
    else child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }
}

/** The forked side: listen, then follow the parent's commands until stop or the parent goes away. */
async function serveChild(): Promise<void> {
  const send = (e: ServeEvent): void => {
    if (process.connected) process.send!(e);
  };
  const opts = JSON.parse(process.env[OPTIONS_ENV]!) as ServeProcessOptions;
  delete process.env[OPTIONS_ENV];
  const engine = new Engine();
  let server: ServeServer;
  try {
    server = new ServeServer(engine, opts);
    send({ t: 'listening', ...(await server.listen()) });
  } catch (e) {
    send({ t: 'error', message: (e instanceof Error ? e.message : String(e)).split('\n')[0]! });
    process.disconnect();
    process.exitCode = 1;
    await engine.close();
    return;
  }
  engine.on('error', (message) => send({ t: 'error', message }));
  const timer = setInterval(
    () => {
      if (!server.stats.empty) send({ t: 'stats', stats: server.stats.take(server.requestsInFlight) });
    },
    (opts.statsEveryS ?? 5) * 1000,
  );
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    await server.close();
    await engine.close();
    if (process.connected) process.disconnect();
  };
  process.on('message', (c: ServeCommand) => {
    if (c?.t === 'load') {
      engine.load(c.model).then(
        (r) => send({ t: 'loaded', txn: c.txn, version: r.version, loadMs: Math.round(r.loadMs), rssMb: Math.round(r.rssMb * 10) / 10 }),
        (e: unknown) => send({ t: 'load-failed', txn: c.txn, message: (e instanceof Error ? e.message : String(e)).split('\n')[0]! }),
      );
    } else if (c?.t === 'stop') void stop();
  });
  // the agent went away without a stop: do not serve on as an orphan
  process.on('disconnect', () => void stop());
  // Ctrl-C in the agent's terminal reaches this process too: close cleanly rather than die mid-write
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

const isEntry = (): boolean => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
};

if (process.send && process.env[OPTIONS_ENV] && isEntry()) await serveChild();
