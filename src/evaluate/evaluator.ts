// The parent side of child-process isolation. One child at a time, and a fresh one per job: a
// new process is the only way to get a clean VmHWM per model, and a job that crashes, hangs or
// blows its RSS cap takes nothing else down. Jobs queue; the Evaluator survives every failure.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EdgefitError } from '../errors.js';
import type { Sample } from '../data/inputs.js';
import type { NdArray } from '../data/ndarray.js';
import { procMemMb, procRssMb, validateFromChild, type FromChild, type ToChild } from './protocol.js';
import type { EvalLimits, SessionOptions } from './types.js';

export const ABORT_KINDS = ['rss-cap', 'timeout', 'crash'] as const;
export type AbortKind = (typeof ABORT_KINDS)[number];

/**
 * The child was killed or died. code OVER_BUDGET for an RSS cap hit (the model needs more RAM
 * than allowed), EVAL for a timeout or crash. `observedMb` is the last RSS seen.
 */
export class EvalAbort extends EdgefitError {
  readonly kind: AbortKind;
  readonly observedMb: number | undefined;
  constructor(kind: AbortKind, message: string, observedMb?: number) {
    super(kind === 'rss-cap' ? 'OVER_BUDGET' : 'EVAL', message);
    this.name = 'EvalAbort';
    this.kind = kind;
    this.observedMb = observedMb;
  }
}

/** What one child does: load a model, optionally time it, optionally return outputs for samples. */
export interface Job {
  model: { path: string } | { bytes: Uint8Array };
  session: SessionOptions;
  limits: EvalLimits;
  /** Timing phase (skipped when absent). */
  time?: { samples: Sample[]; warmup: number; runs: number; maxMs: number };
  /** Samples whose outputs to collect, after timing (so they do not inflate the peak). */
  infer?: Sample[];
}

export interface JobResult {
  loadMs: number;
  inputNames: string[];
  outputNames: string[];
  latencies?: number[];
  /** VmHWM right after timing (or after load when not timed). */
  hwmMb: number;
  outputs?: Record<string, NdArray>[];
  /** Highest VmRSS the parent saw while polling. */
  maxPolledRssMb: number;
}

// RSS is polled fast while memory can grow (load, warm-up, inference) so that a runaway
// allocation is caught early, and slowly during timed runs: after warm-up a session's memory is
// steady (same shapes, arena and memory pattern reused), and 50 wake-ups a second of the parent
// steal a core from the runtime's threads on a 2-core box, which measurably slowed timed runs.
const POLL_MS = 20;
const TIMED_POLL_MS = 500;
/** IPC chunks of inputs/outputs: big enough to amortise, small enough not to double peak RAM. */
const CHUNK_BYTES = 16 << 20;

export function workerPath(): string {
  return fileURLToPath(new URL('./worker.js', import.meta.url));
}

function sampleBytes(s: Sample): number {
  let n = 0;
  for (const a of Object.values(s)) n += a.data.byteLength;
  return n;
}

export class Evaluator {
  private queue: Promise<unknown> = Promise.resolve();
  private current: ChildProcess | undefined;
  private closed = false;

  /** Run one job in a fresh child; jobs run one after another. */
  run(job: Job): Promise<JobResult> {
    if (this.closed) return Promise.reject(new EdgefitError('INTERNAL', 'evaluator is closed'));
    const p = this.queue.then(() => this.runNow(job));
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Pid of the running child (for tests and diagnostics). */
  get childPid(): number | undefined {
    return this.current?.pid;
  }

  /** Kill any running child; later run() calls fail. */
  close(): void {
    this.closed = true;
    this.current?.kill('SIGKILL');
  }

  private async runNow(job: Job): Promise<JobResult> {
    const child = fork(workerPath(), [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.current = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 4000) stderr += d.toString();
    });
    let maxRss = 0;
    let abort: EvalAbort | undefined;
    let onAbort: ((e: EvalAbort) => void) | undefined;
    const kill = (e: EvalAbort) => {
      if (abort) return;
      abort = e;
      child.kill('SIGKILL');
      onAbort?.(e);
    };
    const check = () => {
      if (child.pid === undefined) return;
      const rss = procRssMb(child.pid);
      if (rss === undefined || !Number.isFinite(rss)) return;
      maxRss = Math.max(maxRss, rss);
      const cap = job.limits.rssCapMb;
      if (cap !== undefined && rss > cap) {
        kill(new EvalAbort('rss-cap', `model evaluation used ${rss.toFixed(0)} MiB RSS, over the ${cap} MiB cap; killed`, rss));
      }
    };
    let poll = setInterval(check, POLL_MS);
    const pollEvery = (ms: number) => {
      clearInterval(poll);
      check();
      poll = setInterval(check, ms);
    };
    const timer = setTimeout(
      () => kill(new EvalAbort('timeout', `model evaluation did not finish within ${job.limits.timeoutMs} ms; killed`, maxRss)),
      job.limits.timeoutMs,
    );
    const exited = new Promise<never>((_, reject) => {
      onAbort = reject;
      child.on('exit', (code, signal) => {
        if (abort) reject(abort);
        const tail = stderr.trim().split('\n').slice(-1)[0] ?? '';
        reject(new EvalAbort('crash', `evaluation child died (${signal ?? `exit ${code}`})${tail ? `: ${tail}` : ''}`, maxRss));
      });
      child.on('error', (e) => reject(new EvalAbort('crash', `evaluation child failed: ${e.message}`, maxRss)));
    });
    exited.catch(() => undefined);
    const replies: FromChild[] = [];
    let wake: (() => void) | undefined;
    child.on('message', (raw: unknown) => {
      const m = validateFromChild(raw);
      if (typeof m === 'string') {
        kill(new EvalAbort('crash', `evaluation child sent a ${m}`));
        return;
      }
      if (m.t === 'warm') {
        pollEvery(TIMED_POLL_MS);
        return;
      }
      replies.push(m);
      wake?.();
    });
    const ask = async (msg: ToChild): Promise<FromChild> => {
      child.send(msg);
      const next = new Promise<void>((r) => (wake = r));
      if (!replies.length) await Promise.race([next, exited]);
      const r = replies.shift()!;
      if (r.t === 'error') {
        const code = r.code in { SHAPE: 1, UNSUPPORTED: 1, INTERNAL: 1, DATA: 1 } ? (r.code as 'SHAPE') : 'EVAL';
        throw new EdgefitError(code, `onnxruntime: ${r.message.split('\n')[0]}`);
      }
      return r;
    };
    try {
      const loaded = await ask({ t: 'load', model: job.model, session: job.session });
      if (loaded.t !== 'loaded') throw new EdgefitError('INTERNAL', `expected loaded, got ${loaded.t}`);
      const res: JobResult = {
        loadMs: loaded.loadMs,
        inputNames: loaded.inputNames,
        outputNames: loaded.outputNames,
        hwmMb: NaN,
        maxPolledRssMb: 0,
      };
      if (job.time) {
        const timed = await ask({ t: 'time', ...job.time });
        pollEvery(POLL_MS);
        if (timed.t !== 'timed') throw new EdgefitError('INTERNAL', `expected timed, got ${timed.t}`);
        res.latencies = timed.latencies;
        res.hwmMb = timed.hwmMb;
      } else {
        res.hwmMb = procMemMb(child.pid!)?.hwmMb ?? NaN;
      }
      if (job.infer) {
        res.outputs = [];
        let i = 0;
        while (i < job.infer.length) {
          const per = Math.max(1, sampleBytes(job.infer[i]!));
          const n = Math.max(1, Math.floor(CHUNK_BYTES / per));
          const out = await ask({ t: 'infer', samples: job.infer.slice(i, i + n) });
          if (out.t !== 'outputs') throw new EdgefitError('INTERNAL', `expected outputs, got ${out.t}`);
          res.outputs.push(...out.outputs);
          i += n;
        }
      }
      res.maxPolledRssMb = maxRss;
      if (abort) throw abort;
      return res;
    } catch (e) {
      throw abort ?? e;
    } finally {
      clearInterval(poll);
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) {
        // wait for the exit so that two children never overlap (the next one's memory and
        // timing must not share the box with a dying one); one that ignores disconnect is killed
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        if (child.connected) child.disconnect();
        const t = setTimeout(() => child.kill('SIGKILL'), 2000);
        await gone;
        clearTimeout(t);
      }
      this.current = undefined;
    }
  }
}
