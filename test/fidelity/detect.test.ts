// The 'detect' task on a generated box detector (devkit/detector.ts) run by the runner on real
// photographs: known answers (the model itself scores 1, a model that detects nothing 0, every
// box moved sideways scores what a hand count of IoUs says), an int8 copy in between, and the
// same figures whichever layout the detector is exported in.
import t from 'tap';
import * as ort from 'onnxruntime-node';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  detectorModel,
  DETECTOR_LAYOUTS,
  DETECTOR_SPEC,
  writeDetectorFixture,
  type DetectorLayout,
  type DetectorOpts,
} from '../../devkit/detector.js';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';
import { decodeImage, IMAGENET, nchwSpec, preprocessImage } from '../../src/data/image.js';
import { inputShapes, modelInputs } from '../../src/data/model-inputs.js';
import { loadInputSet } from '../../src/data/inputs.js';
import { syntheticArray } from '../../src/data/synthetic.js';
import { rng } from '../../src/util/rng.js';
import type { Sample } from '../../src/data/inputs.js';
import { DETECT, DETECT_TASK } from '../../src/fidelity/detect.js';
import { decodeDetections, recogniseDetector } from '../../src/fidelity/detect-layouts.js';
import { iou, type Box } from '../../src/fidelity/boxes.js';
import type { Outputs } from '../../src/fidelity/compare.js';
import type { Model } from '../../src/ir/model.js';
import { ModelRunner } from '../../src/runtime/runner.js';
import { quantizeModel } from '../../src/fit/quantize/plan.js';
import { loadModel, serializeModel } from '../../src/onnx/index.js';

const IMAGES = join(ROOT, 'test/fixtures/images');
const samples: Sample[] = readdirSync(IMAGES)
  .filter((f) => f.endsWith('.png'))
  .sort()
  .map((f) => ({ images: preprocessImage(decodeImage(join(IMAGES, f)), DETECTOR_SPEC) }));

async function run(model: Model | Uint8Array): Promise<Outputs[]> {
  const r = model instanceof Uint8Array ? await ModelRunner.fromBytes(model) : await ModelRunner.create(model);
  try {
    const out: Outputs[] = [];
    for (const s of samples)
      out.push(Object.fromEntries([...(await r.run(s))].map(([n, a]) => [n, { dims: a.shape, data: Float32Array.from(a.data) }])));
    return out;
  } finally {
    await r.release();
  }
}

const outputsOf = (layout: DetectorLayout, o: DetectorOpts = {}) => run(detectorModel(layout, o));

/** Figures of the task over all samples: statistics summed, as every caller pools them. */
function judge(ref: readonly Outputs[], got: readonly Outputs[]) {
  let sum: number[] = [];
  ref.forEach((r, i) => {
    const s = DETECT_TASK.stats(r, got[i]!);
    sum = s.map((v, j) => v + (sum[j] ?? 0));
  });
  return DETECT_TASK.figures(sum);
}

const truthOf = (o: Outputs): Box[] => decodeDetections(o, recogniseDetector(o, true)!, DETECT.refScore);

t.test('the fixture is a detector: recognised in each layout, a handful of boxes on real photographs', async (t) => {
  const expect = { yolov8: 'yolov8', yolov5: 'yolov5', ssd: 'ssd', nms: 'split' } as const;
  for (const layout of DETECTOR_LAYOUTS) {
    const outs = await outputsOf(layout);
    t.equal(recogniseDetector(outs[0]!, true)?.layout, expect[layout], `${layout}: auto-detected`);
    t.ok(DETECT_TASK.applies(outs[0]!), `${layout}: the task applies`);
    const counts = outs.map((o) => truthOf(o).length);
    const total = counts.reduce((a, b) => a + b, 0);
    t.ok(total >= 20 && Math.max(...counts) <= 60, `${layout}: ${counts.join(', ')} boxes per image`);
    t.ok(
      counts.some((c) => c === 0),
      `${layout}: an image without boxes (${counts.join(', ')})`,
    );
    const classes = new Set(outs.flatMap((o) => truthOf(o).map((b) => b.cls)));
    t.equal(classes.size, 3, `${layout}: all three classes occur`);
    const r = await ModelRunner.create(detectorModel(layout));
    const grey = await r.run({ images: { dtype: 'float32', shape: [1, 3, 128, 128], data: new Float32Array(3 * 128 * 128).fill(0.5) } });
    await r.release();
    const g: Outputs = Object.fromEntries([...grey].map(([n, a]) => [n, { dims: a.shape, data: a.data }]));
    t.same(decodeDetections(g, recogniseDetector(outs[0]!, true)!, DETECT.rankScore), [], `${layout}: nothing on a flat grey`);
  }
});

t.test('one network, one answer: every layout decodes to the same confident boxes', async (t) => {
  const key = (b: Box) => [b.x0, b.y0, b.x1, b.y1, b.score].map((v) => v.toFixed(3)).join(' ') + ` c${b.cls}`;
  const sorted = (o: Outputs) => truthOf(o).map(key).sort();
  const base = (await outputsOf('yolov8')).map(sorted);
  for (const layout of ['yolov5', 'ssd', 'nms'] as const) {
    const other = (await outputsOf(layout)).map(sorted);
    // the NMS export scores every class of an anchor, YOLO only its best; above 0.25 no anchor here has two
    t.same(other, base, `${layout} = yolov8`);
  }
});

t.test('identical model: F1 and mAP exactly 1, in every layout', async (t) => {
  for (const layout of DETECTOR_LAYOUTS) {
    const ref = await outputsOf(layout);
    const f = judge(ref, ref);
    t.equal(f.value, 1, `${layout}: F1`);
    t.equal(f.mAP50, 1, `${layout}: mAP@0.5`);
    t.equal(f.classes, 3);
    t.ok(f.refBoxes! > 0);
  }
});

t.test('a model that detects nothing: F1 and mAP 0', async (t) => {
  for (const layout of DETECTOR_LAYOUTS) {
    const f = judge(await outputsOf(layout), await outputsOf(layout, { silent: true }));
    t.equal(f.value, 0, `${layout}: F1`);
    t.equal(f.recall, 0);
    t.equal(f.mAP50, 0, `${layout}: mAP@0.5`);
  }
});

t.test('one class scored lower: F1 is the share of boxes still over 0.25 (hand count); mAP still 1, as the ranking is kept', async (t) => {
  const by = 1.2;
  for (const layout of DETECTOR_LAYOUTS) {
    const ref = await outputsOf(layout);
    const got = await outputsOf(layout, { dimClass: { cls: 0, by } });
    // hand count: a class-0 box of score s now scores sigmoid(logit(s) - by)
    let keep = 0,
      all = 0;
    for (const o of ref)
      for (const b of truthOf(o)) {
        all++;
        if (b.cls !== 0) {
          keep++;
          continue;
        }
        const now = 1 / (1 + Math.exp(-(Math.log(b.score / (1 - b.score)) - by)));
        t.ok(Math.abs(now - DETECT.refScore) > 0.005, `no box sits on the 0.25 edge (${now.toFixed(4)})`);
        if (now >= DETECT.refScore) keep++;
      }
    t.ok(keep > 0 && keep < all, `${layout}: ${keep} of ${all} boxes still over 0.25`);
    const f = judge(ref, got);
    t.equal(f.precision, 1, `${layout}: what is found is right`);
    t.equal(f.recall, keep / all, `${layout}: recall`);
    t.equal(f.value, (2 * keep) / (all + keep), `${layout}: F1 ${f.value}`);
    t.equal(f.mAP50, 1, `${layout}: mAP@0.5 ranks, and the ranking did not change`);
  }
});

t.test('every box moved 18 px sideways: F1 and mAP strictly between 0 and 1, precision = recall', async (t) => {
  const dx = 18;
  for (const layout of DETECTOR_LAYOUTS) {
    const ref = await outputsOf(layout);
    const f = judge(ref, await outputsOf(layout, { shiftX: dx }));
    // a box w wide matches itself moved only when (w - dx) / (w + dx) >= 0.5; some land on a
    // neighbour of their class instead, so this is a lower bound on the matches
    const boxes = ref.flatMap(truthOf);
    const own = boxes.filter((b) => iou(b, { ...b, x0: b.x0 + dx, x1: b.x1 + dx }) >= 0.5).length;
    t.ok(f.value > 0 && f.value < 1, `${layout}: F1 ${f.value}`);
    t.ok(f.value >= own / boxes.length, `${layout}: at least the ${own} of ${boxes.length} boxes that overlap themselves`);
    // scores do not move, so the candidate reports as many boxes as the reference: tp + fp = tp + fn
    t.equal(f.precision, f.recall, `${layout}: precision = recall`);
    t.ok(f.mAP50! > 0 && f.mAP50! < 1, `${layout}: mAP@0.5 ${f.mAP50}`);
  }
});

t.test('int8 copy (static quantization on the same photographs): between nothing and the original, in each raw layout', async (t) => {
  const data = samples.map((s) => ({ images: new ort.Tensor('float32', s.images!.data as Float32Array, s.images!.shape) }));
  // not 'nms': quantizeModel judges its plans by raw-output cosine, which needs the candidate's
  // outputs shaped as the reference's, and a built-in NMS keeps a different number of boxes
  for (const layout of ['yolov8', 'yolov5', 'ssd'] as const) {
    const model = detectorModel(layout);
    const { bytes, report } = await quantizeModel(model, { mode: 'static', data });
    t.ok(
      (report.runtimeOps.QLinearConv ?? 0) + (report.runtimeOps.ConvInteger ?? 0) >= 1,
      `${layout}: int8 convs (${JSON.stringify(report.runtimeOps)})`,
    );
    t.not(Buffer.compare(Buffer.from(bytes), Buffer.from(serializeModel(model))), 0, 'a different model');
    const f = judge(await run(model), await run(bytes));
    t.comment(
      `${layout} int8: F1 ${f.value.toFixed(4)} P ${f.precision!.toFixed(4)} R ${f.recall!.toFixed(4)} mAP@0.5 ${f.mAP50!.toFixed(4)}`,
    );
    t.ok(f.value > 0.5 && f.value < 1, `${layout}: F1 ${f.value}`);
    t.ok(f.mAP50! > 0.5 && f.mAP50! < 1, `${layout}: mAP@0.5 ${f.mAP50}`);
  }
});

t.test('real models of other tasks are never auto-detected as box detectors', async (t) => {
  const photo = decodeImage(join(IMAGES, 'text.png'));
  const image = (h: number, w: number) => preprocessImage(photo, nchwSpec(h, w, 3, IMAGENET));
  const real: [string, Model, Sample][] = [
    ['PP-OCR det', loadModel(OCR_MODELS.det.file), { x: image(320, 320) }],
    ['PP-OCR rec', loadModel(OCR_MODELS.rec.file), { x: image(48, 320) }],
    ['PP-OCR cls', loadModel(OCR_MODELS.cls.file), { x: image(48, 192) }],
  ];
  for (const name of ['mnist-cnn']) {
    const m = loadModel(join(ROOT, `models/${name}.onnx`));
    real.push([name, m, synthetic(m)]);
  }
  for (const name of ['resnet', 'mobilenetv3', 'lstm', 'transformer']) {
    const m = loadModel(join(ROOT, `test/fixtures/zoo/${name}-op17.onnx`));
    real.push([name, m, synthetic(m)]);
  }
  for (const [name, model, sample] of real) {
    const r = await ModelRunner.create(model);
    try {
      const out = await r.run(sample);
      const outs: Outputs = Object.fromEntries([...out].map(([n, a]) => [n, { dims: a.shape, data: a.data }]));
      const dims = Object.values(outs).map((o) => `[${o.dims.join(', ')}]`);
      t.notOk(DETECT_TASK.applies(outs), `${name} ${dims.join(' ')}: not a detector`);
    } finally {
      await r.release();
    }
  }
});

/** A seeded sample for a model whose inputs have static shapes (a free batch dim -> 1). */
function synthetic(m: Model): Sample {
  const next = rng(7);
  const shapes = inputShapes(m);
  return Object.fromEntries([...shapes].map(([name, shape]) => [name, syntheticArray('float32', shape, next)]));
}

t.test('the fixture on disk, read as eval reads it (image folder + preprocess.json, models from files): same known answers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-detector-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = writeDetectorFixture(dir);
  for (const layout of DETECTOR_LAYOUTS) {
    const m = files.models[layout];
    const ref = loadModel(m.ref);
    const set = loadInputSet(files.images, modelInputs(ref));
    t.equal(set.samples.length, samples.length, `${layout}: every photograph`);
    const outs = async (path: string): Promise<Outputs[]> => {
      const r = await ModelRunner.create(loadModel(path));
      try {
        const out: Outputs[] = [];
        for (const s of set.samples)
          out.push(Object.fromEntries([...(await r.run(s))].map(([n, a]) => [n, { dims: a.shape, data: a.data }])));
        return out;
      } finally {
        await r.release();
      }
    };
    const base = await outs(m.ref);
    t.ok(
      base.every((o) => DETECT_TASK.applies(o)),
      `${layout}: auto-detected on every sample`,
    );
    t.same([judge(base, base).value, judge(base, base).mAP50], [1, 1], `${layout}: itself`);
    t.same([judge(base, await outs(m.silent)).value, judge(base, await outs(m.silent)).mAP50], [0, 0], `${layout}: silent`);
    const dimmed = judge(base, await outs(m.dimmed));
    t.equal(
      dimmed.value,
      judge(await outputsOf(layout), await outputsOf(layout, { dimClass: { cls: 0, by: 1.2 } })).value,
      `${layout}: dimmed as in memory`,
    );
    t.ok(dimmed.value > 0 && dimmed.value < 1);
  }
});
