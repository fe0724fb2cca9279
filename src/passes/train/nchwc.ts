// onnxruntime's blocked-layout ("NCHWc") convolutions for a training graph's convs. onnxruntime
// rewrites a Conv to its NCHWc kernel (com.microsoft.nchwc Conv between ReorderInput and
// ReorderOutput) only when the weight is a constant it can reorder once at load; a training graph's
// weights are inputs, so every one of its convs runs the generic im2col + GEMM kernel, one image
// at a time. The NCHWc kernel itself reads its weight at every run, so this pass writes the same
// nodes with the weight reordered inside the graph (a Reshape, Transpose, Reshape of a few kB per
// step): on MNIST's 32 -> 64 3x3 conv over 256 7x7 images that ran in 3.4 ms against 11.9 ms
// (scripts/bench-train-step.ts), as fast as the constant-weight model. The filter layouts are
// onnxruntime's own (read back from a model it optimised): O/B, I/B, kH*kW, Bi, Bo for input
// channels in blocks; O/B, I, kH*kW, Bo for a conv reading a plain NCHW input of under 8 channels
// and for depthwise convs. The block B is this build's (16 with AVX-512, 8 with AVX2), probed by
// nchwcBlock(); 1 means the kernels are absent and nothing is rewritten.
import { cloneModel, modelOf, opsetVersion, type Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import type { AttrValue } from '../../ir/types.js';
import { Tensor } from '../../ir/tensor.js';
import { inferShapes } from '../../ir/shapes.js';
import { serializeModel } from '../../onnx/index.js';
import { Graph } from '../../ir/graph.js';
import { floatTensor, openSession } from '../../runtime/runner.js';
import { feedsFor, type StepGraph } from './ram.js';

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

/** Below this many input channels the NCHWc kernel reads a plain NCHW input (onnxruntime's own cut). */
const PLAIN_INPUT_BELOW = 8;

let probed: Promise<number> | undefined;

/** A model of `g` at opset 13, with the NCHWc domain imported. */
function probeModel(g: Graph): Model {
  const m = modelOf(g, { producer: 'edgefit nchwc probe' });
  m.opsets.set(NCHWC_DOMAIN, 1);
  return m;
}

/** Runs `m` once on `feeds`, returning its outputs' values by name. */
async function runOnce(m: Model, feeds: Record<string, [Float32Array, number[]]>): Promise<Record<string, Float32Array>> {
  const s = await openSession(serializeModel(m), { level: 'all', threads: 1 });
  try {
    const r = await s.run(Object.fromEntries(Object.entries(feeds).map(([k, [v, d]]) => [k, floatTensor(v, d)])));
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await s.release();
  }
}

/**
 * Whether this build's NCHWc kernel computes, on weights reordered as nchwcConvs writes them,
 * what the generic convs compute: a depthwise conv, a conv with inputs and outputs padded to
 * blocks and one reading a 3-channel input, on fixed pseudo-random values. The layouts were read
 * from onnxruntime's x86 build; a build that lays its filters out otherwise is not used.
 */
export async function layoutHolds(block: number): Promise<boolean> {
  const g = new Graph();
  const io = (name: string, dims: number[]): void => void g.inputs.push({ name, type: { dtype: 'float32', shape: dims } });
  const dims: Record<string, number[]> = {
    x8: [1, 8, 6, 6],
    x3: [1, 3, 6, 6],
    wd: [8, 1, 3, 3],
    wb: [20, 8, 3, 3],
    bb: [20],
    wp: [12, 3, 3, 3],
  };
  for (const [k, d] of Object.entries(dims)) io(k, d);
  const conv = (inputs: string[], out: string, group = 1): void =>
    void g.addNode(
      new Node({
        opType: 'Conv',
        inputs,
        outputs: [out],
        attrs: {
          kernel_shape: { type: 'ints', value: [3, 3] },
          pads: { type: 'ints', value: [1, 1, 1, 1] },
          group: { type: 'int', value: group },
        },
      }),
    );
  conv(['x8', 'wd'], 'yd', 8);
  conv(['yd', 'wb', 'bb'], 'yb');
  conv(['x3', 'wp'], 'yp');
  for (const o of ['yb', 'yp']) g.outputs.push({ name: o, type: { dtype: 'float32', shape: [] } });
  let seed = 12345;
  const feeds = Object.fromEntries(
    Object.entries(dims).map(([k, d]) => {
      const v = new Float32Array(d.reduce((a, b) => a * b, 1)).map(
        () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1,
      );
      return [k, [v, d] as [Float32Array, number[]]];
    }),
  );
  const plain = await runOnce(probeModel(g), feeds);
  const m = probeModel(g.clone());
  if (nchwcConvs(m, block).rewritten !== 3) return false;
  const moved = await runOnce(m, feeds);
  return ['yb', 'yp'].every((o) => {
    const [a, b] = [plain[o]!, moved[o]!];
    const scale = a.reduce((x, v) => Math.max(x, Math.abs(v)), 0);
    return a.length === b.length && scale > 0 && a.every((v, i) => Math.abs(v - b[i]!) <= 1e-4 * scale);
  });
}

/**
 * This onnxruntime build's NCHWc block size: how many channels ReorderInput pads 4 channels to.
 * 1 when the build has no NCHWc kernels (the op is then unknown and the session fails to load),
 * or when they do not compute what the generic convs do on weights laid out as here (layoutHolds).
 */
export function nchwcBlock(): Promise<number> {
  probed ??= (async () => {
    const g = new Graph();
    g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [1, 4, 1, 1] } });
    g.addNode(new Node({ opType: 'ReorderInput', domain: NCHWC_DOMAIN, inputs: ['x'], outputs: ['y'] }));
    g.outputs.push({ name: 'y', type: { dtype: 'float32', shape: [] } });
    try {
      const out = (await runOnce(probeModel(g), { x: [new Float32Array(4), [1, 4, 1, 1]] }))['y']!;
      // [1, 4, 1, 1] padded to one block of channels
      const block = out.length >= 4 ? out.length : 1;
      return block > 1 && (await layoutHolds(block)) ? block : 1;
    } catch {
      return 1;
    }
  })();
  return probed;
}

/**
 * How a conv maps onto the NCHWc kernel, or why not: its filter layout and the channel counts the
 * weight is zero-padded to (outputs to whole blocks; inputs too when they are reordered, which
 * ReorderInput can only do for multiples of 4), as onnxruntime pads a constant weight.
 */
type Filter = 'blocked' | 'plain-input' | 'depthwise';
type Form = { filter: Filter; oPad: number; iPad: number } | { skip: string };

const roundUp = (v: number, b: number): number => Math.ceil(v / b) * b;

function formOf(x: readonly number[] | undefined, w: readonly number[] | undefined, group: number, block: number): Form {
  if (!x || !w || x.length !== 4 || w.length !== 4 || [...x, ...w].some((d) => !(d > 0))) return { skip: 'not a 2-D conv of known shape' };
  const [o, i] = w as [number, number];
  const c = x[1]!;
  if (group === 1) {
    if (c < PLAIN_INPUT_BELOW) return { filter: 'plain-input', oPad: roundUp(o, block), iPad: i };
    return c % 4 === 0
      ? { filter: 'blocked', oPad: roundUp(o, block), iPad: roundUp(i, block) }
      : { skip: `${c} input channels, not a multiple of 4` };
  }
  if (group === c && group === o && i === 1)
    return c % 4 === 0
      ? { filter: 'depthwise', oPad: roundUp(o, block), iPad: 1 }
      : { skip: `${c} depthwise channels, not a multiple of 4` };
  return { skip: 'a grouped conv' };
}

/**
 * Which convs to move: every one that fits, or the depthwise ones only. On one large image
 * (PP-OCRv4 det at 1x320x320) onnxruntime's generic depthwise conv is the slow one and moving only
 * those made the step 11 % faster, while moving every conv gained nothing (the reorders of large
 * activations cost what the other convs gain); over many small images (MNIST at batch 32-256) every
 * conv gains (scripts/bench-train-step.ts --nchwc).
 */
export type NchwcScope = 'all' | 'depthwise';

export interface NchwcReport {
  /** Convs now on the NCHWc kernel. */
  rewritten: number;
  /** Convs left as they were, by reason. */
  skipped: Map<string, number>;
}

/**
 * Rewrites, in place, every 2-D Conv of `model` whose weight is not a constant (a graph input or
 * computed in the graph) and whose channels fit the kernel's blocks: ReorderInput (when the input
 * has 8 or more channels), com.microsoft.nchwc Conv on the weight reordered in the graph, and
 * ReorderOutput back to the conv's own output name, so readers (the backward pass) see NCHW as
 * before. Exact up to float summation order. `shapes`: the dims of inputs with open ones (the
 * trainer's fixed batch), without which convs of unknown shape are left alone.
 */
export function nchwcConvs(model: Model, block: number, shapes?: ReadonlyMap<string, number[]>, scope: NchwcScope = 'all'): NchwcReport {
  const report: NchwcReport = { rewritten: 0, skipped: new Map() };
  if (block <= 1) return report;
  const g = model.graph;
  const { types } = inferShapes(model, shapes ? { shapes: new Map(shapes) } : {});
  const shapeOf = (v: string): number[] | undefined => {
    const s = types.get(v)?.shape;
    return s && s.every((d): d is number => typeof d === 'number') ? s : undefined;
  };
  const opset = opsetVersion(model);
  let k = 0;
  // one namer for the pass: uniqueName would rebuild the graph's index after every insertion (4 s of
  // a QAT det run's setup)
  const fresh = g.namer();
  const name = (base: string): string => fresh(`nchwc/${base}_${k++}`);
  const constInts = (values: number[]): string => {
    const n = name('shape');
    g.setInitializer(Tensor.fromInt64(n, [values.length], values));
    return n;
  };
  for (const n of [...g.nodes]) {
    if (n.opType !== 'Conv' || n.domain !== '') continue;
    const [x, w] = n.inputs as [string, string];
    if (g.initializer(w)) continue; // onnxruntime does these itself
    const ws = shapeOf(w);
    const form = formOf(shapeOf(x), ws, n.attrInt('group', 1), block);
    const [o, i, kh, kw] = (ws ?? []) as [number, number, number, number];
    // Pad takes its pads as an input from opset 11 (training graphs run at the model's opset)
    const why =
      'skip' in form
        ? form.skip
        : opset < 11 && (form.oPad > o || form.iPad > i)
          ? 'padding below opset 11'
          : scope === 'depthwise' && form.filter !== 'depthwise'
            ? 'not depthwise'
            : undefined;
    if (why !== undefined || 'skip' in form) {
      report.skipped.set(why!, (report.skipped.get(why!) ?? 0) + 1);
      continue;
    }
    const { oPad, iPad } = form;
    const taps = kh * kw;
    // the weight zero-padded to whole blocks, in onnxruntime's layout, under its padded dims (the
    // kernel checks only the dims); a bias padded with it
    const add = (opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string => {
      const out = name('w');
      g.addNode(new Node({ opType, inputs, outputs: [out], attrs }), { before: n });
      return out;
    };
    const pad = (v: string, ends: number[]): string =>
      ends.some((e) => e > 0) ? add('Pad', [v, constInts([...ends.map(() => 0), ...ends])]) : v;
    const padded = pad(w, [oPad - o, iPad - i, 0, 0]);
    const reshape = (v: string, dims: number[]): string => add('Reshape', [v, constInts(dims)]);
    const transpose = (v: string, perm: number[]): string => add('Transpose', [v], { perm: { type: 'ints', value: perm } });
    const reordered =
      form.filter === 'blocked'
        ? transpose(reshape(padded, [oPad / block, block, iPad / block, block, taps]), [0, 2, 4, 3, 1])
        : transpose(reshape(padded, [oPad / block, block, iPad * taps]), [0, 2, 1]);
    const wr = reshape(reordered, [oPad, iPad, kh, kw]);
    const bias = n.inputs[2] ? [pad(n.inputs[2], [oPad - o])] : [];
    let xin = x;
    if (form.filter !== 'plain-input') {
      xin = name('x');
      g.addNode(new Node({ opType: 'ReorderInput', domain: NCHWC_DOMAIN, inputs: [x], outputs: [xin] }), { before: n });
    }
    const y = n.outputs[0]!;
    const yb = name('y');
    const conv = new Node({
      name: `${n.name || y}/nchwc`,
      opType: 'Conv',
      domain: NCHWC_DOMAIN,
      inputs: [xin, wr, ...bias],
      outputs: [yb],
      // a depthwise conv's groups are its padded channels
      attrs: { ...Object.fromEntries(n.attrs), ...(form.filter === 'depthwise' ? { group: { type: 'int', value: oPad } } : {}) },
    });
    g.addNode(conv, { before: n });
    g.addNode(
      new Node({
        opType: 'ReorderOutput',
        domain: NCHWC_DOMAIN,
        inputs: [yb],
        outputs: [y],
        attrs: { channels: { type: 'int', value: o } },
      }),
      { before: n },
    );
    g.removeNode(n);
    report.rewritten++;
  }
  if (report.rewritten) {
    model.opsets.set(NCHWC_DOMAIN, 1);
    g.touch();
  }
  return report;
}

/** What choosing the step's conv kernels found (TrainReport.kernels). */
export interface KernelChoice {
  /** The graph the step runs: generic convs, or these convs on the NCHWc kernel. */
  used: 'generic' | NchwcScope;
  /** Convs each rewrite moved (absent: it moved none, or the build has no NCHWc kernels). */
  rewritten: Partial<Record<NchwcScope, number>>;
  /** Median step of each graph timed, ms, interleaved on zeros (a conv's time does not depend on the values). */
  ms: Partial<Record<'generic' | NchwcScope, number>>;
  /** Why a faster rewrite was not used. */
  note?: string;
}

/** Share by which a rewritten step must be faster: under it the two are within a shared box's noise. */
const MIN_GAIN = 0.05;
const TIMED_RUNS = 5;

/**
 * Times `step` (the trainer's graph at its micro-batch) against its NCHWc rewrites (depthwise convs
 * only, every conv that fits), interleaved, and returns the fastest when it beats the generic step
 * by MIN_GAIN and `fits` its memory (the reorders add buffers): measured, because which convs gain
 * depends on the model and the batch (NchwcScope).
 */
export async function chooseStepKernels(
  step: StepGraph,
  threads: number,
  fits: (rewritten: StepGraph) => Promise<boolean>,
): Promise<{ step: StepGraph; choice: KernelChoice }> {
  // a diagnostic switch: EDGEFIT_TRAIN_KERNELS=generic trains on the generic convs only
  const block = process.env['EDGEFIT_TRAIN_KERNELS'] === 'generic' ? 1 : await nchwcBlock();
  const shapes = step.shapes as ReadonlyMap<string, number[]> | undefined;
  const rewritten: KernelChoice['rewritten'] = {};
  const variants: { scope: 'generic' | NchwcScope; step: StepGraph }[] = [{ scope: 'generic', step }];
  for (const scope of ['depthwise', 'all'] as const) {
    const model = cloneModel(step.model);
    const r = nchwcConvs(model, block, shapes, scope);
    if (!r.rewritten) continue;
    rewritten[scope] = r.rewritten;
    // 'all' moving no more convs than 'depthwise' is the same graph
    if (scope === 'all' && r.rewritten === rewritten.depthwise) continue;
    variants.push({ scope, step: { ...step, model } });
  }
  if (variants.length === 1) return { step, choice: { used: 'generic', rewritten, ms: {} } };
  const opts = { threads, level: 'all' as const, spinning: false, memPattern: false };
  const sessions: Awaited<ReturnType<typeof openSession>>[] = [];
  const times: number[][] = variants.map(() => []);
  try {
    for (const v of variants) sessions.push(await openSession(v.step.model, opts));
    const feeds = feedsFor(step);
    for (const s of sessions) await s.run(feeds);
    for (let r = 0; r < TIMED_RUNS; r++) {
      const order = variants.map((_, i) => i);
      if (r % 2) order.reverse();
      for (const i of order) {
        const t0 = performance.now();
        await sessions[i]!.run(feeds);
        times[i]!.push(performance.now() - t0);
      }
    }
  } finally {
    await Promise.all(sessions.map((s) => s.release()));
  }
  const med = times.map((x) => [...x].sort((a, b) => a - b)[x.length >> 1]!);
  const ms = Object.fromEntries(variants.map((v, i) => [v.scope, +med[i]!.toFixed(2)])) as KernelChoice['ms'];
  const choice: KernelChoice = { used: 'generic', rewritten, ms };
  // the fastest rewrite that fits, by time; the generic step unless one beats it by MIN_GAIN
  const ranked = variants
    .map((v, i) => ({ ...v, ms: med[i]! }))
    .filter((v) => v.scope !== 'generic' && v.ms < (1 - MIN_GAIN) * med[0]!)
    .sort((a, b) => a.ms - b.ms);
  for (const v of ranked) {
    if (await fits(v.step)) return { step: v.step, choice: { ...choice, used: v.scope } };
    choice.note = `the ${v.scope} rewrite was faster but over the training RAM budget`;
  }
  return { step, choice };
}

/** 'depthwise on NCHWc (74.7 against 83.9 ms generic, 81.2 all)': a choice in one line, for reports. */
export function kernelsLine(k: KernelChoice | undefined): string {
  if (!k) return 'generic';
  const timed = Object.entries(k.ms)
    .filter(([s]) => s !== k.used)
    .map(([s, v]) => `${v} ms ${s}`)
    .join(', ');
  const head = k.used === 'generic' ? 'generic kernels' : `${k.used} on NCHWc`;
  return `${head}${k.ms[k.used] !== undefined ? ` (${k.ms[k.used]} ms against ${timed})` : ''}${k.note ? `; ${k.note}` : ''}`;
}
