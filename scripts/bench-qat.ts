// Benchmark of quantize --mode qat against static int8 on PP-OCRv4 det and rec (issue 18): both
// judged against the float original on held-out images QAT never trained on, timed side by side
// (interleaved runs, medians, one process), and the op types onnxruntime runs.
//   node dist/scripts/bench-qat.js [det] [rec] [--minutes N] [--features a,b|none] [--feature-weight W] [--lr X] [--lsq [--scale-lr X]] [--method M] [--train-set] [--bias-units int32|output] [--batch N] [--crop N] [--runs N] [--snapshots] [--ema D] [--freeze-stride N] [--loss map|bce|mse] [--hinge-weight W] [--save DIR]
// det: trains on assets/calib/det/calibrate (random --crop square crops; default quantizeQat's own, 192 at 640), judged on
// assets/calib/det/judge at 640x640: map cosine and text-box F1; --train-set adds assets/calib/det/train
// (72 rendered images) to the training rows; --method picks the static start's calibration. rec: trains on recSets' calibration
// lines, judged on its held-out lines: text agreement (1 - CER of greedy CTC decode) and per-step argmax.
import { kernelsLine } from '../src/passes/train/nchwc.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, serializeModel } from '../src/onnx/index.js';
import { loadInputSet, type Sample } from '../src/data/inputs.js';
import type { NdData } from '../src/data/ndarray.js';
import { modelInputs, openSession, runtimeOps, toFeeds } from '../src/runtime/runner.js';
import { describeJudged } from '../src/fidelity/index.js';
import { ctcGreedy, editDistance } from '../src/fidelity/task-ctc.js';
import { quantizeQat, QAT_DEFAULT_LR, QAT_SCALE_LR_FACTOR, type QatResult } from '../src/passes/quantize/qat-train.js';
import type { EvaluatedWeights, TrainSpec } from '../src/passes/train/types.js';
import { copyWeights } from '../src/passes/train/train.js';
import { augmenter } from '../src/data/augment.js';
import { MAP_LOSS } from '../src/passes/train/distill.js';
import type { CalibMethod } from '../src/passes/quantize/index.js';
import type { BiasUnits } from '../src/passes/quantize/qat.js';
import { OCR_FIT_SETS, OCR_MODELS, ROOT } from '../devkit/paths.js';
import { recSets, stepAgreement, REC_CLASSES, REC_DIMS } from '../devkit/ocr-data.js';
import { interleavedMedians } from './interleave.js';
import { firstOutputs, judgeDetMaps } from '../devkit/outputs.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: number): number => (argv.includes(k) ? Number(argv[argv.indexOf(k) + 1]) : d);
const MINUTES = opt('--minutes', 4);
const LR = opt('--lr', QAT_DEFAULT_LR);
// det: unset, the library's defaults (quantizeQat's crops and their batch: what the fit and the CLI run); rec: batch 4
const BATCH = argv.includes('--batch') ? opt('--batch', 4) : undefined;
const CROP = argv.includes('--crop') ? opt('--crop', 192) : undefined;
const RUNS = opt('--runs', 15);
const LSQ = argv.includes('--lsq');
// --scale-lr X: the LSQ factors' learning rate as a share of --lr (default quantizeQat's QAT_SCALE_LR_FACTOR)
const SCALE_LR = argv.includes('--scale-lr') ? opt('--scale-lr', 1) : undefined;
const TRAIN_SET = argv.includes('--train-set');
// --features a,b|none: intermediate tensors the student matches to the original's (QatOptions.features; default
// quantizeQat's own, the maps the head reads); --feature-weight W their share of the loss at the start
const FEATURES_ARG = argv.includes('--features') ? argv[argv.indexOf('--features') + 1]! : undefined;
const FEATURES = FEATURES_ARG === undefined ? undefined : FEATURES_ARG === 'none' ? false : FEATURES_ARG.split(',');
const FEATURE_WEIGHT = argv.includes('--feature-weight') ? opt('--feature-weight', 1) : undefined;
// --float-input: the static start (and so QAT) leaves the model's input float (its first convs run in float)
const FLOAT_INPUT = argv.includes('--float-input');
// biases in int32 steps (qat.ts BiasUnits) unless --bias-units output: on det and rec int32 judged better
const BIAS_UNITS = argv.includes('--bias-units') ? (argv[argv.indexOf('--bias-units') + 1] as BiasUnits) : undefined;
const METHOD = argv.includes('--method') ? (argv[argv.indexOf('--method') + 1] as CalibMethod) : undefined;
// det: keep the trained values of every held-out evaluation and judge each, exported to int8, on the judge images
const SNAPSHOTS = argv.includes('--snapshots');
// --freeze-stride N: TrainSpec.freezeStride (0 trains every layer; default the trainer's own, freeze.ts)
const FREEZE = argv.includes('--freeze-stride') ? opt('--freeze-stride', 0) : undefined;
// --ema D: judge and keep a moving average of the trained values (quantizeQat's ema, TrainSpec.ema)
const EMA = argv.includes('--ema') ? opt('--ema', 0.995) : undefined;
// det: --loss map is distillation's MAP_LOSS (BCE plus the hinge at the mask threshold), bce / mse without the hinge;
// unset, quantizeQat's own ('auto': MSE on a probability map). --hinge-weight W weighs map's hinge.
const LOSS_ARG = argv.includes('--loss') ? argv[argv.indexOf('--loss') + 1] : undefined;
if (LOSS_ARG !== undefined && !['map', 'bce', 'mse'].includes(LOSS_ARG)) throw new Error(`--loss: map, bce or mse, not ${LOSS_ARG}`);
const DET_LOSS: TrainSpec['loss'] =
  LOSS_ARG === 'map'
    ? { ...MAP_LOSS, ...(argv.includes('--hinge-weight') ? { hingeWeight: opt('--hinge-weight', 1) } : {}) }
    : (LOSS_ARG as 'bce' | 'mse' | undefined);
// det: write the static and the QAT int8 models to DIR/det-static.onnx and DIR/det-qat.onnx
const SAVE = argv.includes('--save') ? argv[argv.indexOf('--save') + 1] : undefined;
const want = (k: string): boolean => !argv.some((a) => ['det', 'rec'].includes(a)) || argv.includes(k);

async function latency(r: QatResult, feeds: ort.InferenceSession.FeedsType): Promise<{ staticMs: number; qatMs: number }> {
  // idle pools sleep (as compareLatency's): neither session's next run pays for the other's spinning
  const a = await openSession(r.staticBytes, { level: 'all', threads: 2, spinning: false });
  const b = await openSession(r.bytes, { level: 'all', threads: 2, spinning: false });
  const [staticMs, qatMs] = await interleavedMedians([a, b], feeds, RUNS);
  await a.release();
  await b.release();
  return { staticMs: staticMs!, qatMs: qatMs! };
}

const progress: TrainSpec['onProgress'] = (p) => {
  if (p.heldOut !== undefined)
    console.log(
      `  step ${p.step} ${p.seconds.toFixed(0)} s loss ${p.loss.toExponential(3)} held-out ${p.heldOut.toExponential(3)}` +
        `${p.score !== undefined ? ` score ${p.score.toFixed(4)}` : ''}${p.finer !== undefined ? ` finer ${p.finer.toFixed(4)}` : ''}`,
    );
};

function trainingLine(r: QatResult): string {
  const t = r.report.training;
  return (
    `training: ${t.steps} steps in ${t.seconds} s, step ${t.stepMs} ms vs inference of the batch ${t.forwardMs} ms ` +
    `(${(t.stepMs / t.forwardMs).toFixed(2)}x), batch ${t.batch}${r.report.crop ? ` of ${r.report.crop.join('x')} crops` : ''}, peak RSS ${t.peakRssMb} MB, convs ${kernelsLine(t.kernels)}, ` +
    `${t.frozen ? `${t.frozen.layers.length} stem layers frozen (${t.frozen.weights} weights, stride ${t.frozen.stride})` : 'every layer trained'}, held-out loss ` +
    `${t.heldOutBefore.toExponential(3)} -> ${t.heldOutAfter.toExponential(3)}` +
    `${t.judged ? `, held-out ${describeJudged(t.judged)}` : ''}` +
    ` (improved: ${t.improved}, best step ${t.bestStep}), lr ${t.lr}`
  );
}

async function det(): Promise<void> {
  const m = loadModel(OCR_MODELS.det.file);
  const inputs = modelInputs(m);
  const calib = loadInputSet(OCR_FIT_SETS.det.calibrate, inputs).samples;
  const judge = loadInputSet(OCR_FIT_SETS.det.judge, inputs).samples;
  const extra = TRAIN_SET ? loadInputSet(join(ROOT, 'assets/calib/det/train'), inputs).samples : [];
  console.log(
    `det: ${calib.length} calibration/training images${extra.length ? ` + ${extra.length} training images` : ''} (crops ${CROP ?? 'default'}), ${judge.length} judge images at 640x640`,
  );
  const snaps: { step: number; heldOut: number; score?: number; finer?: number; values: Map<string, Float32Array> }[] = [];
  const r = await quantizeQat(m, {
    ...(SNAPSHOTS
      ? {
          onEvaluation: (e: EvaluatedWeights) => snaps.push({ ...e, values: copyWeights(e.weights) }),
        }
      : {}),
    samples: calib,
    extraTrain: extra,
    biasUnits: BIAS_UNITS ?? 'int32',
    // the weights kept are picked by the task's metric on the held-out images, as quantize --mode qat does (--task auto)
    task: 'auto',
    minutes: MINUTES,
    lr: LR,
    scales: LSQ,
    scaleLr: SCALE_LR,
    method: METHOD,
    ema: EMA,
    ...(FREEZE !== undefined ? { freezeStride: FREEZE } : {}),
    ...(FLOAT_INPUT ? { floatTensors: m.graph.inputs.map((v) => v.name) } : {}),
    ...(DET_LOSS !== undefined ? { loss: DET_LOSS } : {}),
    ...(FEATURES !== undefined ? { features: FEATURES } : {}),
    ...(FEATURE_WEIGHT !== undefined ? { featureWeight: FEATURE_WEIGHT } : {}),
    ...(BATCH !== undefined ? { batch: BATCH } : {}),
    // --crop N: square crops of N (no flips, as quantizeQat's default); else quantizeQat's own
    ...(CROP !== undefined ? { augment: augmenter({ crop: [CROP, CROP] }) } : {}),
    onProgress: progress,
  });
  console.log(trainingLine(r));
  if (r.report.features.length) console.log(`features matched: ${JSON.stringify(r.report.features)}`);
  const ref = await firstOutputs(r.floatBytes, judge);
  const judgeOf = async (bytes: Uint8Array) => {
    const j = judgeDetMaps(ref, await firstOutputs(bytes, judge));
    return { cos: j.cos, f: j.figures };
  };
  for (const [name, bytes] of [
    ['static int8', r.staticBytes],
    ['qat int8', r.bytes],
  ] as const) {
    const { cos, f } = await judgeOf(bytes);
    console.log(
      `det ${name}: map cosine mean ${(cos.reduce((a, b) => a + b, 0) / cos.length).toFixed(4)} min ${Math.min(...cos).toFixed(4)}, ` +
        `box F1 ${f.boxF1!.toFixed(4)} (precision ${f.precision!.toFixed(3)}, recall ${f.recall!.toFixed(3)}, ${f.refBoxes} reference boxes)`,
    );
    console.log(`  per image: ${cos.map((c) => c.toFixed(3)).join(' ')}`);
  }
  for (const sn of snaps) {
    const { cos, f } = await judgeOf(serializeModel(r.exportWith(sn.values)));
    console.log(
      `  snapshot step ${sn.step}: held-out ${sn.heldOut.toExponential(3)}${sn.score !== undefined ? ` score ${sn.score.toFixed(4)}` : ''}${sn.finer !== undefined ? ` finer ${sn.finer.toFixed(4)}` : ''}; ` +
        `judge map cosine mean ${(cos.reduce((a, b) => a + b, 0) / cos.length).toFixed(4)} min ${Math.min(...cos).toFixed(4)}, box F1 ${f.boxF1!.toFixed(4)}`,
    );
  }
  const l = await latency(r, toFeeds(judge[0]!));
  console.log(
    `det latency at 640x640, 2 threads, ${RUNS} interleaved runs: static ${l.staticMs.toFixed(1)} ms, qat ${l.qatMs.toFixed(1)} ms (${(l.qatMs / l.staticMs).toFixed(3)}x)`,
  );
  console.log(`det ops static: ${JSON.stringify(await runtimeOps(r.staticBytes))}`);
  console.log(`det ops qat:    ${JSON.stringify(await runtimeOps(r.bytes))}`);
  if (SAVE) {
    mkdirSync(SAVE, { recursive: true });
    writeFileSync(join(SAVE, 'det-static.onnx'), r.staticBytes);
    writeFileSync(join(SAVE, 'det-qat.onnx'), r.bytes);
    console.log(`det models written to ${SAVE}`);
  }
}

async function rec(): Promise<void> {
  const m = loadModel(OCR_MODELS.rec.file);
  const name = modelInputs(m)[0]!.name;
  const sets = recSets(ROOT);
  const asSample = (d: Float32Array): Sample => ({ [name]: { dtype: 'float32', shape: [...REC_DIMS], data: d as NdData } });
  const calib = sets.calib.map(asSample);
  const held = sets.held.map(asSample);
  console.log(`rec: ${calib.length} calibration/training lines, ${held.length} held-out lines`);
  const r = await quantizeQat(m, {
    samples: calib,
    minutes: MINUTES,
    lr: LR,
    scales: LSQ,
    scaleLr: SCALE_LR,
    batch: BATCH ?? 4,
    biasUnits: BIAS_UNITS ?? 'int32',
    task: 'auto',
    onProgress: progress,
  });
  console.log(trainingLine(r));
  const ref = await firstOutputs(r.floatBytes, held);
  for (const [label, bytes] of [
    ['static int8', r.staticBytes],
    ['qat int8', r.bytes],
  ] as const) {
    const got = await firstOutputs(bytes, held);
    let errs = 0;
    let chars = 0;
    ref.forEach((x, i) => {
      const steps = x.dims[1]!;
      const a = ctcGreedy(x.data, 0, steps, REC_CLASSES);
      const b = ctcGreedy(got[i]!.data, 0, steps, REC_CLASSES);
      errs += editDistance(a, b);
      chars += a.length;
    });
    const st = stepAgreement(
      ref.map((x) => x.data),
      got.map((x) => x.data),
    );
    console.log(
      `rec ${label}: text agreement ${(1 - errs / chars).toFixed(4)} (${chars} characters), per-step argmax ${(st.agree / st.steps).toFixed(4)}`,
    );
  }
  const l = await latency(r, toFeeds(held[0]!));
  console.log(
    `rec latency, 2 threads, ${RUNS} interleaved runs: static ${l.staticMs.toFixed(2)} ms, qat ${l.qatMs.toFixed(2)} ms (${(l.qatMs / l.staticMs).toFixed(3)}x)`,
  );
  console.log(`rec ops qat: ${JSON.stringify(await runtimeOps(r.bytes))}`);
}

console.log(
  `bench-qat: ${MINUTES} min per model, lr ${LR}, batch ${BATCH ?? 'default (det: 4 on crops; rec: 4)'}, calibration ${METHOD ?? 'minmax'}${LSQ ? `, step sizes trained (LSQ, at ${SCALE_LR ?? QAT_SCALE_LR_FACTOR}x the lr)` : ''}; a shared 2-core box`,
);
if (want('det')) await det();
if (want('rec')) {
  try {
    await rec();
  } catch (e) {
    console.log(`rec: not trained: ${(e as Error).message.slice(0, 300)}`);
  }
}
