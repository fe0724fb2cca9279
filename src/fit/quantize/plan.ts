// The quantizer's decisions (issue 15: decisions live in fit, the pass only builds a plan). From
// one calibration (openQuantizer), build candidate plans and judge each by its fidelity against
// the float model on real data:
//  - 7-bit (reduce-range) or full 8-bit weights, where the platform asks for 7 bits;
//  - with a fidelity floor (--min-fidelity), the fewest units kept float that meet it
//    (fallback.ts, ranked by sensitivity.ts).
// Whether int8 is worth deploying on this box at all is decideKeepFloat (../keep-float.ts).
import type * as ort from 'onnxruntime-node';
import { EdgefitError } from '../../errors.js';
import type { Model } from '../../ir/model.js';
import { parseModel } from '../../onnx/index.js';
import type { Feeds } from '../../runtime/runner.js';
import { hasNonFinite } from '../../data/inputs.js';
import {
  nodeUnit,
  openQuantizer,
  tensorUnit,
  type BuiltQuant,
  type QuantizeOptions,
  type QuantizeReport,
  type QuantizeResult,
} from '../../passes/quantize/index.js';
import { fallbackToFloat } from './fallback.js';
import { floatOutputs, judgeName, measureFidelity, type FidelityMetric, type QuantJudge } from './fidelity.js';
import { resolveTask, type Task } from '../../fidelity/tasks.js';
import type { SensitivityRank } from './sensitivity.js';

export interface QuantizeDecisionOptions extends QuantizeOptions {
  /** Fidelity floor (in the fidelity metric, vs float); sensitive layers and tensors fall back to float to meet it. */
  minFidelity?: number;
  /**
   * 'cosine' (default) of each output, or 'argmax': agreement of the per-position argmax over the
   * last axis (a sequence recogniser's decoded classes, PP-OCR rec's characters).
   */
  fidelityMetric?: FidelityMetric;
  /**
   * Judge by the model's task instead ('auto': detected from the model and its float outputs):
   * a det by box F1, a rec by text agreement (issue 16). A fidelityMetric given wins.
   */
  task?: Task | 'auto';
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
  /**
   * Inputs the fidelity (and the --min-fidelity fallback) is measured on, when they should differ
   * from the calibration inputs (default: the calibration inputs). A detector calibrated on mixed
   * photos is judged on images with text: on a photo without text its map is ~0 everywhere and a
   * cosine there measures noise.
   */
  fidelityData?: Feeds[];
}

/** The raw metric named, else the task (given, or detected from the graph and the first float outputs), else cosine. */
function judgeOf(o: QuantizeDecisionOptions, input: Model, first: Record<string, ort.Tensor> | undefined): QuantJudge {
  if (o.fidelityMetric !== undefined || o.task === undefined || !first) return o.fidelityMetric ?? 'cosine';
  const outputs = Object.fromEntries(Object.entries(first).map(([k, v]) => [k, { dims: v.dims, data: v.data as Float32Array }]));
  const r = resolveTask(o.task, input.graph, outputs);
  if (!r.def.applies(outputs))
    throw new EdgefitError('USAGE', `task ${r.task} does not fit this model's outputs: ${r.def.describe}`, { remedy: { option: 'task' } });
  return { task: r.task, def: r.def };
}

/**
 * NaN or infinite inputs calibrate NaN scales and make the float reference and int8 outputs NaN
 * alike, which compare as identical (issue 20): refused here as the loader refuses them, for
 * callers that hand feeds over directly.
 */
function refuseNonFiniteFeeds(feeds: readonly Feeds[] | undefined, what: string): void {
  const bad = (feeds ?? []).findIndex((f) => Object.values(f).some((t) => hasNonFinite({ dtype: t.type, data: t.data })));
  if (bad >= 0)
    throw new EdgefitError('DATA', `${what} sample ${bad} holds NaN or infinite values: models are neither calibrated nor judged on them`);
}

/**
 * Quantize `input`, choosing the plan: the weight bit width by measured fidelity and, with a
 * floor, the units kept float. The report is the pass's, with the judgement filled in.
 */
export async function quantizeModel(input: Model, o: QuantizeDecisionOptions): Promise<QuantizeResult> {
  refuseNonFiniteFeeds(o.data, 'calibration');
  refuseNonFiniteFeeds(o.fidelityData, 'fidelity');
  const q = await openQuantizer(input, o);
  const data = o.data ?? [];
  if (o.minFidelity !== undefined && data.length === 0)
    throw new EdgefitError('USAGE', 'a fidelity floor needs data to measure on', { remedy: { option: 'calib' } });
  const threads = o.threads ?? 2;
  // judged on the fidelity data when given; else on the calibration data, whose float outputs
  // calibration already computed
  const fdata = o.fidelityData?.length ? o.fidelityData : data;
  let reference: readonly Record<string, ort.Tensor>[] =
    fdata === data && q.reference.length ? q.reference : fdata.length ? await floatOutputs(q.floatBytes, fdata, threads) : [];
  const metric = judgeOf(o, input, reference[0]);

  let best: BuiltQuant = q.build(q.defaultPlan);
  let fidelity = fdata.length ? await measureFidelity(best.bytes, fdata, reference, 'all', threads, metric) : null;
  let rangeNote = '';
  if (q.platform.reduceRange && fidelity && !q.sizeOnly) {
    // 7-bit weights rule out VPMADDUBSW saturation but cost precision; some models (PP-OCR det)
    // lose more to the missing bit than to rare saturation. Measure both with the real kernels.
    const full = q.build({ ...q.defaultPlan, reduceRange: false });
    const ff = await measureFidelity(full.bytes, fdata, reference, 'all', threads, metric);
    // argmax agreement ties often; the smooth loss breaks the tie
    if (ff.mean > fidelity.mean || (ff.mean === fidelity.mean && ff.loss < fidelity.loss)) {
      const beat = `full 8-bit weights (${judgeName(metric)} ${ff.mean.toFixed(4)}) beat 7-bit reduce-range (${fidelity.mean.toFixed(4)})`;
      rangeNote = `${beat} on this data, saturation notwithstanding`;
      best = full;
      fidelity = ff;
    } else {
      rangeNote = `7-bit reduce-range weights (${judgeName(metric)} ${fidelity.mean.toFixed(4)}) kept over full 8-bit (${ff.mean.toFixed(4)})`;
    }
  }
  let fallback: QuantizeReport['fallback'] = null;
  // written `!(>=)` so that a NaN figure falls back too (issue 20: NaN < floor is false)
  if (o.minFidelity !== undefined && fidelity && !(fidelity.mean >= o.minFidelity) && o.mode !== 'fp16') {
    // weighted nodes (their weights stay float) and, in static mode, every quantized activation
    const units = best.layers.filter((l) => l.int8 && (o.mode !== 'static' || l.kind === 'weighted')).map((l) => nodeUnit(l.node));
    if (o.mode === 'static')
      for (const n of best.model.graph.nodes)
        if (n.opType === 'QuantizeLinear' && !best.model.graph.constant(n.inputs[0]!)) units.push(tensorUnit(n.inputs[0]!));
    const reduceRange = best.plan.reduceRange;
    const fb = await fallbackToFloat(units, (float) => q.build({ float, reduceRange }), fdata, reference, {
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
  reference = []; // release
  const report = await q.report(best);
  // assigned into the pass's report, so its fields keep their order in the JSON output
  if (rangeNote) report.platform.why = `${report.platform.why}; ${rangeNote}`;
  report.fallback = fallback;
  report.fidelity = fidelity;
  report.minFidelity = o.minFidelity ?? null;
  return { model: best.model, bytes: best.bytes, floatModel: parseModel(q.floatBytes), floatBytes: q.floatBytes, report };
}
