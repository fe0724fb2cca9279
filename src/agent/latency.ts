// Live latency of a deployed model. onnxruntime never runs in the agent process: each probe is a
// short-lived child (probe-worker.ts) that loads the model, warms it up, times `runs` runs,
// replies and exits, so the agent stays a small Node process between probes (no session, no
// arena, no runtime library mapped) and a crash or runaway model takes only the child down.
// The child's RSS growth across session creation and warm-up is the model's RAM cost on this box.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EdgefitError } from '../errors.js';

export interface LatencyStats {
  p50: number;
  p95: number;
  runs: number;
  /** Where the figures come from: a probe child (the default) or the application's served
   * requests (their onnxruntime run time, the statistic a probe measures). */
  source?: 'probe' | 'served';
  /** Set when the agent's own fit was using the cores while the figure was taken ('fit 2 is
   * training on this box'): it measures the agent as much as the model, so it judges no budget. */
  busy?: string;
}

/** What one probe child cost: wall time from fork to exit, its own CPU time, its peak RSS. */
export interface ProbeCost {
  wallMs: number;
  cpuMs: number;
  peakRssMb: number;
  loadMs: number;
}

export interface ProbeRequest {
  t: 'probe';
  path: string;
  shapes: Record<string, number[]>;
  threads: number;
  runs: number;
  /** Warm-up runs before timing (evaluateModel's 3 by default); the first also sizes the arena. */
  warmup?: number;
  /** Calibration data to time on (what the fit timed on); absent: the probe photo. */
  data?: string;
}
export type ProbeReply =
  { t: 'probed'; times: number[]; loadMs: number; modelRssMb: number; hwmMb: number; cpuMs: number } | { t: 'error'; message: string };

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isNat = (v: unknown): v is number => isNum(v) && Number.isInteger(v) && v >= 0;

export function checkProbeRequest(v: unknown): ProbeRequest | string {
  if (!isObj(v) || v.t !== 'probe') return 'not a probe request';
  const shapesOk = isObj(v.shapes) && Object.values(v.shapes).every((d) => Array.isArray(d) && d.every((x) => isNat(x) && x > 0));
  if (typeof v.path !== 'string' || !shapesOk || !isNat(v.threads) || v.threads < 1 || !isNat(v.runs)) return 'bad probe request';
  if ((v.warmup !== undefined && !isNat(v.warmup)) || (v.data !== undefined && typeof v.data !== 'string')) return 'bad probe request';
  return v as unknown as ProbeRequest;
}

export function checkProbeReply(v: unknown): ProbeReply | string {
  if (!isObj(v)) return 'reply is not an object';
  if (v.t === 'error') return typeof v.message === 'string' ? (v as ProbeReply) : 'bad error reply';
  if (v.t !== 'probed') return `unknown reply ${String(v.t)}`;
  const ok = Array.isArray(v.times) && v.times.every(isNum) && isNum(v.loadMs) && isNum(v.modelRssMb) && isNum(v.hwmMb) && isNum(v.cpuMs);
  return ok ? (v as ProbeReply) : 'bad probe reply';
}

export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

function workerPath(): string {
  return fileURLToPath(new URL('./probe-worker.js', import.meta.url));
}

/** The agent's node flags minus its small-heap tuning, which would only slow a child's work. */
export function childExecArgv(): string[] {
  return process.execArgv.filter((a) => !a.startsWith('--max-semi-space-size'));
}

export class LatencyProbe {
  private model: { path: string; shapes: Record<string, number[]>; threads: number } | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private child: ChildProcess | undefined;
  private generation = 0;
  /** RAM the deployed model costs (RSS growth across session creation and warm-up), MiB. */
  modelRssMb = 0;
  /** Cost of the most recent probe child. */
  lastCost: ProbeCost | undefined;

  /**
   * @param timeoutMs a probe child still running after this is killed and the probe fails
   * @param protocol how probes time: warm-up runs (default 3, as evaluateModel) and the
   *   calibration data the fit timed on (default: the probe photo)
   */
  constructor(
    private readonly timeoutMs = 300_000,
    private readonly protocol: { warmup?: number; data?: string | undefined } = {},
  ) {}

  /**
   * Check that the model loads and runs (in a child) and record its RAM cost; later probes use it.
   * When it does not load, the model loaded before stays loaded (a failed deploy keeps serving it).
   */
  async load(path: string, shapes: Record<string, number[]>, threads: number | null): Promise<void> {
    const previous = this.model;
    await this.close();
    const model = { path, shapes, threads: threads ?? 1 };
    const gen = this.generation;
    let r: Extract<ProbeReply, { t: 'probed' }>;
    try {
      r = await this.run({ t: 'probe', ...model, runs: 0 });
    } catch (e) {
      if (gen === this.generation) this.model = previous;
      throw e;
    }
    if (gen !== this.generation) throw new EdgefitError('INTERNAL', 'probe closed while loading');
    this.model = model;
    this.modelRssMb = Math.max(0, Math.round(r.modelRssMb * 10) / 10);
  }

  get loaded(): boolean {
    return this.model !== undefined;
  }

  async measure(runs: number): Promise<LatencyStats> {
    const m = this.model;
    if (!m) throw new EdgefitError('INTERNAL', 'no model loaded');
    const { warmup = 3, data } = this.protocol;
    const r = await this.run({ t: 'probe', ...m, runs: Math.max(1, runs), warmup, ...(data ? { data } : {}) });
    const times = [...r.times].sort((a, b) => a - b);
    return { p50: round(percentile(times, 0.5)), p95: round(percentile(times, 0.95)), runs: times.length };
  }

  /** Forget the model and kill a running probe child. */
  async close(): Promise<void> {
    this.generation++;
    this.model = undefined;
    this.child?.kill('SIGKILL');
    await this.queue.catch(() => undefined);
  }

  /** One child at a time: two probes never share the box (nor double the peak memory). */
  private run(req: ProbeRequest): Promise<Extract<ProbeReply, { t: 'probed' }>> {
    const gen = this.generation;
    const p = this.queue.then(() => {
      if (gen !== this.generation) throw new EdgefitError('INTERNAL', 'probe closed');
      return this.runNow(req);
    });
    this.queue = p.catch(() => undefined);
    return p;
  }

  private runNow(req: ProbeRequest): Promise<Extract<ProbeReply, { t: 'probed' }>> {
    const t0 = performance.now();
    const child = fork(workerPath(), [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json', execArgv: childExecArgv() });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 4000) stderr += d.toString();
    });
    return new Promise((resolve, reject) => {
      let reply: ProbeReply | string | undefined;
      const timer = setTimeout(() => {
        reply ??= `probe did not finish within ${this.timeoutMs} ms; killed`;
        child.kill('SIGKILL');
      }, this.timeoutMs);
      child.on('message', (m: unknown) => {
        reply ??= checkProbeReply(m);
        if (child.connected) child.disconnect();
      });
      child.on('error', (e) => {
        reply ??= `probe child failed: ${e.message}`;
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.child === child) this.child = undefined;
        const tail = stderr.trim().split('\n').slice(-1)[0] ?? '';
        if (reply === undefined) reply = `probe child died (${signal ?? `exit ${code}`})${tail ? `: ${tail}` : ''}`;
        if (typeof reply === 'string') return reject(new EdgefitError('EVAL', reply));
        if (reply.t === 'error') return reject(new EdgefitError('EVAL', `onnxruntime: ${reply.message.split('\n')[0]}`));
        this.lastCost = {
          wallMs: Math.round(performance.now() - t0),
          cpuMs: Math.round(reply.cpuMs),
          peakRssMb: Math.round(reply.hwmMb * 10) / 10,
          loadMs: Math.round(reply.loadMs),
        };
        resolve(reply);
      });
      child.send(req);
    });
  }
}

const round = (x: number): number => Math.round(x * 1000) / 1000;
