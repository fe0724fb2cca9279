// The channel block this box's convolution kernels prefer (issue 17), found by timing: a few
// representative convolutions at every width of a window spanning multiples of 32. Where the
// kernels work in blocks of B channels (onnxruntime's NCHWc layout), a width that is not a
// multiple of B is padded or falls off the fast path, so it is slower than the next multiple of
// B: a staircase. The smallest B whose staircase shows is the block; when none shows clearly
// (noise, or no blocked kernels) the CPU features decide.
import { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Tensor } from '../../ir/tensor.js';
import { openSession, type Feeds } from '../../runtime/runner.js';
import type { InferenceSession } from 'onnxruntime-node';
import type { BlockEvidence } from './types.js';
import { blockFromCpu, cpuFacts, type CpuFacts } from './hardware.js';
import { FeedBuffer, median } from './measure.js';
import { serializeModel } from '../../onnx/index.js';

export const BLOCKS = [4, 8, 16, 32] as const;
/** A width counts as slower than the next multiple when it takes this much longer. */
const SLOWER = 1.05;
/** The share of comparisons that must show the step for a block to be taken. */
const AGREE = 0.75;

interface Probe {
  layer: string;
  build: (w: number) => { model: Model; shape: number[] };
}

function convModel(inShape: number[], wDims: number[], group: number, k: number): Model {
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
  return {
    irVersion: 8,
    opsets: new Map([['', 13]]),
    producerName: 'edgefit-block-probe',
    producerVersion: '1',
    domain: '',
    modelVersion: 1,
    docString: '',
    metadata: new Map(),
    graph: g,
    extra: undefined,
  };
}

const HW = 28;
export const PROBES: readonly Probe[] = [
  {
    layer: `Conv 1x1 64->w at 1x64x${HW}x${HW}`,
    build: (w) => ({ model: convModel([1, 64, HW, HW], [w, 64, 1, 1], 1, 1), shape: [1, 64, HW, HW] }),
  },
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
 * One probe's staircase: a session per width, timed round-robin (a frequency step or a noisy
 * neighbour hits every width alike), median per width.
 */
export async function probeStaircase(p: Probe, widths: readonly number[], threads: number, rounds = 9): Promise<BlockEvidence> {
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
    return { layer: p.layer, widths: [...widths], ms: times.map(median) };
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
 * The block the evidence shows, or null: per probe, the smallest block whose staircase shows;
 * over the probes, the largest of those (a width must suit every kernel to stay on its fast path).
 * A probe without a clear staircase (noise, a kernel without blocks) does not vote.
 */
export function blockFromEvidence(evidence: readonly BlockEvidence[]): number | null {
  let block: number | null = null;
  for (const e of evidence) {
    const b = BLOCKS.find((b) => stepShare([e], b) >= AGREE);
    if (b !== undefined) block = Math.max(block ?? 0, b);
  }
  return block;
}

export interface BlockResult {
  block: number;
  blockSource: 'measured' | 'cpu';
  blockEvidence: BlockEvidence[];
}

/** Time the probes and read the block off their staircases; the CPU features when they are unclear. */
export async function discoverBlock(threads: number, cpu: CpuFacts = cpuFacts()): Promise<BlockResult> {
  const blockEvidence: BlockEvidence[] = [];
  for (const p of PROBES) blockEvidence.push(await probeStaircase(p, WINDOW, threads));
  const b = blockFromEvidence(blockEvidence);
  return b === null
    ? { block: blockFromCpu(cpu), blockSource: 'cpu', blockEvidence }
    : { block: b, blockSource: 'measured', blockEvidence };
}
