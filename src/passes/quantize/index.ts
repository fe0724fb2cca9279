// edgefit quantize: the orchestration. Float graph prepared by onnxruntime's basic optimiser
// (BatchNormalization folded into Conv, constants folded), then static QDQ, dynamic or fp16;
// fidelity measured against the float model on real data; with a fidelity floor, the most
// sensitive layers go back to float until the floor holds; and the graph onnxruntime really
// runs is read back to report which kernels are int8. Whether int8 is worth deploying on this
// box (it may run slower than float) is decided by the caller: src/fit/keep-float.ts.
import * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import { cloneModel, type Model } from '../../ir/model.js';
import { normalize } from '../normalize.js';
import { annotateShapes } from '../../ir/shapes.js';
import { parseModel, serializeModel } from '../../onnx/index.js';
import { deadCodeElimination } from '../cleanup/dce.js';
import { runPass } from '../pass.js';
import { computeRange, needsHistogram, type CalibMethod, type Range } from './calibrate.js';
import { collectStats } from './collect.js';
import { equalizeRanges, type EqualizeReport } from './equalize.js';
import { dynamicQuantPass } from './dynamic.js';
import { fallbackToFloat } from './fallback.js';
import { measureFidelity, type Fidelity, type FidelityMetric } from './fidelity.js';
import { fp16Pass } from './fp16.js';
import { weightStoragePass } from './weight-storage.js';
import { opsetPass, planOpset, type OpsetPlan } from './opset.js';
import { foldPass, saturatedLowerBounds, type FoldReport } from './fold.js';
import { optimizedModel, openSession, runtimeOps, type Feeds } from '../../runtime/runner.js';
import { detectPlatform, type Int8Platform } from './platform.js';
import { staticQuantPass, calibrationValues, findCandidates, nodeKey, type LayerDecision, type StaticOptions } from './qdq.js';
import { Gram, layerGeometry, LayerInputStats, roundWeight, type RoundedWeight, type WeightRounding } from './rounding.js';
import { floatSet, nodeUnit, tensorUnit, type FloatSet, type SensitivityRank } from './sensitivity.js';

// 'weights': int8 weights (calibrated rounding) with float activations and float compute, a
// size-only mode like fp16: onnxruntime folds each DequantizeLinear of a weight at load.
export const QUANT_MODES = ['static', 'dynamic', 'fp16', 'weights'] as const;
export type QuantMode = (typeof QUANT_MODES)[number];

export { CALIB_METHODS, type CalibMethod } from './calibrate.js';
export { FIDELITY_METRICS, type FidelityMetric } from './fidelity.js';
export { WEIGHT_ROUNDINGS, type WeightRounding } from './rounding.js';

export interface QuantizeOptions {
  mode: QuantMode;
  method?: CalibMethod;
  perChannel?: boolean;
  /**
   * Rescale channels between a conv and its readers so each per-tensor activation scale serves
   * all channels (equalize.ts; exact in float). Static mode only.
   */
  equalize?: boolean;
  /** Fidelity floor (in the fidelity metric, vs float); sensitive layers and tensors fall back to float to meet it. */
  minFidelity?: number;
  /**
   * 'cosine' (default) of each output, or 'argmax': agreement of the per-position argmax over the
   * last axis (a sequence recogniser's decoded classes, PP-OCR rec's characters).
   */
  fidelityMetric?: FidelityMetric;
  /** Most sensitivity probes (one model build and session each) the --min-fidelity fallback may run (default 64). */
  maxProbes?: number;
  /**
   * Samples each --min-fidelity ranking probe runs on (default 2): more rank more reliably (PP-OCR
   * rec's float set ranked on 2 crops over-fitted them) at a proportional probe cost.
   */
  probeSamples?: number;
  /** How the --min-fidelity fallback ranks units (sensitivity.ts): 'alone' (default) or 'leave-out'. */
  fallbackRank?: SensitivityRank;
  /** Progress of the --min-fidelity sensitivity probes. */
  onProbe?: (done: number, total: number) => void;
  /** Input batches: calibration for static mode, fidelity measurement for all modes. */
  data?: Feeds[];
  /**
   * Inputs the fidelity (and the --min-fidelity fallback) is measured on, when they should differ
   * from the calibration inputs (default: the calibration inputs). A detector calibrated on mixed
   * photos is judged on images with text: on a photo without text its map is ~0 everywhere and a
   * cosine there measures noise.
   */
  fidelityData?: Feeds[];
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

const QUANT_OPS = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'QLinearConv',
  'QLinearMatMul',
  'MatMulInteger',
  'ConvInteger',
  'DynamicQuantizeMatMul',
  'MatMulIntegerToFloat',
  'QGemm',
  'DynamicQuantizeLSTM',
]);

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

export async function quantizeModel(input: Model, o: QuantizeOptions): Promise<QuantizeResult> {
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
  if (o.minFidelity !== undefined && data.length === 0)
    throw new EdgefitError('USAGE', 'a fidelity floor needs data to measure on', { remedy: { option: 'calib' } });

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
  } else if (data.length) {
    const s = await openSession(floatBytes, { threads });
    try {
      for (const f of data) reference.push((await s.run(f)) as Record<string, ort.Tensor>);
    } finally {
      await s.release();
    }
  }

  // float kernels (weights mode) cannot saturate: full 8-bit weights
  let reduceRange = o.mode === 'weights' ? false : platform.reduceRange;
  const metric = o.fidelityMetric ?? 'cosine';
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
  const build = (keep: FloatSet): { model: Model; bytes: Uint8Array; layers: LayerDecision[]; floatTensors: string[] } => {
    const m = parseModel(calibrated ? int8FormBytes : floatBytes);
    let layers: LayerDecision[];
    const keepFloat = keep.nodes;
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
    return { model: m, bytes: finish(m), layers, floatTensors: [...keep.tensors] };
  };

  let fdata = data;
  if (o.fidelityData?.length) {
    fdata = o.fidelityData;
    reference = [];
    const s = await openSession(floatBytes, { threads });
    try {
      for (const f of fdata) reference.push((await s.run(f)) as Record<string, ort.Tensor>);
    } finally {
      await s.release();
    }
  }
  const none = floatSet([]);
  let best = build(none);
  let fidelity = fdata.length ? await measureFidelity(best.bytes, fdata, reference, 'all', threads, metric) : null;
  let rangeNote = '';
  if (platform.reduceRange && fidelity && !sizeOnly) {
    // 7-bit weights rule out VPMADDUBSW saturation but cost precision; some models (PP-OCR det)
    // lose more to the missing bit than to rare saturation. Measure both with the real kernels.
    reduceRange = false;
    const full = build(none);
    const ff = await measureFidelity(full.bytes, fdata, reference, 'all', threads, metric);
    // argmax agreement ties often; the smooth loss breaks the tie
    if (ff.mean > fidelity.mean || (ff.mean === fidelity.mean && ff.loss < fidelity.loss)) {
      rangeNote = `full 8-bit weights (${metric} ${ff.mean.toFixed(4)}) beat 7-bit reduce-range (${fidelity.mean.toFixed(4)}) on this data, saturation notwithstanding`;
      best = full;
      fidelity = ff;
    } else {
      reduceRange = true;
      rangeNote = `7-bit reduce-range weights (${metric} ${fidelity.mean.toFixed(4)}) kept over full 8-bit (${ff.mean.toFixed(4)})`;
    }
  }
  let fallback: QuantizeReport['fallback'] = null;
  if (o.minFidelity !== undefined && fidelity && fidelity.mean < o.minFidelity && o.mode !== 'fp16') {
    // weighted nodes (their weights stay float) and, in static mode, every quantized activation
    const units = best.layers.filter((l) => l.int8 && (o.mode !== 'static' || l.kind === 'weighted')).map((l) => nodeUnit(l.node));
    if (o.mode === 'static')
      for (const q of best.model.graph.nodes)
        if (q.opType === 'QuantizeLinear' && !best.model.graph.constant(q.inputs[0]!)) units.push(tensorUnit(q.inputs[0]!));
    const fb = await fallbackToFloat(units, build, fdata, reference, {
      floor: o.minFidelity,
      metric,
      threads,
      maxProbes: o.maxProbes,
      probeSamples: o.probeSamples,
      onProbe: o.onProbe,
      rank: o.fallbackRank,
    });
    best = fb.built;
    fidelity = fb.fidelity;
    fallback = { units: units.length, probed: fb.probes, tried: fb.tried };
  }
  ranges = new Map(); // release
  layerStats.clear();
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
  const report: QuantizeReport = {
    mode: o.mode,
    method,
    platform: { ...platform, reduceRange, why: rangeNote ? `${platform.why}; ${rangeNote}` : platform.why },
    opset,
    folds,
    sizes: { before, after: best.bytes.byteLength, ratio: best.bytes.byteLength / before },
    layers: { quantized: best.layers.filter((l) => l.int8).length, float: best.layers.filter((l) => !l.int8).length, details: best.layers },
    weightRounding,
    equalized: equalized ? { sites: equalized.sites, widest: equalized.details.reduce((a, d) => Math.max(a, d.spreadBefore), 0) } : null,
    floatTensors: best.floatTensors,
    fallback,
    fidelity,
    minFidelity: o.minFidelity ?? null,
    runtimeOps: await runtimeOps(best.bytes),
    latency: null,
    decision,
    note,
  };
  return { model: best.model, bytes: best.bytes, floatModel: parseModel(floatBytes), floatBytes, report };
}

export { detectPlatform } from './platform.js';
export { ort };
