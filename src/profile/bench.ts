// A short micro-benchmark through onnxruntime-node: what fp32 and int8 GEMM and convolution
// reach on this box, and its memory bandwidth. The fitter uses the int8 speed-up to decide
// whether quantization is worth a candidate; numbers are medians of timed runs.
import * as ort from 'onnxruntime-node';
import { availableParallelism } from 'node:os';
import { EdgefitError } from '../errors.js';
import { convFp32, convInt8, gemmFp32, gemmInt8, randomFloats, randomInt8, randomUint8, type Act, type ConvShape } from './bench-models.js';
import type { BenchResult, Int8Measure, KernelBench } from './types.js';

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

/** Median seconds per call of `fn` over a time budget (at least 3 timed calls, after 2 warm-ups). */
async function timeIt(fn: () => Promise<unknown> | unknown, budgetMs: number): Promise<number> {
  await fn();
  await fn();
  const times: number[] = [];
  const end = performance.now() + budgetMs;
  while (times.length < 3 || (performance.now() < end && times.length < 200)) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

async function session(bytes: Uint8Array, threads: number): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    });
  } catch (e) {
    throw new EdgefitError('EVAL', `benchmark model rejected by onnxruntime: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** Giga-ops per second of one model: ops per call / median seconds per call. */
async function gops(bytes: Uint8Array, feeds: Record<string, ort.Tensor>, ops: number, threads: number, budgetMs: number): Promise<number> {
  const s = await session(bytes, threads);
  try {
    const sec = await timeIt(() => s.run(feeds), budgetMs);
    return ops / sec / 1e9;
  } finally {
    await s.release();
  }
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

async function kernel(
  shape: string,
  fp32Op: string,
  int8Op: string,
  ops: number,
  fp32: () => [Uint8Array, Record<string, ort.Tensor>],
  int8: (a: Act) => [Uint8Array, Record<string, ort.Tensor>],
  threads: number,
  budget: number,
): Promise<KernelBench> {
  const [fb, ff] = fp32();
  const fp32Gops = await gops(fb, ff, ops, threads, budget);
  const measure = async (a: Act): Promise<Int8Measure> => {
    const [qb, qf] = int8(a);
    const g = await gops(qb, qf, ops, threads, budget);
    return { gops: round(g), speedup: round(g / fp32Gops) };
  };
  // both activation types: onnxruntime's x86 kernels favour u8, its arm64 dot-product kernels s8
  const u8 = await measure('u8');
  const s8 = await measure('s8');
  return { shape, fp32Op, int8Op, fp32Gops: round(fp32Gops), int8: { u8, s8 } };
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
