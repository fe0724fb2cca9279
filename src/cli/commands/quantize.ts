// edgefit quantize <in.onnx> -o <out.onnx> --mode static|dynamic|fp16|weights|qat ...: thin; the
// work is in src/passes/quantize/ (qat: qat-train.ts).
import type { CommandModule } from 'yargs';
import { EdgefitError } from '../../errors.js';
import { loadModel, saveModel } from '../../onnx/index.js';
import { checkWritable } from '../../util/fs.js';
import { loadInputSet } from '../../data/inputs.js';
import { modelInputs, toFeeds } from '../../runtime/runner.js';
import { decideKeepFloat } from '../../fit/keep-float.js';
import { trainingFolder } from '../../fit/calibration.js';
import { compactSamples } from '../../data/compact.js';
import { quantizeModel } from '../../fit/quantize/plan.js';
import {
  CALIB_METHODS,
  FIDELITY_METRICS,
  QUANT_MODES,
  QAT_DEFAULT_LR,
  quantizeQat,
  WEIGHT_ROUNDINGS,
  ort,
  type CalibMethod,
  type FidelityMetric,
  type QuantMode,
  type QuantizeReport,
  type QatReport,
  type WeightRounding,
} from '../../passes/quantize/index.js';
import type { TrainProgress } from '../../passes/train/types.js';
import { frozenNote } from '../../passes/train/freeze.js';
import { freezeStrideHelp, freezeStrideOption, parseShapes, printJson, trainRamOption } from '../output.js';
import { parseTask, TASK_NAMES } from '../../fidelity/tasks.js';
import { describeJudged } from '../../fidelity/task-compare.js';

const METRIC_LABELS: Readonly<Record<string, string>> = {
  argmax: 'per-position argmax agreement',
  cosine: 'cosine',
  top1: 'top-1 agreement',
  boxF1: 'box F1',
  textAgreement: 'text agreement (1 - CER)',
};

interface Args {
  model: string;
  output: string;
  mode: QuantMode | 'qat';
  calib?: string;
  'train-minutes'?: number;
  'train-ram-mb'?: number;
  'train-freeze-stride'?: number;
  'train-data'?: string;
  'train-scales': boolean;
  lr: number;
  method: CalibMethod;
  'per-channel': boolean;
  'min-fidelity'?: number;
  'fidelity-metric'?: FidelityMetric;
  task: string;
  'weight-rounding': WeightRounding;
  equalize: boolean;
  shape?: string[];
  json?: boolean;
  threads: number;
  force?: boolean;
}

/** `qat`: the lines follow QAT's own (qatSummary), whose held-out line is the fidelity figure. */
function summary(r: QuantizeReport, out: string, qat = false): string {
  const lines = [
    `${qat ? 'quantization-aware training from static' : r.mode} quantization${r.method ? ` (${r.method})` : ''} -> ${out}`,
    `size ${r.sizes.before} -> ${r.sizes.after} bytes (${(r.sizes.ratio * 100).toFixed(1)}%)`,
    `layers: ${r.layers.quantized} quantized, ${r.layers.float} left in float`,
    ...r.layers.details
      .filter((l) => !l.int8 && l.why)
      .slice(0, 10)
      .map((l) => `  float: ${l.op} ${l.node}: ${l.why}`),
    ...(r.weightRounding
      ? [
          `weights: ${r.weightRounding.method} rounding over ${r.weightRounding.layers} layers` +
            (r.weightRounding.errorVsNearest !== null
              ? `, layer output error ${r.weightRounding.errorVsNearest.toFixed(3)}x round-to-nearest's on the calibration data`
              : ''),
        ]
      : []),
    ...(r.equalized
      ? [`equalized: ${r.equalized.sites} conv -> conv sites (widest max/median channel range before: ${r.equalized.widest.toFixed(1)})`]
      : []),
    ...(r.floatTensors.length
      ? [
          `activations left float for fidelity: ${r.floatTensors.length} (${r.floatTensors.slice(0, 8).join(', ')}${r.floatTensors.length > 8 ? ', ...' : ''})`,
        ]
      : []),
    r.fidelity
      ? `fidelity: ${METRIC_LABELS[r.fidelity.metric] ?? r.fidelity.metric}` +
        (r.fidelity.metric === 'cosine' || r.fidelity.metric === 'argmax'
          ? ` mean ${r.fidelity.mean.toFixed(5)}, min ${r.fidelity.min.toFixed(5)} over ${r.fidelity.samples} samples`
          : ` ${r.fidelity.mean.toFixed(5)} over ${r.fidelity.samples} samples pooled, worst sample ${r.fidelity.min.toFixed(5)}`)
      : qat
        ? 'fidelity: the held-out line above (the calibration samples QAT did not train on)'
        : 'fidelity: not measured (no --calib data)',
    `platform: ${r.platform.why}`,
    ...(r.opset ? [`opset: ${r.opset.why}`] : []),
    `decision: ${r.decision}: ${r.note}`,
    `onnxruntime runs: ${Object.entries(r.runtimeOps)
      .map(([k, v]) => `${k} x${v}`)
      .join(', ')}`,
  ];
  return lines.join('\n') + '\n';
}

export const command: CommandModule<object, Args> = {
  command: 'quantize <model>',
  describe: 'int8 quantization (static QDQ or dynamic) or fp16 weight storage, with measured fidelity',
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'float ONNX model' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'where to write the quantized model' })
      .option('mode', {
        choices: [...QUANT_MODES, 'qat'] as const,
        demandOption: true,
        describe:
          'static (calibrated QDQ), dynamic (int8 MatMul/Gemm), fp16 or weights (size only: fp16 or int8 weight storage, float compute), ' +
          'qat (static int8, then trained against the float model on the --calib samples for --train-minutes; same QDQ form and kernels)',
      })
      .option('train-minutes', { type: 'number', describe: 'qat: training time budget in minutes (wall time on this box)' })
      .option('train-ram-mb', {
        type: 'number',
        describe: 'qat: peak RAM of training in MB (default: 60 % of free memory); the batch is split to fit',
      })
      .option('train-freeze-stride', { type: 'number', describe: `qat: ${freezeStrideHelp(0)}` })
      .option('train-data', {
        type: 'string',
        describe:
          "qat: images to train on, the --calib samples held out (default: a 'train' folder in or beside --calib when there is one, else --calib itself, a quarter held out)",
      })
      .option('train-scales', {
        type: 'boolean',
        default: false,
        describe:
          'qat: train the activation and weight step sizes too (LSQ, as factors of the calibrated steps), besides weights and biases; ' +
          'on PP-OCR det in 4 minutes it did worse than weights alone',
      })
      .option('lr', {
        type: 'number',
        default: QAT_DEFAULT_LR,
        describe: 'qat: peak Adam learning rate (weights and biases move in units of their quantization step)',
      })
      .option('calib', { type: 'string', describe: 'calibration data: folder of images (+ preprocess.json) or a float32 .npy [N, ...]' })
      .option('method', {
        choices: CALIB_METHODS,
        default: 'minmax' as CalibMethod,
        describe: 'activation range method for static mode (mse: least clipping + rounding error per tensor)',
      })
      .option('per-channel', {
        type: 'boolean',
        default: true,
        describe: 'per-output-channel weight scales (--no-per-channel for per tensor)',
      })
      .option('min-fidelity', {
        type: 'number',
        describe:
          "fidelity floor vs float (in the --task's metric, or --fidelity-metric); sensitive layers and activations stay float to meet it",
      })
      .option('fidelity-metric', {
        choices: FIDELITY_METRICS,
        describe:
          "judge by a raw metric instead of the task's: cosine of each output, or argmax: agreement of the per-position argmax over the last axis",
      })
      .option('task', {
        type: 'string',
        default: 'auto',
        describe: `what the model is for: auto or ${TASK_NAMES.join(', ')}; fidelity is judged by its metric (box F1 for text-det, text agreement for ctc ...)`,
      })
      .option('weight-rounding', {
        choices: WEIGHT_ROUNDINGS,
        default: 'adaround' as WeightRounding,
        describe:
          'static mode: how int8 weights are rounded: adaround (round up or down per weight to minimise ' +
          "each layer's output error on the calibration data, then bias correction; slower), bias (nearest + bias correction), nearest",
      })
      .option('equalize', {
        type: 'boolean',
        default: false,
        describe:
          'static mode: rescale channels between a conv and the convs reading it (exact in float) so one activation scale serves every channel; fully for depthwise readers',
      })
      .option('shape', { type: 'string', array: true, describe: 'input shape name=1x3x640x640 (needed for dynamic dims)' })
      .option('threads', { type: 'number', default: 2, describe: 'onnxruntime threads for calibration and measurement' })
      .option('force', { type: 'boolean', describe: 'write the quantized model even when int8 is not faster than float here' })
      .option('json', { type: 'boolean', describe: 'print the report as JSON' }) as never,
  handler: async (a) => {
    const mf = a['min-fidelity'];
    if (mf !== undefined && !(mf > 0 && mf <= 1)) throw new EdgefitError('USAGE', `--min-fidelity must be in (0, 1], got ${mf}`);
    if (!Number.isInteger(a.threads) || a.threads < 1) throw new EdgefitError('USAGE', `--threads must be a positive integer`);
    if (a.mode !== 'qat')
      for (const k of ['train-minutes', 'train-data', 'train-ram-mb', 'train-freeze-stride'] as const)
        if (a[k] !== undefined) throw new EdgefitError('USAGE', `--${k} is for --mode qat`);
    checkWritable(a.output); // before calibration, the fallback search or training
    const model = loadModel(a.model);
    const shapes = parseShapes(a.shape);
    if (a.mode === 'qat') return qat(a, model, shapes);
    let data: Record<string, ort.Tensor>[] | undefined;
    if (a.calib) {
      const set = loadInputSet(a.calib, modelInputs(model), { shapes, limit: 64 });
      data = set.samples.map(toFeeds);
    } else if (a.mode === 'static' || a.mode === 'weights') {
      throw new EdgefitError('USAGE', `${a.mode} quantization needs calibration data: --calib <folder of images | data.npy>`);
    }
    const {
      model: q,
      floatModel,
      bytes,
      floatBytes,
      report: made,
    } = await quantizeModel(model, {
      mode: a.mode,
      method: a.method,
      perChannel: a['per-channel'],
      minFidelity: mf,
      fidelityMetric: a['fidelity-metric'],
      task: parseTask(a.task),
      weightRounding: a['weight-rounding'],
      equalize: a.equalize,
      data,
      threads: a.threads,
    });
    // int8 that is not faster here is not worth its fidelity loss: write the float model, say so
    const report = await decideKeepFloat(made, { floatBytes, bytes }, data?.[0], { threads: a.threads });
    const keepFloat = report.decision === 'kept-float' && !a.force;
    saveModel(keepFloat ? floatModel : q, a.output);
    if (a.json) printJson({ input: a.model, output: a.output, written: keepFloat ? 'float' : a.mode, ...report });
    else process.stdout.write(summary(report, a.output));
  },
};

function progressLine(p: TrainProgress): string {
  return (
    `qat: step ${p.step}${p.maxSteps ? `/${p.maxSteps}` : ''}  ${p.seconds.toFixed(0)}/${p.budgetSeconds.toFixed(0)} s` +
    `  loss ${p.loss.toExponential(3)}${p.heldOut !== undefined ? `  held-out ${p.heldOut.toExponential(3)}` : ''}` +
    `${p.score !== undefined ? `  task score ${p.score.toFixed(4)}` : ''}${p.finer !== undefined ? `  finer ${p.finer.toFixed(4)}` : ''}\n`
  );
}

function qatSummary(r: QatReport, report: QuantizeReport, out: string): string {
  const t = r.training;
  const fid = (f: QatReport['fidelityQat']): string =>
    `cosine ${f.cosine.toFixed(5)}${f.top1Agreement !== null ? `, top-1 agreement ${f.top1Agreement.toFixed(4)}` : ''}${f.maskIoU !== null ? `, mask IoU ${f.maskIoU.toFixed(4)}` : ''}`;
  return (
    `qat: ${r.fakeQuant.weights} weights, ${r.fakeQuant.biases} biases` +
    `${r.fakeQuant.trainedScales ? `, ${r.fakeQuant.trainedScales} step sizes` : ''} trained on ${r.trainSamples} samples` +
    `${r.crop ? ` (${r.crop.join('x')} crops)` : ''}, ${r.heldOutSamples} held out` +
    `${r.features.length ? `; besides the outputs it matches the float model's ${r.features.length} maps the head reads (${r.features.map((f) => f.tensor).join(', ')})` : ''}\n` +
    `training: ${t.steps} steps in ${t.seconds.toFixed(0)} s (step ${t.stepMs.toFixed(0)} ms, inference of the batch ${t.forwardMs.toFixed(0)} ms), ` +
    `peak RSS ${t.peakRssMb} MB${frozenNote(t.frozen)}\n` +
    `held-out loss ${t.heldOutBefore.toExponential(3)} -> ${t.heldOutAfter.toExponential(3)}` +
    `${t.judged ? `, ${describeJudged(t.judged)}` : ''}` +
    `${t.improved ? ` (best at step ${t.bestStep})` : ' (no step beat static int8: its weights kept)'}\n` +
    `held-out vs float: static int8 ${fid(r.fidelityStatic)}; qat int8 ${fid(r.fidelityQat)}\n` +
    summary(report, out, true)
  );
}

/** --mode qat: the calibration samples train the static int8 model's weights (qat-train.ts). */
async function qat(a: Args, model: ReturnType<typeof loadModel>, shapes: Map<string, number[]>): Promise<void> {
  const minutes = a['train-minutes'];
  if (minutes === undefined || !(minutes > 0))
    throw new EdgefitError(
      'USAGE',
      `--mode qat needs --train-minutes N (a positive number of minutes)${minutes !== undefined ? `, got ${minutes}` : ''}`,
    );
  if (!a.calib) throw new EdgefitError('USAGE', 'qat needs calibration data to train on: --calib <folder of images | data.npy>');
  if (!(a.lr > 0)) throw new EdgefitError('USAGE', `--lr must be positive, got ${a.lr}`);
  const ramMb = trainRamOption(a['train-ram-mb']);
  const freezeStride = freezeStrideOption(a['train-freeze-stride']);
  const set = loadInputSet(a.calib, modelInputs(model), { shapes, limit: 64 });
  const trainData = a['train-data'] ?? trainingFolder(a.calib);
  // never calibrated on nor held out: they only add training rows (held as bytes, compact.ts)
  const extraTrain = trainData ? compactSamples(loadInputSet(trainData, modelInputs(model), { shapes }).samples) : undefined;
  let lastLine = 0;
  const r = await quantizeQat(model, {
    samples: set.samples,
    minutes,
    scales: a['train-scales'],
    lr: a.lr,
    method: a.method,
    weightRounding: a['weight-rounding'],
    equalize: a.equalize,
    threads: a.threads,
    ...(ramMb !== undefined ? { ramMb } : {}),
    ...(freezeStride !== undefined ? { freezeStride } : {}),
    ...(extraTrain ? { extraTrain } : {}),
    task: parseTask(a.task),
    shapes,
    onProgress: (p) => {
      // a line when the held-out loss is measured, else about every 10 s
      if (p.heldOut === undefined && p.seconds - lastLine < 10) return;
      lastLine = p.seconds;
      process.stderr.write(progressLine(p));
    },
  });
  const report = await decideKeepFloat(r.report.quantize, { floatBytes: r.floatBytes, bytes: r.bytes }, toFeeds(set.samples[0]!), {
    threads: a.threads,
  });
  const keepFloat = report.decision === 'kept-float' && !a.force;
  saveModel(keepFloat ? r.floatModel : r.model, a.output);
  if (a.json)
    printJson({
      input: a.model,
      output: a.output,
      written: keepFloat ? 'float' : 'qat',
      ...report,
      mode: 'qat',
      qat: { ...r.report, quantize: undefined },
    });
  else process.stdout.write(qatSummary(r.report, report, a.output));
}
