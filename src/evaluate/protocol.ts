// Messages between the evaluator (parent) and its worker child, sent over fork's IPC channel
// with 'advanced' serialization (typed arrays travel as such). Each side validates what it
// receives: a confused or crashing peer must produce a clear error, not undefined behaviour.
import { readFileSync } from 'node:fs';
import type { NdArray } from '../data/ndarray.js';
import { isNdDType } from '../data/ndarray.js';
import type { Sample } from '../data/inputs.js';
import type { SessionOptions } from './types.js';

export type ToChild =
  | { t: 'load'; model: { path: string } | { bytes: Uint8Array }; session: SessionOptions }
  | { t: 'time'; samples: Sample[]; warmup: number; runs: number; maxMs: number }
  | { t: 'infer'; samples: Sample[] };

export type FromChild =
  | { t: 'loaded'; loadMs: number; inputNames: string[]; outputNames: string[] }
  | { t: 'timed'; latencies: number[]; hwmMb: number; rssMb: number }
  /** Warm-up done, timed runs start: the parent polls memory less often from here (see evaluator). */
  | { t: 'warm' }
  | { t: 'outputs'; outputs: Record<string, NdArray>[] }
  | { t: 'error'; code: string; message: string };

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isNum = (v: unknown): v is number => typeof v === 'number' && !Number.isNaN(v);
const isStrs = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

export function isNdArray(v: unknown): v is NdArray {
  return (
    isObj(v) &&
    typeof v.dtype === 'string' &&
    isNdDType(v.dtype) &&
    Array.isArray(v.shape) &&
    v.shape.every(isNat) &&
    ArrayBuffer.isView(v.data) &&
    (v.data as unknown as { length: number }).length === v.shape.reduce((a: number, b: number) => a * b, 1)
  );
}

const isSamples = (v: unknown): v is Sample[] => Array.isArray(v) && v.every((s) => isObj(s) && Object.values(s).every(isNdArray));

function isSession(v: unknown): v is SessionOptions {
  return (
    isObj(v) &&
    isNat(v.intraOpThreads) &&
    ['disabled', 'basic', 'extended', 'all'].includes(v.graphOptimizationLevel as string) &&
    typeof v.enableCpuMemArena === 'boolean' &&
    typeof v.enableMemPattern === 'boolean'
  );
}

export function validateToChild(v: unknown): ToChild | string {
  if (!isObj(v)) return 'message is not an object';
  switch (v.t) {
    case 'load': {
      const m = v.model;
      const okModel = isObj(m) && (typeof m.path === 'string' || m.bytes instanceof Uint8Array);
      return okModel && isSession(v.session) ? (v as ToChild) : 'bad load message';
    }
    case 'time':
      return isSamples(v.samples) && v.samples.length > 0 && isNat(v.warmup) && isNat(v.runs) && isNum(v.maxMs)
        ? (v as ToChild)
        : 'bad time message';
    case 'infer':
      return isSamples(v.samples) ? (v as ToChild) : 'bad infer message';
    default:
      return `unknown message type ${String(v.t)}`;
  }
}

export function validateFromChild(v: unknown): FromChild | string {
  if (!isObj(v)) return 'message is not an object';
  switch (v.t) {
    case 'loaded':
      return isNum(v.loadMs) && isStrs(v.inputNames) && isStrs(v.outputNames) ? (v as FromChild) : 'bad loaded message';
    case 'timed':
      return Array.isArray(v.latencies) && v.latencies.every(isNum) && isNum(v.hwmMb) && isNum(v.rssMb)
        ? (v as FromChild)
        : 'bad timed message';
    case 'warm':
      return v as FromChild;
    case 'outputs':
      return Array.isArray(v.outputs) && v.outputs.every((o) => isObj(o) && Object.values(o).every(isNdArray))
        ? (v as FromChild)
        : 'bad outputs message';
    case 'error':
      return typeof v.code === 'string' && typeof v.message === 'string' ? (v as FromChild) : 'bad error message';
    default:
      return `unknown message type ${String(v.t)}`;
  }
}

/** VmRSS and VmHWM of a process in MiB, from /proc/<pid>/status (undefined if it is gone). */
export function procMemMb(pid: number | 'self'): { rssMb: number; hwmMb: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

/** Resident set in MiB from /proc/<pid>/statm: much cheaper to read than status, for polling. */
export function procRssMb(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/statm`, 'utf8');
  } catch {
    return undefined;
  }
  const pages = Number(text.split(' ')[1]);
  return Number.isFinite(pages) ? (pages * PAGE_BYTES) / (1 << 20) : undefined;
}
// Linux page size on the boards edgefit targets (arm64 Pi OS, JetPack, x86_64) is 4 KiB; a 16 or
// 64 KiB kernel would make the cap stricter (over-counts), never looser.
const PAGE_BYTES = 4096;
