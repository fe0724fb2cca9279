// Peak RSS of det distillation under a training RAM budget (issue 18: "bound peak RSS when a RAM
// budget says so"), on this box:
//   node dist/scripts/bench-train-ram.js [--ram-mb 1024] [--batch 4] [--crop 320] [--minutes 1.5] [--threads 2]
// PP-OCRv4 det distilled from itself (the student a copy of the original: its activations, the
// largest a det student has, set the memory; the fidelity is not the point here) on random crops of
// the det calibrate images, with --ram-mb as TrainSpec.ramMb. Prints the trainer's RAM plan (rows
// per onnxruntime run, accumulation, a step's fitted memory, the peak it predicted) and the
// process's measured peak RSS (getrusage maxRSS, which includes everything the process held).
import { parseArgs } from 'node:util';
import { OCR_FIT_SETS, OCR_MODELS } from '../devkit/paths.js';
import { augmenter } from '../src/data/augment.js';
import { loadInputSet } from '../src/data/inputs.js';
import { cloneModel } from '../src/ir/model.js';
import { loadModel } from '../src/onnx/index.js';
import { normalize } from '../src/passes/normalize.js';
import { distill } from '../src/passes/train/distill.js';
import { modelInputs } from '../src/runtime/runner.js';

const { values: args } = parseArgs({
  options: {
    'ram-mb': { type: 'string', default: '1024' },
    batch: { type: 'string', default: '4' },
    crop: { type: 'string', default: '320' },
    minutes: { type: 'string', default: '1.5' },
    threads: { type: 'string', default: '2' },
  },
});

const shapes = new Map([['x', [...OCR_MODELS.det.shape]]]);
const original = normalize(loadModel(OCR_MODELS.det.file));
const samples = loadInputSet(OCR_FIT_SETS.det.calibrate, modelInputs(original), { shapes }).samples;
const crop = Number(args.crop);
const ramMb = Number(args['ram-mb']);
const startMb = process.memoryUsage().rss / 2 ** 20;
const d = await distill(cloneModel(original), original, {
  minutes: Number(args.minutes),
  samples,
  threads: Number(args.threads),
  batch: Number(args.batch),
  ramMb,
  augment: augmenter({ crop: [crop, crop], flip: true, brightness: 0.1 }),
});
const t = d.training;
const peakMb = process.resourceUsage().maxRSS / 1024;
console.log(
  `det distill, budget ${ramMb} MB, batch ${t.batch} of ${crop}x${crop} crops: ${t.microBatch} rows per run x ${t.batch / t.microBatch}; ` +
    `a step fitted as ${t.ram?.fixedMb} MB + ${t.ram?.perRowMb} MB per row, predicted peak ${t.ram?.predictedPeakMb} MB; ` +
    `measured peak RSS ${peakMb.toFixed(0)} MB (process at start ${startMb.toFixed(0)} MB; trainer's own max ${t.peakRssMb} MB); ` +
    `${t.steps} steps in ${t.seconds} s, step ${t.stepMs} ms`,
);
