// A short micro-benchmark through onnxruntime-node: what fp32 and int8 GEMM and convolution
// reach on this box, and its memory bandwidth. The fitter uses the int8 speed-up to decide
// whether quantization is worth a candidate; numbers are medians of timed runs.
import * as ort from 'onnxruntime-node';
import { availableParallelism } from 'node:os';
import { convFp32, convInt8, gemmFp32, gemmInt8, randomFloats, randomInt8, randomUint8, type Act, type ConvShape } from './bench-models.js';
import type { BenchResult, Int8Measure, KernelBench } from './types.js';
import { openSession } from '../runtime/runner.js';

export interface BenchOptions {
  /** onnxruntime intra-op threads (default: all logical CPUs). */
  threads?: number;
  /** Time spent measuring each kernel, ms (default 1000). */
  budgetMs?: number;
}

const GEMM = { m: 128, k: 1024, n: 1024 } as const;
const CONV: ConvShape = { c: 64, h: 56, w: 56, k: 64, r: 3 };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Median seconds per call of each function, timed round-robin (one call of each per round) so
 * that load from other processes drifting over time hits every variant alike and their ratio
 * stays fair. Two warm-up calls each; at least 3 rounds, then rounds until the time budget.
 */
async function timeInterleaved(fns: Array<() => Promise<unknown>>, budgetMs: number): Promise<number[]> {
  for (const f of fns) {
    await f();
    await f();
  }
  const times: number[][] = fns.map(() => []);
  const end = performance.now() + budgetMs;
  let rounds = 0;
  while (rounds < 3 || (performance.now() < end && rounds < 200)) {
    for (let i = 0; i < fns.length; i++) {
      const t0 = performance.now();
      await fns[i]!();
      times[i]!.push((performance.now() - t0) / 1000);
    }
    rounds++;
  }
  return times.map(median);
}

async function session(bytes: Uint8Array, threads: number): Promise<ort.InferenceSession> {
  // the variants are timed round-robin: an idle session's pool must not spin on the cores
  // while another session runs, or every measurement is taxed by its neighbours
  return openSession(bytes, { threads, level: 'all', spinning: false });
}

function actTensor(act: Act, n: number, dims: number[], seed: number): ort.Tensor {
  return act === 'u8' ? new ort.Tensor('uint8', randomUint8(n, seed), dims) : new ort.Tensor('int8', randomInt8(n, seed), dims);
}

/** Copy bandwidth of a 64 MiB buffer, counting bytes read plus written (as STREAM's Copy does). */
export function memoryBandwidthGBps(bytes = 64 * 1024 * 1024, reps = 7): number {
  const src = Buffer.alloc(bytes, 1);
  const dst = Buffer.allocUnsafe(bytes);
  src.copy(dst); // fault the pages in before timing
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    src.copy(dst);
    times.push((performance.now() - t0) / 1000);
  }
  return (2 * bytes) / median(times) / 1e9;
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

type Case = [Uint8Array, Record<string, ort.Tensor>];

/** fp32 and both int8 activation types of one kernel, measured side by side. */
async function kernel(
  shape: string,
  fp32Op: string,
  int8Op: string,
  ops: number,
  fp32: () => Case,
  int8: (a: Act) => Case,
  threads: number,
  budget: number,
): Promise<KernelBench> {
  // both activation types: onnxruntime's x86 kernels favour u8, its arm64 dot-product kernels s8
  const cases = [fp32(), int8('u8'), int8('s8')];
  const sessions: ort.InferenceSession[] = [];
  try {
    for (const [bytes] of cases) sessions.push(await session(bytes, threads));
    const secs = await timeInterleaved(
      sessions.map((s, i) => () => s.run(cases[i]![1])),
      budget * cases.length,
    );
    const [f, u, q] = secs.map((sec) => ops / sec / 1e9) as [number, number, number];
    const m = (g: number): Int8Measure => ({ gops: round(g), speedup: round(g / f) });
    return { shape, fp32Op, int8Op, fp32Gops: round(f), int8: { u8: m(u), s8: m(q) } };
  } finally {
    for (const s of sessions) await s.release();
  }
}

/** Run the whole benchmark: about 6 timed kernels of `budgetMs` each plus session set-up. */
export async function runBench(opts: BenchOptions = {}): Promise<BenchResult> {
  const t0 = performance.now();
  const threads = Math.max(1, opts.threads ?? availableParallelism());
  const budget = opts.budgetMs ?? 1000;

  const { m, k, n } = GEMM;
  const gemm = await kernel(
    `${m}x${k} * ${k}x${n}`,
    'MatMul',
    'MatMulInteger (s8 weights)',
    2 * m * k * n,
    () => [gemmFp32(m, k, n), { A: new ort.Tensor('float32', randomFloats(m * k, 7), [m, k]) }],
    (a) => [gemmInt8(m, k, n, a), { A: actTensor(a, m * k, [m, k], 7) }],
    threads,
    budget,
  );
  const c = CONV;
  const xn = c.c * c.h * c.w;
  const conv = await kernel(
    `1x${c.c}x${c.h}x${c.w} * ${c.k}x${c.c}x${c.r}x${c.r}`,
    'Conv',
    'QLinearConv (per-channel s8 weights)',
    2 * c.k * c.c * c.r * c.r * c.h * c.w,
    () => [convFp32(c), { X: new ort.Tensor('float32', randomFloats(xn, 9), [1, c.c, c.h, c.w]) }],
    (a) => [convInt8(c, a), { X: actTensor(a, xn, [1, c.c, c.h, c.w], 9) }],
    threads,
    budget,
  );
  const geo = (a: Act): number => Math.sqrt(gemm.int8[a].speedup * conv.int8[a].speedup);
  const fastest: Act = geo('u8') >= geo('s8') ? 'u8' : 's8';
  return {
    threads,
    gemm,
    conv,
    fastestInt8Activation: fastest,
    int8Speedup: round(geo(fastest)),
    memoryGBps: round(memoryBandwidthGBps()),
    elapsedMs: Math.round(performance.now() - t0),
  };
}
