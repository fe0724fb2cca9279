// Versions and their workers (issue 19): one worker thread per loaded version (session-worker.ts),
// requests one at a time to the current one, hot swaps without dropping any. A load starts a new
// worker while the current keeps serving; once it is ready, requests not yet dispatched go to it,
// the one in flight on the old finishes there, and the old worker is then terminated. A load that
// fails leaves the current version serving. Requests are not batched.
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { EdgefitError } from '../errors.js';
import { rssMb } from '../util/rss.js';
import type { NdArray } from '../data/ndarray.js';
import { ProtocolError, type ModelMeta } from './protocol.js';
import type { FromWorker, MappedIO, ToWorker, WorkerInit } from './session-worker.js';
import type { ServedModel } from './types.js';

export interface RunResult {
  outputs: Record<string, NdArray>;
  /** session.run time inside the worker, ms. */
  runMs: number;
  /** The version that ran it. */
  model: ServedModel;
  /** The inputs' buffers, back from the worker once it is done with them (for reuse; the inputs' views are detached). */
  spent: ArrayBuffer[];
  /** Outputs the worker wrote into mapped shared memory: bytes written (their data in `outputs` is empty). */
  written: Record<string, number>;
}

export interface LoadResult {
  version: string;
  /** From starting the worker to its session being ready and warmed up, ms. */
  loadMs: number;
  rssMb: number;
}

interface Job {
  id: number;
  inputs: Record<string, NdArray>;
  mapped?: MappedIO;
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
}

/** A request the engine could not run: 503 when nothing is loaded, 500 when the model failed. */
export class EngineError extends Error {
  constructor(
    readonly status: 500 | 503,
    message: string,
  ) {
    super(message);
  }
}

class VersionWorker {
  busy: Job | null = null;
  retired = false;
  meta: ModelMeta | null = null;
  constructor(
    readonly worker: Worker,
    readonly model: ServedModel,
  ) {}
}

const WORKER_URL = new URL('./session-worker.js', import.meta.url);

export interface EngineEvents {
  /** A version became current (after a load). */
  swap: [model: ServedModel, meta: ModelMeta];
  /** A worker died; when it was the current one, nothing is served until the next load. */
  error: [message: string];
}

export class Engine extends EventEmitter<EngineEvents> {
  private current: VersionWorker | null = null;
  private readonly pending: Job[] = [];
  private readonly live = new Set<VersionWorker>();
  private loads: Promise<unknown> = Promise.resolve();
  private nextId = 1;
  private closed = false;

  /** @param loadTimeoutMs a version not ready after this fails to load (its worker is terminated) */
  constructor(private readonly loadTimeoutMs = 300_000) {
    super();
  }

  get ready(): boolean {
    return this.current !== null;
  }

  get model(): ServedModel | null {
    return this.current?.model ?? null;
  }

  get meta(): ModelMeta | null {
    return this.current?.meta ?? null;
  }

  /** Worker threads alive: the current one, plus retired ones finishing a request (and a load in progress is not counted). */
  get workers(): number {
    return this.live.size;
  }

  /** Requests waiting for a worker or running. */
  get inFlight(): number {
    let n = this.pending.length;
    for (const v of this.live) if (v.busy) n++;
    return n;
  }

  /** Load `model` in a worker of its own and make it current once ready; loads run one at a time. */
  load(model: ServedModel): Promise<LoadResult> {
    const p = this.loads.then(() => this.loadNow(model));
    this.loads = p.catch(() => undefined);
    return p;
  }

  private loadNow(model: ServedModel): Promise<LoadResult> {
    if (this.closed) return Promise.reject(new EdgefitError('INTERNAL', 'the serve engine is closed'));
    const t0 = performance.now();
    const init: WorkerInit = { file: model.file, threads: model.threads, shapes: model.shapes };
    const worker = new Worker(WORKER_URL, { workerData: init });
    const vw = new VersionWorker(worker, model);
    return new Promise<LoadResult>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => fail(`not ready within ${this.loadTimeoutMs} ms`), this.loadTimeoutMs);
      const fail = (msg: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        void worker.terminate();
        reject(new EdgefitError('EVAL', `version ${model.version} did not load: ${msg}`));
      };
      worker.on('message', (m: FromWorker) => {
        if (m.t === 'failed') return fail(m.message);
        if (m.t === 'ready') {
          if (settled) return;
          if (this.closed) return fail('the serve engine closed while loading');
          settled = true;
          clearTimeout(timer);
          vw.meta = m.meta;
          this.live.add(vw);
          const old = this.current;
          this.current = vw;
          if (old) this.retire(old);
          this.emit('swap', model, m.meta);
          this.pump();
          resolve({ version: model.version, loadMs: performance.now() - t0, rssMb: rssMb() });
          return;
        }
        this.settle(vw, m);
      });
      worker.on('error', (e) => {
        if (!settled) return fail(e.message.split('\n')[0] ?? 'worker error');
        this.died(vw, `version ${model.version}'s worker failed: ${e.message.split('\n')[0]}`);
      });
      worker.on('exit', (code) => {
        if (!settled) return fail(`worker exited (${code})`);
        if (!vw.retired) this.died(vw, `version ${model.version}'s worker exited (${code})`);
        this.live.delete(vw);
      });
    });
  }

  /**
   * Run one request on the current version (queued while it is busy). Takes ownership of the
   * inputs' buffers; `mapped` inputs and outputs are in shared-memory regions the worker maps
   * (the caller holds those regions until this settles).
   */
  infer(inputs: Record<string, NdArray>, mapped?: MappedIO): Promise<RunResult> {
    if (this.closed || !this.current) return Promise.reject(new EngineError(503, 'no model is loaded'));
    return new Promise((resolve, reject) => {
      this.pending.push({ id: this.nextId++, inputs, ...(mapped ? { mapped } : {}), resolve, reject });
      this.pump();
    });
  }

  /** A shared-memory region is gone: every worker unmaps it (after the requests it has been sent). */
  unmap(serial: number): void {
    for (const v of this.live) v.worker.postMessage({ t: 'unmap', serial } satisfies ToWorker);
  }

  private pump(): void {
    const vw = this.current;
    if (!vw || vw.busy) return;
    const job = this.pending.shift();
    if (!job) return;
    vw.busy = job;
    const buffers = [...new Set(Object.values(job.inputs).map((a) => a.data.buffer as ArrayBuffer))];
    const msg: ToWorker = { t: 'run', id: job.id, inputs: job.inputs, ...(job.mapped ? { mapped: job.mapped } : {}) };
    vw.worker.postMessage(msg, buffers);
  }

  private settle(vw: VersionWorker, m: FromWorker): void {
    const job = vw.busy;
    if (!job || (m.t !== 'done' && m.t !== 'run-failed') || m.id !== job.id) return;
    vw.busy = null;
    if (m.t === 'done') job.resolve({ outputs: m.outputs, runMs: m.runMs, model: vw.model, spent: m.spent, written: m.written });
    else if (m.status === 400) job.reject(new ProtocolError(400, m.message));
    else job.reject(new EngineError(500, `the model failed: ${m.message}`));
    if (vw.retired) void vw.worker.terminate();
    this.pump();
  }

  /** No new requests to `vw`; terminated when its request in flight (if any) is answered. */
  private retire(vw: VersionWorker): void {
    vw.retired = true;
    if (!vw.busy) void vw.worker.terminate();
  }

  private died(vw: VersionWorker, message: string): void {
    vw.busy?.reject(new EngineError(500, message));
    vw.busy = null;
    this.live.delete(vw);
    if (this.current === vw) {
      this.current = null;
      for (const job of this.pending.splice(0)) job.reject(new EngineError(503, message));
      this.emit('error', message);
    }
  }

  /** Answer what waits with 503, terminate every worker. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.pending.splice(0)) job.reject(new EngineError(503, 'the server is stopping'));
    const all = [...this.live];
    this.current = null;
    for (const v of all) {
      v.retired = true;
      v.busy?.reject(new EngineError(503, 'the server is stopping'));
      v.busy = null;
    }
    await Promise.all(all.map((v) => v.worker.terminate()));
    await this.loads;
  }
}
