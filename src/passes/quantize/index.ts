// edgefit quantize, the pass: the float graph prepared by onnxruntime's basic optimiser
// (BatchNormalization folded into Conv, constants folded), then static QDQ, dynamic or fp16, built
// to a plan (plan.ts: which units stay float, 7- or 8-bit weights); and the graph onnxruntime
// really runs is read back to report which kernels are int8. The pass transforms and reports:
// measuring fidelity, choosing the weight bit width, the --min-fidelity search over float sets
// and whether int8 is worth deploying here are decisions, in src/fit/quantize/ and
// src/fit/keep-float.ts (issue 15).
import * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import { cloneModel, type Model } from '../../ir/model.js';
import { normalize } from '../normalize.js';
import { annotateShapes } from '../../ir/shapes.js';
import { parseModel, serializeModel } from '../../onnx/index.js';
import { deadCodeElimination } from '../cleanup/dce.js';
import { runPass } from '../pass.js';
import { QUANT_OPS } from '../conditions.js';
import { computeRange, needsHistogram, type CalibMethod, type Range } from './calibrate.js';
import { collectStats } from './collect.js';
import { equalizeRanges, type EqualizeReport } from './equalize.js';
import { dynamicQuantPass } from './dynamic.js';
import { fp16Pass } from './fp16.js';
import { weightStoragePass } from './weight-storage.js';
import { opsetPass, planOpset, type OpsetPlan } from './opset.js';
import { foldPass, saturatedLowerBounds, type FoldReport } from '../cleanup/fold.js';
import { optimizedModel, runtimeOps, type Feeds } from '../../runtime/runner.js';
import { detectPlatform, type Int8Platform } from './platform.js';
import { staticQuantPass, calibrationValues, findCandidates, nodeKey, type LayerDecision, type StaticOptions } from './qdq.js';
import { Gram, layerGeometry, LayerInputStats, roundWeight, type RoundedWeight, type WeightRounding } from './rounding.js';
import { floatSet, type QuantPlan } from './plan.js';

// 'weights': int8 weights (calibrated rounding) with float activations and float compute, a
// size-only mode like fp16: onnxruntime folds each DequantizeLinear of a weight at load.
export const QUANT_MODES = ['static', 'dynamic', 'fp16', 'weights'] as const;
export type QuantMode = (typeof QUANT_MODES)[number];

export { CALIB_METHODS, type CalibMethod } from './calibrate.js';
export { WEIGHT_ROUNDINGS, type WeightRounding } from './rounding.js';
export { floatSet, nodeUnit, tensorUnit, type FloatSet, type QuantPlan } from './plan.js';

/**
 * How a quantized model's outputs are judged against the float model's (src/fit/quantize/fidelity.ts):
 * 'cosine' of each output, or 'argmax': agreement of the per-position argmax over the last axis
 * (a sequence recogniser's decoded classes, PP-OCR rec's characters). Named here because the
 * report carries the judgement.
 */
export const FIDELITY_METRICS = ['cosine', 'argmax'] as const;
export type FidelityMetric = (typeof FIDELITY_METRICS)[number];

export interface Fidelity {
  /** A FidelityMetric, or the model task's metric when judged by task ('boxF1', 'textAgreement' ...). */
  metric: string;
  mean: number;
  min: number;
  samples: number;
  /** Mean over samples of the ranking loss (1 - cosine, or KL per position for argmax). */
  loss: number;
}

/** What the pass needs to build any plan; the decision's own options are in src/fit/quantize/plan.ts. */
export interface QuantizeOptions {
  mode: QuantMode;
  method?: CalibMethod;
  perChannel?: boolean;
  /**
   * Rescale channels between a conv and its readers so each per-tensor activation scale serves
   * all channels (equalize.ts; exact in float). Static mode only.
   */
  equalize?: boolean;
  /** Input batches: calibration for static and weights modes (and, to the decision layer, fidelity measurement). */
  data?: Feeds[];
  platform?: Int8Platform;
  threads?: number;
  /**
   * Static mode: how weights are rounded to int8 (rounding.ts). 'nearest' rounds each weight on
   * its own; 'bias' adds bias correction; 'adaround' picks up/down per weight to keep the layer's
   * output on the calibration inputs, then corrects the bias (the default: on PP-OCRv4 rec,
   * weights-only int8 agreed on 94.2% of held-out characters rounded to nearest, 98.9% so).
   */
  weightRounding?: WeightRounding;
}

export interface QuantizeReport {
  mode: QuantMode;
  method: CalibMethod | null;
  platform: Int8Platform;
  opset: OpsetPlan | null;
  /** Exact float rewrites applied before quantizing (to both the float baseline and the int8 model). */
  folds: FoldReport | null;
  sizes: { before: number; after: number; ratio: number };
  layers: { quantized: number; float: number; details: LayerDecision[] };
  /**
   * Static mode: the weight rounding used, the layers it covered, and its error on the calibration
   * inputs as a share of round-to-nearest's (sum over layers of (w - w_q)^T H (w - w_q)).
   */
  weightRounding: { method: WeightRounding; layers: number; errorVsNearest: number | null } | null;
  /** Cross-layer range equalization (static, --equalize): sites rescaled and the widest max/median channel range before. */
  equalized: { sites: number; widest: number } | null;
  /** Activation tensors the --min-fidelity fallback left unquantized (static mode). */
  floatTensors: string[];
  /** The --min-fidelity search: units ranked, and the fidelity of each float set it tried (k most sensitive units). */
  fallback: { units: number; probed: number; tried: { k: number; mean: number; loss: number }[] } | null;
  /** Fidelity of the kept plan vs the float model, and the floor it had to meet (filled by src/fit/quantize/plan.ts). */
  fidelity: Fidelity | null;
  minFidelity: number | null;
  /** Op types of the graph onnxruntime runs after its own fusions (proof of int8 kernels). */
  runtimeOps: Record<string, number>;
  /** Median latency of float and quantized on the first sample, interleaved runs, this box (filled by decideKeepFloat). */
  latency: { floatMs: number; quantizedMs: number; ratio: number; runs: number; threads: number } | null;
  /** 'kept-float' when int8 was not faster here (decideKeepFloat): the float model is the better deployment. */
  decision: 'quantized' | 'kept-float' | 'size-only';
  note: string;
}

/** Refuse models this pass cannot quantize, with the reason in one line. */
export function checkQuantizable(model: Model): void {
  const q = model.graph.nodes.find((n) => QUANT_OPS.has(n.opType));
  if (q) throw new EdgefitError('UNSUPPORTED', `model is already quantized (it contains ${q.opType}); quantize the float model instead`);
  for (const i of model.graph.runtimeInputs()) {
    const dt = i.type?.dtype;
    if (dt && dt !== 'float32' && dt !== 'int64' && dt !== 'int32')
      throw new EdgefitError('UNSUPPORTED', `input '${i.name}' is ${dt}; edgefit quantizes float32 models`);
  }
  let floats = 0;
  for (const t of model.graph.initializers()) {
    if (t.dtype === 'float16' || t.dtype === 'bfloat16')
      throw new EdgefitError('UNSUPPORTED', `weight '${t.name}' is ${t.dtype}; edgefit quantizes float32 models`);
    if (t.dtype === 'float32') floats++;
  }
  if (floats === 0) throw new EdgefitError('UNSUPPORTED', 'model has no float32 weights to quantize');
}

/** The float graph the quantizer works on: constants lifted, then onnxruntime's basic optimiser. */
export async function prepareFloat(model: Model): Promise<Model> {
  normalize(model);
  const opt = await optimizedModel(model, 'basic');
  // onnxruntime writes every domain it knows into opset_import; keep the ones the graph uses
  const used = new Set(opt.graph.nodes.map((n) => (n.domain === 'ai.onnx' ? '' : n.domain)));
  for (const d of [...opt.opsets.keys()]) if (d !== '' && d !== 'ai.onnx' && !used.has(d) && !model.opsets.has(d)) opt.opsets.delete(d);
  opt.metadata = new Map(model.metadata);
  return opt;
}

function finish(m: Model): Uint8Array {
  runPass(deadCodeElimination, m, undefined);
  return serializeModel(m);
}

export interface QuantizeResult {
  model: Model;
  bytes: Uint8Array;
  /** The prepared float baseline (same opset and exact folds): what decideKeepFloat times int8 against. */
  floatModel: Model;
  floatBytes: Uint8Array;
  report: QuantizeReport;
}

/** One plan built: the model and what became of each layer. */
export interface BuiltQuant {
  plan: QuantPlan;
  model: Model;
  bytes: Uint8Array;
  layers: LayerDecision[];
  floatTensors: string[];
}

/**
 * A model prepared for quantization (float baseline, folds, calibration ranges, rounding
 * statistics), from which any plan builds cheaply: the decision layer (src/fit/quantize/) builds
 * and judges many plans from one calibration.
 */
export interface Quantizer {
  readonly mode: QuantMode;
  readonly platform: Int8Platform;
  /** fp16 and weights modes: compute stays float, so the model is smaller but not faster. */
  readonly sizeOnly: boolean;
  readonly floatBytes: Uint8Array;
  /** The float model's outputs on the calibration data, a by-product of calibration (empty when the mode does not calibrate). */
  readonly reference: readonly Record<string, ort.Tensor>[];
  /** The plan when nobody chooses: nothing float, the platform's weight bit width. */
  readonly defaultPlan: QuantPlan;
  build(plan: QuantPlan): BuiltQuant;
  /** The report of the plan kept; it releases the calibration state, so it is the last call. */
  report(kept: BuiltQuant): Promise<QuantizeReport>;
}

export async function openQuantizer(input: Model, o: QuantizeOptions): Promise<Quantizer> {
  normalize(input); // weights in Constant nodes (PP-OCR) become initializers first
  checkQuantizable(input);
  const before = serializeModel(input).byteLength;
  const platform = o.platform ?? detectPlatform();
  const threads = o.threads ?? 2;
  const floatModel = await prepareFloat(input);
  const data = o.data ?? [];
  // weights mode runs the static pipeline (its rounding and bias correction need the data) and
  // then leaves every activation float
  const calibrated = o.mode === 'static' || o.mode === 'weights';
  const sizeOnly = o.mode === 'fp16' || o.mode === 'weights';
  if (calibrated && data.length === 0)
    throw new EdgefitError('USAGE', `${o.mode} quantization needs calibration data`, { remedy: { option: 'calib' } });

  let opset: OpsetPlan | null = null;
  let folds: FoldReport | null = null;
  let floatBytes = serializeModel(floatModel);
  let int8FormBytes = floatBytes;
  let ranges = new Map<string, Range>();
  let reference: Record<string, ort.Tensor>[] = [];
  const method = calibrated ? (o.method ?? 'minmax') : null;
  const rounding: WeightRounding = o.weightRounding ?? 'adaround';
  const layerStats = new Map<string, LayerInputStats>();
  let equalized: EqualizeReport | null = null;
  if (calibrated) {
    // ranks for the opset check (Softmax over the last axis); best effort, unknown ranks just block
    try {
      annotateShapes(floatModel, { shapes: new Map(Object.entries(data[0]!).map(([k, t]) => [k, [...t.dims]])) });
    } catch {
      /* shapes stay unknown */
    }
    opset = planOpset(floatModel);
    // the float baseline gets the same opset and exact folds as the int8 model, so it is the
    // fair comparison and the better model to keep when int8 does not pay off
    runPass(opsetPass, floatModel, opset);
    // the int8 form differs from the float one only in how HardSwish is written (see fold.ts)
    const int8Form = cloneModel(floatModel);
    folds = runPass(foldPass, floatModel, 'float').details;
    floatBytes = serializeModel(floatModel);
    // weights mode computes in float: its "int8 form" keeps HardSwish whole like the float one
    runPass(foldPass, int8Form, o.mode === 'weights' ? 'float' : 'int8');
    // exact in float: only how the per-tensor activation scales fall changes (equalize.ts)
    if (o.equalize) equalized = await equalizeRanges(int8Form, data, { threads });
    int8FormBytes = serializeModel(int8Form);
    const cands = findCandidates(int8Form);
    const values = calibrationValues(cands);
    if (rounding !== 'nearest') {
      for (const c of cands) {
        const geo = c.kind === 'weighted' && !c.blocked ? layerGeometry(int8Form.graph, c.node) : undefined;
        if (geo) layerStats.set(c.key, new LayerInputStats(geo));
      }
    }
    const gram = layerStats.size ? await Gram.open(threads) : undefined;
    const visit = gram
      ? async (res: Record<string, ort.Tensor>): Promise<void> => {
          for (const st of layerStats.values()) {
            const t = res[st.geo.input];
            if (t?.type === 'float32') await st.add(t.data as Float32Array, t.dims, gram);
          }
        }
      : undefined;
    let col: Awaited<ReturnType<typeof collectStats>>;
    try {
      col = await collectStats(int8Form, values, data, { histograms: method === null || needsHistogram(method), threads, visit });
      if (gram) for (const st of layerStats.values()) await st.flush(gram);
    } finally {
      await gram?.release();
    }
    const floors = saturatedLowerBounds(int8Form);
    for (const [v, s] of col.stats) {
      const r = computeRange(s, method!);
      const lo = floors.get(v);
      ranges.set(v, lo !== undefined && r.min < lo ? { min: lo, max: r.max } : r);
    }
    reference = col.reference;
  }

  // float kernels (weights mode) cannot saturate: full 8-bit weights
  const rangeOf = (plan: QuantPlan): boolean => (o.mode === 'weights' ? false : plan.reduceRange);
  // rounded weights depend on the node, the bit width and the axis only: every build reuses them
  const rounded = new Map<string, RoundedWeight>();
  const roundHook: StaticOptions['roundWeight'] = layerStats.size
    ? (n, w, axis, rr) => {
        const key = nodeKey(n);
        const st = layerStats.get(key);
        if (!st) return undefined;
        const ck = `${key}|${rr}|${axis}`;
        let r = rounded.get(ck);
        if (!r)
          rounded.set(
            ck,
            (r = roundWeight(w, st, { method: rounding, reduceRange: rr, axis, hasBias: n.opType !== 'MatMul' && !!n.inputs[2] })),
          );
        return r;
      }
    : undefined;
  const build = (plan: QuantPlan): BuiltQuant => {
    const m = parseModel(calibrated ? int8FormBytes : floatBytes);
    let layers: LayerDecision[];
    const keep = plan.float;
    const keepFloat = keep.nodes;
    const reduceRange = rangeOf(plan);
    if (o.mode === 'weights') {
      layers = runPass(weightStoragePass, m, { perChannel: o.perChannel ?? true, keepFloat, roundWeight: roundHook }).details.layers;
    } else if (o.mode === 'static') {
      layers = runPass(staticQuantPass, m, {
        actType: platform.activation,
        reduceRange,
        perChannel: o.perChannel ?? true,
        ranges,
        keepFloat,
        floatTensors: keep.tensors,
        qdqDomain: opset!.qdqDomain,
        roundWeight: roundHook,
      }).details.layers;
    } else if (o.mode === 'dynamic') {
      layers = runPass(dynamicQuantPass, m, { perChannel: o.perChannel ?? true, reduceRange, keepFloat }).details.layers;
    } else {
      layers = runPass(fp16Pass, m, undefined).details.layers;
    }
    return { plan, model: m, bytes: finish(m), layers, floatTensors: [...keep.tensors] };
  };

  const report = async (kept: BuiltQuant): Promise<QuantizeReport> => {
    ranges = new Map(); // release
    layerStats.clear();
    const reduceRange = rangeOf(kept.plan);
    let weightRounding: QuantizeReport['weightRounding'] = null;
    if (calibrated) {
      const used = [...rounded.entries()].filter(([k]) => k.split('|')[1] === String(reduceRange)).map(([, r]) => r);
      const near = used.reduce((a, r) => a + r.errNearest, 0);
      weightRounding = {
        method: rounding,
        layers: used.length,
        errorVsNearest: near > 0 ? used.reduce((a, r) => a + r.err, 0) / near : null,
      };
    }
    // the pass reports; measuring latency and keeping float is the caller's decision (decideKeepFloat)
    const decision: QuantizeReport['decision'] = sizeOnly ? 'size-only' : 'quantized';
    const note =
      o.mode === 'fp16'
        ? 'fp16 storage: compute stays float32'
        : o.mode === 'weights'
          ? 'int8 weight storage (Cast and Mul by the scale, folded by onnxruntime at load): compute stays float32'
          : 'latency not measured (no data)';
    const bytes = kept.bytes.byteLength;
    return {
      mode: o.mode,
      method,
      platform: { ...platform, reduceRange },
      opset,
      folds,
      sizes: { before, after: bytes, ratio: bytes / before },
      layers: {
        quantized: kept.layers.filter((l) => l.int8).length,
        float: kept.layers.filter((l) => !l.int8).length,
        details: kept.layers,
      },
      weightRounding,
      equalized: equalized ? { sites: equalized.sites, widest: equalized.details.reduce((a, d) => Math.max(a, d.spreadBefore), 0) } : null,
      floatTensors: kept.floatTensors,
      // the judgement of the plan (src/fit/quantize/plan.ts) fills these three
      fallback: null,
      fidelity: null,
      minFidelity: null,
      runtimeOps: await runtimeOps(kept.bytes),
      latency: null,
      decision,
      note,
    };
  };
  return {
    mode: o.mode,
    platform,
    sizeOnly,
    floatBytes,
    reference,
    defaultPlan: { float: floatSet([]), reduceRange: o.mode !== 'weights' && platform.reduceRange },
    build,
    report,
  };
}

/** The pass alone: build one plan (default: nothing float, the platform's bit width) and report it; no fidelity measured. */
export async function quantizeWithPlan(input: Model, o: QuantizeOptions, plan?: Partial<QuantPlan>): Promise<QuantizeResult> {
  const q = await openQuantizer(input, o);
  const built = q.build({ ...q.defaultPlan, ...plan });
  const report = await q.report(built);
  return { model: built.model, bytes: built.bytes, floatModel: parseModel(q.floatBytes), floatBytes: q.floatBytes, report };
}

export { detectPlatform } from './platform.js';
// --mode qat: static int8 trained as a fake-quant float model, exported back to QDQ (qat-train.ts)
export { quantizeQat, QAT_DEFAULT_LR, type QatOptions, type QatReport, type QatResult } from './qat-train.js';
export { ort };
