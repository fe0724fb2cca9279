// The channel block this box's convolution kernels prefer (issue 17), found by timing: a few
// representative convolutions at every width of a window spanning multiples of 32. Where the
// kernels work in blocks of B channels (onnxruntime's NCHWc layout), a width that is not a
// multiple of B is padded or falls off the fast path, so it is slower than the next multiple of
// B: a staircase. The smallest B whose staircase shows is the block; when none shows clearly
// (noise, or no blocked kernels) the CPU features decide.
import { Graph } from '../../ir/graph.js';
import { modelOf, type Model } from '../../ir/model.js';
import { Tensor } from '../../ir/tensor.js';
import { openSession, type Feeds } from '../../runtime/runner.js';
import type { InferenceSession } from 'onnxruntime-node';
import type { BlockEvidence } from './types.js';
import { blockFromCpu, cpuFacts, type CpuFacts } from './hardware.js';
import { FeedBuffer } from './measure.js';
import { serializeModel } from '../../onnx/index.js';

export const BLOCKS = [4, 8, 16, 32] as const;
/** A width counts as slower than the next multiple when it takes this much longer. */
const SLOWER = 1.05;
/** The share of comparisons that must show a step (or a padded flat) for a block to be taken. */
const STEP_AGREE = 0.6;
const PAD_AGREE = 0.6;

interface Probe {
  layer: string;
  build: (w: number) => { model: Model; shape: number[] };
}

export function convModel(inShape: number[], wDims: number[], group: number, k: number): Model {
  const g = new Graph();
  g.name = 'block_probe';
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: inShape } });
  const n = wDims.reduce((a, b) => a * b, 1);
  const vals = new Float32Array(n);
  for (let i = 0; i < n; i++) vals[i] = ((i % 97) - 48) / 4800;
  g.setInitializer(Tensor.fromFloat32('w', wDims, vals));
  g.setInitializer(Tensor.fromFloat32('b', [wDims[0]!], new Float32Array(wDims[0]!)));
  const p = (k - 1) / 2;
  g.addNode({
    name: 'conv',
    opType: 'Conv',
    inputs: ['x', 'w', 'b'],
    outputs: ['c'],
    attrs: {
      kernel_shape: { type: 'ints', value: [k, k] },
      pads: { type: 'ints', value: [p, p, p, p] },
      group: { type: 'int', value: group },
    },
  });
  g.addNode({ name: 'relu', opType: 'Relu', inputs: ['c'], outputs: ['y'] });
  g.outputs.push({ name: 'y', type: { dtype: 'float32', shape: null } });
  return modelOf(g, { producer: 'edgefit-block-probe' });
}

const HW = 28;
// a 1x1 convolution was tried too: its time hardly moves with the width on AVX-512 (no
// staircase to read), so it only diluted the evidence
export const PROBES: readonly Probe[] = [
  {
    layer: `Conv 3x3 w->w at 1xwx${HW}x${HW}`,
    build: (w) => ({ model: convModel([1, w, HW, HW], [w, w, 3, 3], 1, 3), shape: [1, w, HW, HW] }),
  },
  {
    layer: `Conv 3x3 depthwise w at 1xwx${2 * HW}x${2 * HW}`,
    build: (w) => ({ model: convModel([1, w, 2 * HW, 2 * HW], [w, 1, 3, 3], w, 3), shape: [1, w, 2 * HW, 2 * HW] }),
  },
];

/** Widths 32..64: every step of 4, 8, 16 and 32 once over. */
export const WINDOW: readonly number[] = Array.from({ length: 33 }, (_, i) => 32 + i);

/**
 * One probe's staircase: a session per width, timed round-robin (a frequency step hits every
 * width alike), the fastest run per width: a shared box's bursts of other work last longer than
 * a round and would fake or hide steps in a median, while the fastest run is the kernel's own cost.
 */
export async function probeStaircase(p: Probe, widths: readonly number[], threads: number, rounds = 25): Promise<BlockEvidence> {
  const feeds = new FeedBuffer();
  const sessions: Array<{ s: InferenceSession; f: Feeds }> = [];
  try {
    for (const w of widths) {
      const { model, shape } = p.build(w);
      // idle threads sleep: spinning pools of the other sessions would tax the one being timed
      const s = await openSession(serializeModel(model), { threads, spinning: false });
      sessions.push({ s, f: { x: feeds.tensor(shape) } });
    }
    const times = widths.map((): number[] => []);
    for (const { s, f } of sessions) for (let i = 0; i < 2; i++) await s.run(f);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < sessions.length; i++) {
        const t = performance.now();
        await sessions[i]!.s.run(sessions[i]!.f);
        times[i]!.push(performance.now() - t);
      }
    }
    return { layer: p.layer, widths: [...widths], ms: times.map((ts) => Math.min(...ts)) };
  } finally {
    for (const { s } of sessions) await s.release();
  }
}

/** The share of (w, next multiple of b) pairs where w is clearly slower, over the evidence given. */
export function stepShare(evidence: readonly BlockEvidence[], b: number): number {
  let pairs = 0,
    slower = 0;
  for (const e of evidence) {
    const at = new Map(e.widths.map((w, i) => [w, e.ms[i]!]));
    for (const [w, ms] of at) {
      if (w % b === 0) continue;
      const next = at.get(Math.ceil(w / b) * b);
      if (next === undefined) continue;
      pairs++;
      if (ms > next * SLOWER) slower++;
    }
  }
  return pairs ? slower / pairs : 0;
}

/**
 * The share of widths on `align` but off `b` that cost about as much as the next multiple of `b`
 * (not clearly faster): the kernels pad channels to blocks of `b`, so those widths buy nothing.
 */
export function padShare(evidence: readonly BlockEvidence[], align: number, b: number): number {
  let pairs = 0,
    flat = 0;
  for (const e of evidence) {
    const at = new Map(e.widths.map((w, i) => [w, e.ms[i]!]));
    for (const [w, ms] of at) {
      if (w % align !== 0 || w % b === 0) continue;
      const next = at.get(Math.ceil(w / b) * b);
      if (next === undefined) continue;
      pairs++;
      if (ms * SLOWER >= next) flat++;
    }
  }
  return pairs ? flat / pairs : 0;
}

/**
 * The block the evidence shows, or null, pooled over the probes (each alone is too noisy on a
 * shared box): the smallest alignment whose staircase shows (widths off it slower than the next
 * multiple), widened to the largest block the kernels pad to (widths on the alignment cost as
 * much as the next multiple of that block). onnxruntime's NCHWc convolutions need multiples of
 * 4 channels and pad them to 16 with AVX-512: block 16. No staircase at all (a kernel without
 * blocks, or noise): null.
 */
export function blockFromEvidence(evidence: readonly BlockEvidence[]): number | null {
  const align = BLOCKS.find((b) => stepShare(evidence, b) >= STEP_AGREE);
  if (align === undefined) return null;
  let block: number = align;
  for (const b of BLOCKS) if (b > align && padShare(evidence, align, b) >= PAD_AGREE) block = b;
  return block;
}

export interface BlockResult {
  block: number;
  blockSource: 'measured' | 'cpu';
  blockEvidence: BlockEvidence[];
}

/**
 * Time the probes and read the block off their staircases, twice: a shared box's noise can fake
 * or hide a step, so the measured block is taken only when both passes agree; otherwise the CPU
 * features decide. Both passes' staircases are kept as evidence.
 */
export async function discoverBlock(threads: number, cpu: CpuFacts = cpuFacts()): Promise<BlockResult> {
  const passes: BlockEvidence[][] = [];
  for (let pass = 1; pass <= 2; pass++) {
    const ev: BlockEvidence[] = [];
    for (const p of PROBES) ev.push(await probeStaircase(p, WINDOW, threads));
    passes.push(ev.map((e) => ({ ...e, layer: `${e.layer} (pass ${pass})` })));
  }
  const [a, b] = passes.map(blockFromEvidence);
  const blockEvidence = passes.flat();
  return a !== null && a === b
    ? { block: a, blockSource: 'measured', blockEvidence }
    : { block: blockFromCpu(cpu), blockSource: 'cpu', blockEvidence };
}
