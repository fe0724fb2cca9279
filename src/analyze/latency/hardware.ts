// This box's identity for the latency tables' cache key, and the channel block its CPU's kernels
// use (onnxruntime's NCHWc convolutions: 16 channels with AVX-512, 8 with AVX2). It reads
// /proc/cpuinfo itself: src/profile/ (the full parser) sits above analyze/ in the layering, and
// the tables need only the model name and a few flag words.
import { readFileSync } from 'node:fs';
import { arch, cpus } from 'node:os';
import * as ort from 'onnxruntime-node';

/** Flag words that change which kernels onnxruntime picks (others do not change a timing). */
const KERNEL_FLAGS = [
  'avx',
  'avx2',
  'fma',
  'avx512f',
  'avx512bw',
  'avx512_vnni',
  'avx_vnni',
  'amx_int8',
  'asimd',
  'asimddp',
  'i8mm',
  'sve',
  'asimdhp',
] as const;

export interface CpuFacts {
  model: string;
  arch: string;
  /** The kernel-relevant flag words this CPU has (first processor block). */
  flags: string[];
}

export function cpuFacts(cpuinfo?: string): CpuFacts {
  let text = cpuinfo ?? '';
  if (cpuinfo === undefined) {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      text = ''; // not Linux: the model name from os.cpus() is all there is
    }
  }
  const line = (key: RegExp): string =>
    text
      .split('\n')
      .find((l) => key.test(l))
      ?.replace(/^[^:]*:\s*/, '') ?? '';
  const words = new Set(line(/^(flags|features)\s*:/i).split(/\s+/));
  return {
    model: line(/^model name\s*:/i) || cpus()[0]?.model || 'unknown',
    arch: arch(),
    flags: KERNEL_FLAGS.filter((f) => words.has(f)),
  };
}

/** The tables' hardware id: CPU model, kernel-relevant flags, onnxruntime version. */
export function hardwareId(c: CpuFacts = cpuFacts()): string {
  return `${c.model} ${c.arch} [${c.flags.join(' ')}] onnxruntime-node ${ort.env.versions.node ?? ort.env.versions.common}`;
}

/** The block the CPU features imply, when the staircase probe is inconclusive. */
export function blockFromCpu(c: CpuFacts): number {
  if (c.flags.includes('avx512f')) return 16;
  if (c.flags.includes('avx2')) return 8;
  // NEON kernels work on 4 float lanes; older x86 has no NCHWc path, where 4 is a harmless alignment
  return 4;
}
