// The agent's fitters. fitModel (src/fit) runs in a child process (fit-worker.ts); the fallback,
// used when src/fit is not built or config says 'reference-only', measures the original model
// only (in a probe child) and returns a one-entry frontier. That is honest: the entry is the
// uncompressed level, fidelity 1 by definition.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { latencyOfRuns, meets, type Shortfall } from '../budgets/index.js';
import { EdgefitError, ERROR_CODES, type ErrorCode } from '../errors.js';
import type { FitResult, Fitter, FrontierEntry } from '../fit/types.js';
import type { FitChildMessage } from './fit-worker.js';
import { childExecArgv, LatencyProbe } from './latency.js';
import { sha256File } from './model-store.js';
import type { HoldLink } from './train-hold.js';

export const referenceOnlyFitter: Fitter = async (req, onProgress) => {
  onProgress({ fraction: 0, stage: 'measure-reference', message: 'measuring the original model' });
  const probe = new LatencyProbe(300_000, { data: req.calibDataPath }); // timed as the agent's probes time
  try {
    await probe.load(req.modelPath, req.shapes, req.threads ?? null);
    const lat = await probe.measure(10);
    // the original is its own reference: a relative budget resolves against this very measurement
    const v = meets({ latencyMs: latencyOfRuns(lat), ramMb: probe.modelRssMb, fidelity: 1 }, req.budgets, latencyOfRuns(lat));
    const entry: FrontierEntry = {
      id: 'reference',
      config: { structured: 0, unstructured: 0, quant: 'none', threads: req.threads ?? 1 },
      modelPath: req.modelPath,
      sha256: sha256File(req.modelPath),
      sizeBytes: statSync(req.modelPath).size,
      latencyP50Ms: lat.p50,
      latencyP95Ms: lat.p95,
      modelRssMb: probe.modelRssMb,
      fidelity: 1,
      meets: { latency: v.met.latency !== false, ram: v.met.ram !== false, fidelity: v.met.fidelity !== false },
    };
    onProgress({ fraction: 1, stage: 'done' });
    const result: FitResult = { chosenId: entry.id, frontier: [entry], referenceLatencyP50Ms: lat.p50, fitter: 'reference-only' };
    // (fidelity is 1 by definition and the gzip size is not measured here: only latency and RAM can miss)
    const short: Shortfall = Object.fromEntries(Object.entries(v.shortfall).map(([k, x]) => [k, round(x)]));
    if (Object.keys(short).length) result.shortfall = short;
    return result;
  } finally {
    await probe.close();
  }
};

const round = (x: number): number => Math.round(x * 1000) / 1000;

function isFitResult(v: unknown): v is FitResult {
  const r = v as FitResult;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.chosenId === 'string' &&
    typeof r.referenceLatencyP50Ms === 'number' &&
    Array.isArray(r.frontier) &&
    r.frontier.every(
      (e) =>
        typeof e?.id === 'string' && typeof e.modelPath === 'string' && typeof e.sha256 === 'string' && typeof e.latencyP50Ms === 'number',
    )
  );
}

/**
 * fitModel in a child process, one child per fit; close() kills a running one; hold(true) holds its
 * training between steps until hold(false) (train-hold.ts). `search` bounds the search (tests keep
 * a real fit short with a few candidates).
 */
export function childFitter(
  hardwareId: string,
  search: { maxCandidates?: number } = {},
): { fitter: Fitter; close: () => void; hold: HoldLink } {
  const running = new Set<ChildProcess>();
  let held = false;
  // told once the running child's training has stopped at its gate (train-hold.ts)
  let parked: (() => void) | undefined;
  // each hold is numbered: a child's word that it parked answers the hold it names, not a later one
  let seq = 0;
  const tell = (c: ChildProcess): void => {
    if (c.connected) c.send({ t: 'hold', on: held, seq });
  };
  const fitter: Fitter = (req, onProgress) =>
    new Promise<FitResult>((resolve, reject) => {
      const child = fork(fileURLToPath(new URL('./fit-worker.js', import.meta.url)), [], {
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        serialization: 'advanced',
        execArgv: childExecArgv(),
      });
      running.add(child);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        if (stderr.length < 4000) stderr += d.toString();
      });
      let outcome: FitResult | EdgefitError | undefined;
      child.on('message', (raw: unknown) => {
        const m = raw as FitChildMessage;
        if (m?.t === 'progress' && typeof m.p?.fraction === 'number') onProgress(m.p);
        else if (m?.t === 'parked') {
          if (held && m.seq === seq) parked?.();
        } else if (m?.t === 'done' && isFitResult(m.result)) outcome ??= m.result;
        else if (m?.t === 'error')
          outcome ??= new EdgefitError(m.code in ERROR_CODES ? (m.code as ErrorCode) : 'INTERNAL', String(m.message));
        else outcome ??= new EdgefitError('INTERNAL', 'fit child sent an invalid message');
      });
      child.on('error', (e) => {
        outcome ??= new EdgefitError('INTERNAL', `fit child failed: ${e.message}`);
      });
      child.once('exit', (code, signal) => {
        running.delete(child);
        const tail = stderr.trim().split('\n').slice(-1)[0] ?? '';
        const o = outcome ?? new EdgefitError('INTERNAL', `fit child died (${signal ?? `exit ${code}`})${tail ? `: ${tail}` : ''}`);
        if (o instanceof Error) reject(o);
        else resolve(o);
      });
      child.send({ t: 'fit', req, hardwareId, ...(search.maxCandidates ? { maxCandidates: search.maxCandidates } : {}) });
      if (held) tell(child);
    });
  return {
    fitter,
    close: () => {
      for (const c of running) c.kill('SIGKILL');
    },
    hold: (on, onParked) => {
      held = on;
      seq++;
      parked = on ? onParked : undefined;
      for (const c of running) tell(c);
    },
  };
}

/** The real fitter (in a child) when src/fit is built, else the reference-only fallback. */
export function resolveFitter(
  mode: 'auto' | 'reference-only',
  hardwareId: string,
): { fitter: Fitter; name: string; close?: () => void; hold?: HoldLink } {
  if (mode === 'auto' && existsSync(fileURLToPath(new URL('../fit/index.js', import.meta.url)))) {
    return { ...childFitter(hardwareId), name: 'fitModel' };
  }
  return { fitter: referenceOnlyFitter, name: 'reference-only' };
}
