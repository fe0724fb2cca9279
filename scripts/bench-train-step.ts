// What one training step costs against one inference of the same batch (issue 18 must-show: at
// most 4x), on this box, side by side in one process:
//   node dist/scripts/bench-train-step.js [--runs 20] [--threads 2] [--cases mnist,mnist256,det1,det4,conv64,qatdet]
// The training step is the graph buildGradients makes (forward, an MSE loss to a fixed target,
// backward; every weight-layer input trained: Conv/ConvTranspose/Gemm weights and biases,
// BatchNormalization scale and B), fed the weights as inputs as the trainer feeds them. The two
// sessions run interleaved (inference, step, inference, step, ...), idle threads sleeping, and
// each gets its median; the ratio of medians and the median of per-pair ratios are printed. Peak
// RSS is measured in a child process per session (process maxRSS after three runs), so neither
// session's arena counts against the other. Inputs are seeded random (timing does not depend on
// the values). Only ratios within one run mean anything on a shared box.
// Also (cases also dw3big, dw3, dw3x4, dw5: single depthwise convs shaped as det's):
//   --compare first|taps|patches   time the step under other Conv rules, interleaved with the two
//   --save DIR / --against DIR     write each case's step to DIR/<case>.onnx / time a step so written
//                                  by another build (the base commit's, say) interleaved with this one
//   --raw                          the model as exported, without the folds edgefit applies first
//   --profile                      onnxruntime's per-node profile: kernel time by op, by gradient rule
//                                  (backward nodes are named grad/<forward op>/...), top nodes
//                                  (PROFILE_OPS=Conv,Slice to list only those ops' nodes)
//   --freeze-stride N              the stem left frozen: layers before the first map at 1/N of the input
//                                  side (freeze.ts); 0 trains every layer; default as the trainer does
//                                  (distillation 8; QAT, the qatdet case, 0)
//   --optimizer                    a whole step (forward, backward, Adam) with Adam in TypeScript and
//                                  in the graph (adam-graph.ts), interleaved
//   --split                        also time the step's forward alone (the loss graph, its trained
//                                  weights fed as the step feeds them), interleaved: what the backward
//                                  costs is the step less it, and whether it alone fits the 4x
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { ModelBuilder, randn, rng } from '../devkit/builder.js';
import { OCR_FIT_SETS, OCR_MODELS, ROOT } from '../devkit/paths.js';
import { cloneModel, type Model } from '../src/ir/model.js';
import { Node } from '../src/ir/node.js';
import { inferShapes } from '../src/ir/shapes.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadModel, parseModel, serializeModel } from '../src/onnx/index.js';
import { loadInputSet } from '../src/data/inputs.js';
import { modelInputs, toFeeds } from '../src/runtime/runner.js';
import { openQuantizer } from '../src/passes/quantize/index.js';
import { fakeQuantize, qatTrainables } from '../src/passes/quantize/qat.js';
import { foldShapesPass } from '../src/passes/cleanup/fold-shapes.js';
import { foldPass } from '../src/passes/cleanup/fold.js';
import { normalize } from '../src/passes/normalize.js';
import { runPass } from '../src/passes/pass.js';
import { Adam } from '../src/passes/train/adam.js';
import { ADAM_IO, adamScalars, appendAdam, type AdamGraph } from '../src/passes/train/adam-graph.js';
import { buildGradients } from '../src/passes/train/grad/backward.js';
import { GRAD_RULES } from '../src/passes/train/grad/rules/index.js';
import { convRule } from '../src/passes/train/grad/rules/linear.js';
import type { GradRules } from '../src/passes/train/grad/types.js';
import { openSession } from '../src/runtime/session.js';
import { nchwcBlock, nchwcConvs, type NchwcScope } from '../src/passes/train/nchwc.js';
import { FREEZE_STRIDE, freezeStem } from '../src/passes/train/freeze.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
    cases: { type: 'string', default: 'mnist,conv64,det1,det4' },
    child: { type: 'string' },
    'no-rss': { type: 'boolean', default: false },
    // time the model as exported, without the exact folds a deployed or trained model gets
    raw: { type: 'boolean', default: false },
    // time a whole step (forward, backward, Adam) with Adam in TypeScript and in the graph, interleaved
    optimizer: { type: 'boolean', default: false },
    // also time the forward alone (weights as inputs), so the backward's share is a wall-time figure
    split: { type: 'boolean', default: false },
    // also time the step under alternative rules (interleaved with the others): see ALTERNATIVES
    compare: { type: 'string' },
    // also time the step with its convs on onnxruntime's NCHWc kernel: 'depthwise' or 'all' (src/passes/train/nchwc.ts)
    nchwc: { type: 'string' },
    // write each case's training step to <dir>/<case>.onnx, or compare with steps so written by another build
    save: { type: 'string' },
    against: { type: 'string' },
    // onnxruntime's per-node profile of the training step: kernel time by op type, forward vs backward
    profile: { type: 'boolean', default: false },
    // the trainer's frozen stem (freeze.ts): layers before the first map at 1/N of the input side;
    // 0 trains every layer; unset: as the trainer does (distillation FREEZE_STRIDE, QAT's qatdet 0)
    'freeze-stride': { type: 'string' },
  },
});
const RUNS = Number(args.runs);
/** Per case, how many stem layers its step leaves frozen. */
const frozenLayers = new Map<string, number>();
const THREADS = Number(args.threads);

interface Case {
  model: () => Model;
  input: string;
  shape: number[];
  /** The trained values (default: every float weight and bias of a weight layer). */
  wrt?: (m: Model) => string[];
  /** Already folded (the QAT graph is built from the folded static model). */
  folded?: boolean;
  /** Another model timed on the same batch, interleaved with the two (qatdet: the float model its int8 was made from). */
  reference?: { what: string; model: () => Uint8Array };
}

/**
 * QAT's training step on det (qatdet): the fake-quant float model quantizeQat trains (static int8
 * from the bundled calibration set, minmax, then qat.ts), its weights and biases trained, at the
 * default crops' batch (4 x 192 x 192). Built before main() runs: calibration is asynchronous.
 */
let qatDet: { model: Model; wrt: string[]; float: Uint8Array } | undefined;
async function prepareQatDet(): Promise<void> {
  const m = await loadModel(OCR_MODELS.det.file);
  const inputs = modelInputs(m);
  const calib = loadInputSet(OCR_FIT_SETS.det.calibrate, inputs).samples;
  const q = await openQuantizer(m, { mode: 'static', data: calib.map(toFeeds), threads: THREADS });
  const built = q.build(q.defaultPlan);
  const floatModel = parseModel(q.floatBytes);
  const fq = fakeQuantize(built.model, {
    reduceRange: q.defaultPlan.reduceRange,
    floatWeights: (n) => floatModel.graph.initializer(n),
    biasUnits: 'int32',
  });
  qatDet = { model: fq.model, wrt: qatTrainables(fq, { scales: false }), float: q.floatBytes };
}

function singleConv(): Model {
  const b = new ModelBuilder({ seed: 3 });
  b.output(b.conv(b.input('x', [8, 64, 80, 80]), 64, { k: 3 }));
  return b.build();
}

/** One depthwise conv as PP-OCRv4 det has them (its weight gradient's routes differ most with the kernel and the map). */
function depthwiseConv(c: number, hw: number, k: number, batch = 1): Case {
  const model = (): Model => {
    const b = new ModelBuilder({ seed: 3 });
    b.output(b.depthwise(b.input('x', [batch, c, hw, hw]), k));
    return b.build();
  };
  return { model, input: 'x', shape: [batch, c, hw, hw] };
}

const CASES: Record<string, Case> = {
  dw3big: depthwiseConv(16, 160, 3),
  dw3: depthwiseConv(48, 80, 3),
  dw3x4: depthwiseConv(48, 80, 3, 4),
  dw5: depthwiseConv(192, 20, 5),
  mnist: { model: () => loadModel(join(ROOT, 'models/mnist-cnn.onnx')), input: 'x', shape: [32, 1, 28, 28] },
  // wider: per-node overheads weigh less (the ratio is of the same batch both ways)
  mnist256: { model: () => loadModel(join(ROOT, 'models/mnist-cnn.onnx')), input: 'x', shape: [256, 1, 28, 28] },
  conv64: { model: singleConv, input: 'x', shape: [8, 64, 80, 80] },
  det1: { model: () => loadModel(OCR_MODELS.det.file), input: 'x', shape: [1, 3, 320, 320] },
  det4: { model: () => loadModel(OCR_MODELS.det.file), input: 'x', shape: [4, 3, 320, 320] },
  // the float model beside it: whether int8's own speed is what makes the ratio (at this batch it
  // is no faster than float: 1.05x in one run)
  qatdet: {
    model: () => cloneModel(qatDet!.model),
    wrt: () => qatDet!.wrt,
    folded: true,
    input: 'x',
    shape: [4, 3, 192, 192],
    reference: { what: 'the float model (folded, as calibrated)', model: () => qatDet!.float },
  },
};

const WEIGHT_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'BatchNormalization']);
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const median = (a: readonly number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;

interface Built {
  /** The step with Adam appended (--optimizer), its flat vector's layout, and the gradient outputs of the plain step. */
  adam?: { bytes: Uint8Array; layout: AdamGraph['layout']; size: number; grads: Map<string, string>; dims: Map<string, number[]> };
  infer: Uint8Array;
  train: Uint8Array;
  /** The loss graph alone with the trained weights as inputs (--split): the step's forward. */
  forward?: Uint8Array;
  /** The step under alternative rules (--compare). */
  trainAlt?: Uint8Array;
  inferFeeds: Record<string, ort.Tensor>;
  trainFeeds: Record<string, ort.Tensor>;
  weights: number;
  backwardNodes: number;
  forwardNodes: number;
}

/** The inference model and its training step (MSE to a fixed target) for one case. */
/** Rule variants a step can be compared with (--compare name). */
const ALTERNATIVES: Record<string, { what: string; rules: GradRules }> = {
  first: {
    what: 'the first Conv rule (ConvTranspose input gradients, patches for every depthwise)',
    rules: { ...GRAD_RULES, Conv: convRule({ inputGrad: 'convTranspose', depthwise: 'patches' }) },
  },
  taps: {
    what: 'depthwise weight gradients tap by tap above 3x3, patches below',
    rules: { ...GRAD_RULES, Conv: convRule({ depthwise: 'taps' }) },
  },
  patches: {
    what: 'depthwise weight gradients by patches and MatMul',
    rules: { ...GRAD_RULES, Conv: convRule({ depthwise: 'patches' }) },
  },
  // not a gradient anyone should train with: what the straight-through masks of QAT's activation
  // quantizers cost, as the step without them (dy passed through unmasked, no step-size gradient)
  nomask: {
    what: 'activation fake quantizers passing dy through unmasked (what their masks cost)',
    rules: { ...GRAD_RULES, QuantizeLinear: { diff: [0], grad: (_n, [dq]) => [dq] } },
  },
};

function build(name: string, c: Case, compare?: string): Built {
  const shapes = new Map([[c.input, c.shape]]);
  // as training does: Constants lifted, shape chains folded at the training shape
  // the QAT graph is trained as quantizeQat builds it (normalizing or folding would merge or fold away values it trains)
  const m = c.folded ? c.model() : normalize(c.model());
  if (!c.folded) runPass(foldShapesPass, m, { shapes });
  // the exact folds every model edgefit deploys or trains gets (prune and the fit's level 0 run
  // them): BatchNormalization into Conv, x * Clip(x + 3, 0, 6) / 6 as one op. They make det's
  // inference 40 % faster, so timing the file as exported flatters the ratio (--raw does)
  if (!args.raw && !c.folded) runPass(foldPass, m, 'float');
  const g0 = m.graph;
  const every =
    c.wrt?.(m) ??
    [...g0.initializers()]
      .filter(
        (w) =>
          w.dtype === 'float32' && g0.nodes.some((n) => WEIGHT_OPS.has(n.opType) && (n.inputs[1] === w.name || n.inputs[2] === w.name)),
      )
      .map((w) => w.name);
  // the stem train() leaves frozen (freeze.ts): the step as the trainer builds it
  const fz = freezeStem(m, every, shapes, args['freeze-stride'] !== undefined ? Number(args['freeze-stride']) : c.wrt ? 0 : FREEZE_STRIDE);
  const wrt = fz.trainable;
  frozenLayers.set(name, fz.layers.length);
  const lm = cloneModel(m);
  const g = lm.graph;
  const { types } = inferShapes(lm, { shapes });
  const out = g.outputs[0]!.name;
  const os = types.get(out)!.shape as number[];
  const next = rng(7);
  g.setInitializer(Tensor.fromFloat32('bench.target', os, randn(next, numel(os))));
  g.addNode(new Node({ opType: 'Sub', inputs: [out, 'bench.target'], outputs: ['bench.d'] }));
  g.addNode(new Node({ opType: 'Mul', inputs: ['bench.d', 'bench.d'], outputs: ['bench.sq'] }));
  g.addNode(
    new Node({ opType: 'ReduceMean', inputs: ['bench.sq'], outputs: ['bench.loss'], attrs: { keepdims: { type: 'int', value: 0 } } }),
  );
  g.outputs = [{ name: 'bench.loss', type: { dtype: 'float32', shape: [] } }];
  g.touch();
  const built = buildGradients(lm, { loss: 'bench.loss', wrt, shapes });
  const forward = args.split ? forwardOnly(lm, wrt) : undefined;
  const alt = compare ? ALTERNATIVES[compare] : undefined;
  if (compare && !alt) throw new Error(`unknown --compare ${compare} (${Object.keys(ALTERNATIVES).join(', ')})`);
  const trainAlt = alt
    ? serializeModel(buildGradients(lm, { loss: 'bench.loss', wrt, shapes, rules: alt.rules }).model)
    : args.against
      ? new Uint8Array(readFileSync(join(args.against, `${name}.onnx`)))
      : undefined;
  const x = new ort.Tensor('float32', randn(next, numel(c.shape)), c.shape);
  const trainFeeds: Record<string, ort.Tensor> = { [c.input]: x };
  for (const [k, t] of built.initial) trainFeeds[k] = new ort.Tensor('float32', t.toFloat32().slice(), [...t.dims]);
  const ag = args.optimizer ? appendAdam(built.model, built.grads) : undefined;
  const adam = ag && {
    bytes: serializeModel(ag.model),
    layout: ag.layout,
    size: ag.size,
    grads: built.grads,
    dims: new Map([...built.initial].map(([k, t]) => [k, [...t.dims]])),
  };
  return {
    adam,
    infer: serializeModel(m),
    train: serializeModel(built.model),
    forward,
    trainAlt,
    inferFeeds: { [c.input]: x },
    trainFeeds,
    weights: wrt.length,
    backwardNodes: built.backwardNodes,
    forwardNodes: g0.nodes.length,
  };
}

/** The loss graph with `wrt` as graph inputs, as the training step takes them (no backward). */
function forwardOnly(lm: Model, wrt: readonly string[]): Uint8Array {
  const f = cloneModel(lm);
  for (const w of wrt) f.graph.initializerToInput(w);
  return serializeModel(f);
}

/** Child mode: open one session, run it three times, print the process's peak RSS in MB. */
async function child(spec: string): Promise<void> {
  const [name, mode] = spec.split(':') as [string, 'infer' | 'train'];
  const b = build(name, CASES[name]!);
  const bytes = mode === 'infer' ? b.infer : b.train;
  const feeds = mode === 'infer' ? b.inferFeeds : b.trainFeeds;
  const before = process.resourceUsage().maxRSS / 1024;
  const s = await openSession(bytes, { threads: THREADS, ...(mode === 'train' ? { memPattern: false } : {}) });
  for (let i = 0; i < 3; i++) await s.run(feeds);
  console.log(JSON.stringify({ beforeSessionMB: before, peakMB: process.resourceUsage().maxRSS / 1024 }));
}

function peakRss(name: string, mode: string): { beforeSessionMB: number; peakMB: number } {
  const out = execFileSync(
    process.execPath,
    [fileURLToPath(import.meta.url), '--child', `${name}:${mode}`, '--threads', String(THREADS), ...(args.raw ? ['--raw'] : [])],
    {
      encoding: 'utf8',
    },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as { beforeSessionMB: number; peakMB: number };
}

/**
 * A whole training step two ways, interleaved: the plain step then TypeScript Adam over its
 * gradients (as train() does), and the step with Adam in the graph, its outputs fed back.
 */
async function optimizerBench(name: string, b: Built): Promise<void> {
  const a = b.adam!;
  const st = await openSession(b.train, { threads: THREADS, spinning: false });
  const sa = await openSession(a.bytes, { threads: THREADS, spinning: false });
  const params = new Map<string, Float32Array>();
  for (const w of a.dims.keys()) params.set(w, (b.trainFeeds[w]!.data as Float32Array).slice());
  const opt = new Adam(params);
  const x: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(b.trainFeeds)) if (!a.dims.has(k)) x[k] = v;
  const tsStep = async (): Promise<void> => {
    const f: Record<string, ort.Tensor> = { ...x };
    for (const [w, p] of params) f[w] = new ort.Tensor('float32', p, a.dims.get(w)!);
    const r = await st.run(f);
    opt.step(new Map([...a.grads].map(([w, gname]) => [w, r[gname]!.data as Float32Array])), 1e-4);
  };
  const flat = new Float32Array(a.size);
  for (const [w, l] of a.layout) flat.set(params.get(w)!, l.offset);
  let state: Record<string, ort.Tensor> = {
    [ADAM_IO.params]: new ort.Tensor('float32', flat, [a.size]),
    [ADAM_IO.m]: new ort.Tensor('float32', new Float32Array(a.size), [a.size]),
    [ADAM_IO.v]: new ort.Tensor('float32', new Float32Array(a.size), [a.size]),
  };
  let t = 0;
  const scalar = (v: number): ort.Tensor => new ort.Tensor('float32', new Float32Array([v]), [1]);
  const graphStep = async (): Promise<void> => {
    const sc = adamScalars(++t, 1e-4);
    const r = await sa.run({
      ...x,
      ...state,
      [ADAM_IO.stepSize]: scalar(sc.stepSize),
      [ADAM_IO.eps]: scalar(sc.eps),
      [ADAM_IO.decay]: scalar(sc.decay),
    });
    state = { [ADAM_IO.params]: r[ADAM_IO.paramsOut]!, [ADAM_IO.m]: r[ADAM_IO.mOut]!, [ADAM_IO.v]: r[ADAM_IO.vOut]! };
  };
  await tsStep();
  await graphStep();
  const tt: number[] = [];
  const tg: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    let t0 = performance.now();
    await tsStep();
    tt.push(performance.now() - t0);
    t0 = performance.now();
    await graphStep();
    tg.push(performance.now() - t0);
  }
  await st.release();
  await sa.release();
  console.log(
    `${name}: whole step with TypeScript Adam ${median(tt).toFixed(1)} ms, with Adam in the graph ${median(tg).toFixed(1)} ms (graph/TS ${(median(tg) / median(tt)).toFixed(2)}, median pair ratio ${median(tg.map((v, i) => v / tt[i]!)).toFixed(2)}); ${a.size} weights`,
  );
}

/** onnxruntime's profile of `runs` training steps: kernel time by op type and the backward's share. */
async function profile(name: string, bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-prof-'));
  const s = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    enableProfiling: true,
    profileFilePrefix: join(dir, 'p'),
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  for (let i = 0; i < RUNS; i++) await s.run(feeds);
  s.endProfiling();
  await s.release();
  const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
  const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    cat: string;
    name: string;
    dur: number;
    args?: { op_name?: string };
  }[];
  rmSync(dir, { recursive: true, force: true });
  const byOp = new Map<string, number>();
  const byNode = new Map<string, number>();
  const byRule = new Map<string, number>();
  const byRuleOp = new Map<string, number>();
  let total = 0;
  let backward = 0;
  for (const ev of events) {
    if (ev.cat !== 'Node' || !ev.name.endsWith('_kernel_time')) continue;
    const op = ev.args?.op_name ?? '?';
    byOp.set(op, (byOp.get(op) ?? 0) + ev.dur);
    const node = `${ev.name.slice(0, -'_kernel_time'.length)} (${op})`;
    byNode.set(node, (byNode.get(node) ?? 0) + ev.dur);
    total += ev.dur;
    const rule = ev.name.startsWith('grad/') ? `${ev.name.split('/')[1]!} rule` : 'forward';
    byRule.set(rule, (byRule.get(rule) ?? 0) + ev.dur);
    byRuleOp.set(`${rule} ${op}`, (byRuleOp.get(`${rule} ${op}`) ?? 0) + ev.dur);
    if (ev.name.startsWith('grad/')) backward += ev.dur;
  }
  const top = [...byOp].sort((a, c) => c[1] - a[1]).slice(0, 14);
  console.log(
    `${name} profile: ${(total / RUNS / 1000).toFixed(1)} ms kernel time per run, backward ${((100 * backward) / total).toFixed(0)} %`,
  );
  console.log('  ' + top.map(([op, d]) => `${op} ${((100 * d) / total).toFixed(0)} %`).join(', '));
  const rules = [...byRule].sort((a, c) => c[1] - a[1]).slice(0, 12);
  console.log('  by rule: ' + rules.map(([r, d]) => `${r} ${((100 * d) / total).toFixed(0)} %`).join(', '));
  const ruleOps = [...byRuleOp].sort((a, c) => c[1] - a[1]).slice(0, 16);
  console.log('  by rule and op: ' + ruleOps.map(([r, d]) => `${r} ${((100 * d) / total).toFixed(0)} %`).join(', '));
  const only = process.env.PROFILE_OPS?.split(',');
  const nodes = [...byNode]
    .filter(([nd]) => !only || only.some((o) => nd.endsWith(`(${o})`)))
    .sort((a, c) => c[1] - a[1])
    .slice(0, only ? 30 : 12);
  console.log('  nodes: ' + nodes.map(([nd, d]) => `${nd} ${((100 * d) / total).toFixed(1)} %`).join(', '));
}

async function main(): Promise<void> {
  if (args.child?.startsWith('qatdet:')) await prepareQatDet();
  if (args.child) return child(args.child);
  console.log(`threads ${THREADS}, ${RUNS} interleaved runs per case (a shared box: compare ratios within this run only)`);
  if (args.cases.split(',').includes('qatdet')) await prepareQatDet();
  for (const name of args.cases.split(',')) {
    const c = CASES[name];
    if (!c) throw new Error(`unknown case ${name} (cases: ${Object.keys(CASES).join(', ')})`);
    const t0 = performance.now();
    const b = build(name, c, args.compare);
    let nchwcNote = '';
    if (args.nchwc) {
      if (args.nchwc !== 'all' && args.nchwc !== 'depthwise') throw new Error(`--nchwc all|depthwise, got ${args.nchwc}`);
      const m = parseModel(b.train);
      const block = await nchwcBlock();
      const r = nchwcConvs(m, block, new Map([[c.input, c.shape]]), args.nchwc as NchwcScope);
      b.trainAlt = serializeModel(m);
      nchwcNote = `NCHWc (${args.nchwc}) block ${block}: ${r.rewritten} convs rewritten${[...r.skipped].map(([why, k]) => `, ${k} not (${why})`).join('')}`;
    }
    if (args.save) writeFileSync(join(args.save, `${name}.onnx`), b.train);
    const buildMs = performance.now() - t0;
    if (args.optimizer) {
      await optimizerBench(name, b);
      continue;
    }
    if (args.profile) {
      await profile(`${name} inference`, b.infer, b.inferFeeds);
      await profile(`${name} training step`, b.train, b.trainFeeds);
      if (args.nchwc && b.trainAlt) await profile(`${name} training step, NCHWc (${args.nchwc})`, b.trainAlt, b.trainFeeds);
      continue;
    }
    const si = await openSession(b.infer, { threads: THREADS, spinning: false });
    // the training step as train() opens it: no memory pattern
    const st = await openSession(b.train, { threads: THREADS, spinning: false, memPattern: false });
    const sc = b.trainAlt ? await openSession(b.trainAlt, { threads: THREADS, spinning: false, memPattern: false }) : undefined;
    const sr = c.reference ? await openSession(c.reference.model(), { threads: THREADS, spinning: false }) : undefined;
    const sf = b.forward ? await openSession(b.forward, { threads: THREADS, spinning: false, memPattern: false }) : undefined;
    await sr?.run(b.inferFeeds);
    await sf?.run(b.trainFeeds);
    await si.run(b.inferFeeds);
    const first = await st.run(b.trainFeeds);
    const alt = await sc?.run(b.trainFeeds);
    // the rewritten step must compute what the generic one does: the largest difference over every
    // output (loss and gradients), relative to that output's largest magnitude
    const worstOf = (other: ort.InferenceSession.OnnxValueMapType): number => {
      let worst = 0;
      for (const [k, v] of Object.entries(other)) {
        const a = first[k]!.data as Float32Array;
        const d = v.data as Float32Array;
        let scale = 0;
        let err = 0;
        for (let i = 0; i < a.length; i++) {
          scale = Math.max(scale, Math.abs(a[i]!));
          err = Math.max(err, Math.abs(a[i]! - d[i]!));
        }
        worst = Math.max(worst, scale > 0 ? err / scale : err);
      }
      return worst;
    };
    if (alt && args.nchwc) {
      nchwcNote += `, outputs within ${worstOf(alt).toExponential(1)} of the generic step's`;
      // the control: the generic step itself on an input a millionth off. A fake-quant graph (qatdet)
      // rounds, so a last-bit difference in a conv moves a value across a step and the near-zero
      // gradients of its far layers by more than their size: there only the control says whether
      // the rewrite differs by more than rounding does
      const [name0] = Object.keys(b.inferFeeds) as [string];
      const x0 = b.trainFeeds[name0]!;
      const nudged = (x0.data as Float32Array).map((v, i) => v * (1 + 1e-6 * Math.sin(i)));
      const control = await st.run({ ...b.trainFeeds, [name0]: new ort.Tensor('float32', nudged, x0.dims) });
      nchwcNote += ` (which moves by ${worstOf(control).toExponential(1)} on an input 1e-6 off), timed at`;
    }
    const ti: number[] = [];
    const tt: number[] = [];
    const tc: number[] = [];
    const tr: number[] = [];
    const tf: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let t = performance.now();
      await si.run(b.inferFeeds);
      ti.push(performance.now() - t);
      t = performance.now();
      await st.run(b.trainFeeds);
      tt.push(performance.now() - t);
      if (sc) {
        t = performance.now();
        await sc.run(b.trainFeeds);
        tc.push(performance.now() - t);
      }
      if (sr) {
        t = performance.now();
        await sr.run(b.inferFeeds);
        tr.push(performance.now() - t);
      }
      if (sf) {
        t = performance.now();
        await sf.run(b.trainFeeds);
        tf.push(performance.now() - t);
      }
    }
    await sr?.release();
    await sf?.release();
    await si.release();
    await st.release();
    await sc?.release();
    const pair = median(tt.map((x, i) => x / ti[i]!));
    const mi = median(ti);
    const mt = median(tt);
    const ct = tc.length
      ? `; under ${args.nchwc ? nchwcNote : args.compare ? ALTERNATIVES[args.compare]!.what : `the step in ${args.against}`} ${median(tc).toFixed(1)} ms (${(median(tc) / mi).toFixed(2)}x)`
      : '';
    const ref = tr.length
      ? `; ${c.reference!.what}'s inference ${median(tr).toFixed(1)} ms (the step ${(mt / median(tr)).toFixed(2)}x it; median pair ratio inference / it ${median(ti.map((x, i) => x / tr[i]!)).toFixed(2)})`
      : '';
    // the backward as the step less its forward, both medians of this run
    const split = tf.length
      ? `; its forward alone ${median(tf).toFixed(1)} ms (${(median(tf) / mi).toFixed(2)}x the inference), the backward the rest: ${(mt - median(tf)).toFixed(1)} ms (${((mt - median(tf)) / mi).toFixed(2)}x)`
      : '';
    let rss = '';
    if (!args['no-rss']) {
      const ri = peakRss(name, 'infer');
      const rt = peakRss(name, 'train');
      rss = `, peak RSS infer ${ri.peakMB.toFixed(0)} MB / train ${rt.peakMB.toFixed(0)} MB (before the session: ${rt.beforeSessionMB.toFixed(0)} MB)`;
    }
    console.log(
      `${name} [${c.shape.join('x')}]: inference ${mi.toFixed(1)} ms, training step ${mt.toFixed(1)} ms, ratio ${(mt / mi).toFixed(2)}x (median pair ratio ${pair.toFixed(2)}x); ${b.weights} weights${frozenLayers.get(name) ? ` (the stem's ${frozenLayers.get(name)} layers frozen)` : ''}, ${b.forwardNodes} forward + ${b.backwardNodes} backward nodes, built in ${buildMs.toFixed(0)} ms${split}${ct}${ref}${rss}`,
    );
  }
}

await main();
