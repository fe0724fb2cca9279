// Task metrics as pure arithmetic (issue 16): text boxes cut from hand-drawn probability maps,
// greedy CTC decoding and edit distance, each task's known answers (identical -> 1, nothing
// found -> 0), and the task detected from real models' graphs (PP-OCR det/rec/cls, the MNIST
// CNN) and from generated fixtures.
import t from 'tap';
import { join } from 'node:path';
import { loadModel } from '../../src/onnx/index.js';
import {
  compareTask,
  ctcGreedy,
  describeFigures,
  detectTask,
  editDistance,
  parseTask,
  resolveTask,
  taskDef,
  textBoxes,
  TASKS,
  TASK_NAMES,
  type OutputTensor,
  type Outputs,
} from '../../src/fidelity/index.js';
import { ModelBuilder, FIXTURES } from '../../devkit/builder.js';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';
import { loadAgentConfig } from '../../src/config/agent.js';

const tensor = (dims: number[], data: ArrayLike<number>): OutputTensor => ({ dims, data: Float32Array.from(data) });

/** An h x w map of `bg` with filled rectangles [x0, y0, x1, y1) of value v. */
function map(h: number, w: number, rects: [number, number, number, number, number][], bg = 0.01): Float32Array {
  const m = new Float32Array(h * w).fill(bg);
  for (const [x0, y0, x1, y1, v] of rects) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = v;
  return m;
}

t.test("textBoxes: PP-OCR's boxes: 8-connected regions, minimum-area rectangles scored over their area, min sides, unclip", async (t) => {
  const m = map(20, 30, [
    [2, 2, 10, 6, 0.9], // a text box: pixel centres 2..9 x 2..5, a 7 x 3 rectangle
    [12, 2, 20, 6, 0.5], // above the binarisation threshold, below box_thresh: dropped
    [2, 9, 10, 12, 0.9], // 3 px high, 2 between pixel centres: below min_size, dropped
    [20, 10, 24, 14, 0.9], // these two touch at a corner: one 8-connected region, whose rectangle
    [24, 14, 28, 18, 0.9], // (along the diagonal) is half background: dropped; apart, each would be a box
  ]);
  const boxes = textBoxes(m, 0, 20, 30);
  t.equal(boxes.length, 1, 'the text box alone');
  // unclip: 7 x 3 grows by 21 x 1.5 / 20 = 1.575 on every side
  t.same(
    [boxes[0]!.x0, boxes[0]!.y0, boxes[0]!.x1, boxes[0]!.y1].map((v) => Number(v.toFixed(3))),
    [0.425, 0.425, 10.575, 6.575],
    'the rectangle through the pixel centres, grown by area x 1.5 / perimeter',
  );
  t.ok(Math.abs(boxes[0]!.score - 0.9) < 1e-6, 'score: the mean map value over the rectangle');
  const apart = map(20, 30, [
    [20, 10, 24, 14, 0.9],
    [25, 14, 29, 18, 0.9],
  ]);
  t.equal(textBoxes(apart, 0, 20, 30).length, 2, 'the two squares a pixel apart are two boxes');

  // an L: every pixel 0.9, but its rectangle is mostly background, so PP-OCR drops it
  const l = map(24, 24, [
    [2, 2, 20, 5, 0.9],
    [2, 2, 5, 20, 0.9],
  ]);
  t.same(textBoxes(l, 0, 24, 24), [], 'a region scored over its rectangle, not over its own pixels');

  // a slanted line of text: its rectangle turns with it, so the background beside it does not count
  const h = 40,
    w = 64;
  const slant = new Float32Array(h * w).fill(0.01);
  for (let x = 5; x < 56; x++) {
    const c = Math.round(10 + 0.35 * (x - 5));
    for (let y = c - 2; y <= c + 2; y++) slant[y * w + x] = 0.9;
  }
  const s = textBoxes(slant, 0, h, w);
  t.equal(s.length, 1, 'one slanted box');
  // the upright bounding box (x 5..55, y 8..29) averages (255 x 0.9 + 867 x 0.01) / 1122 = 0.21: dropped
  t.ok(s[0]!.score > 0.7, `scored along its slant: ${s[0]!.score.toFixed(3)}, kept`);
  t.ok(s[0]!.x0 < 5 && s[0]!.x1 > 55 && s[0]!.y0 < 8 && s[0]!.y1 > 29, 'its bounds cover the line');
  t.same(textBoxes(map(8, 8, []), 0, 8, 8), [], 'an empty map has no boxes');
  // a 640x640 map with many components stays fast (flood fill over typed arrays)
  const big = map(
    640,
    640,
    Array.from({ length: 200 }, (_, i) => [(i % 20) * 32, Math.floor(i / 20) * 64, (i % 20) * 32 + 24, Math.floor(i / 20) * 64 + 16, 0.95]),
  );
  const t0 = performance.now();
  t.equal(textBoxes(big, 0, 640, 640).length, 200);
  t.ok(performance.now() - t0 < 500, `640x640 map in ${(performance.now() - t0).toFixed(1)} ms`);
});

t.test('text-det: box precision/recall/F1 pooled over images; identical 1, empty 0', async (t) => {
  const ref = map(20, 30, [
    [2, 2, 10, 6, 0.9],
    [20, 10, 28, 18, 0.9],
  ]);
  const shifted = map(20, 30, [
    [3, 2, 11, 6, 0.9], // IoU 7/9: a match
    [12, 12, 16, 16, 0.9], // an extra box; the second reference box is missed
  ]);
  const o = (m: Float32Array): Outputs => ({ y: tensor([1, 1, 20, 30], m) });
  const def = taskDef('text-det');
  t.equal(def.figures(def.stats(o(ref), o(ref))).value, 1, 'identical: F1 1');
  const f = def.figures(def.stats(o(ref), o(shifted)));
  t.same([f.precision, f.recall, f.value], [0.5, 0.5, 0.5]);
  // mask pixels (0.9 > 0.3): 32 + 64 in the reference, 32 + 16 in the candidate, 7 x 4 shared
  t.equal(f.maskIoU, 28 / (96 + 48 - 28), 'mask IoU: intersection over union of the maps above 0.3');
  t.equal(def.finer, 'maskIoU', 'the finer figure is the mask IoU');
  const none = def.figures(def.stats(o(ref), o(map(20, 30, []))));
  t.same([none.value, none.recall, none.precision], [0, 0, 0], 'a map that finds nothing scores 0');
  t.equal(def.figures(def.stats(o(map(20, 30, [])), o(map(20, 30, [])))).value, 1, 'nothing to find, nothing found: 1');
  const r = compareTask('text-det', undefined, [o(ref), o(ref)], [o(ref), o(shifted)]);
  t.same([r.figures.precision, r.figures.recall, r.samples, r.metric], [3 / 4, 3 / 4, 2, 'boxF1'], 'pooled: tp 3, fp 1, fn 1');
  t.equal(r.finer, (96 + 28) / (96 + 116), 'mask IoU pooled over the images, as the finer figure');
  t.equal(r.figures.maskIoU, r.finer);
  t.match(
    describeFigures('text-det', r.figures),
    /^box F1 0\.7500, precision 0\.7500, recall 0\.7500, mask IoU 0\.5849, 4 boxes vs 4 in the reference$/,
  );
  const nan = map(20, 30, []).fill(NaN);
  t.same([compareTask('text-det', undefined, [o(ref)], [o(nan)]).finer], [0], 'NaN outputs: the finer figure fails too');
  t.equal(
    compareTask(
      'classify',
      undefined,
      [{ y: tensor([1, 3], Float32Array.from([1, 2, 3])) }],
      [{ y: tensor([1, 3], Float32Array.from([1, 2, 3])) }],
    ).finer,
    undefined,
    'a task without a finer figure has none',
  );
});

/** A [1, T, C] one-hot sequence of class indices. */
function steps(ids: number[], c = 5): OutputTensor {
  const d = new Float32Array(ids.length * c);
  ids.forEach((k, i) => (d[i * c + k] = 1));
  return { dims: [1, ids.length, c], data: d };
}

t.test('ctc: greedy decoding, edit distance, text agreement', async (t) => {
  t.same(ctcGreedy(steps([0, 1, 1, 0, 1, 2, 2, 0, 0, 3]).data, 0, 10, 5), [1, 1, 2, 3], 'repeats collapse, a blank separates');
  t.equal(editDistance([1, 2, 3], [1, 3]), 1);
  t.equal(editDistance([1, 2, 3], [3, 2, 1]), 2);
  t.equal(editDistance([], [4, 4]), 2);
  const def = taskDef('ctc');
  const ref = { y: steps([0, 1, 0, 2, 3, 0, 4, 0]) };
  t.same(def.figures(def.stats(ref, ref)), { value: 1, cer: 0, lineExact: 1 }, 'identical: 1');
  const sub = def.figures(def.stats(ref, { y: steps([0, 1, 0, 2, 2, 0, 4, 0]) }));
  t.same([sub.value, sub.cer, sub.lineExact], [0.75, 0.25, 0], 'one of four characters wrong');
  t.equal(def.figures(def.stats(ref, { y: steps([0, 0, 0, 0, 0, 0, 0, 0]) })).value, 0, 'all blank: 0');
  const blank = { y: steps([0, 0, 0]) };
  t.equal(def.figures(def.stats(blank, blank)).value, 1, 'both empty: 1');
  t.equal(def.figures(def.stats(blank, { y: steps([1, 0, 2]) })).value, 0, 'text where the reference reads none: 0');
  // a 5-insertion line cannot go below 0
  t.equal(def.figures(def.stats({ y: steps([1, 0, 0, 0, 0, 0, 0, 0, 0]) }, { y: steps([1, 0, 2, 0, 3, 0, 4, 0, 2]) })).value, 0);
});

t.test('classify: top-1 and top-5 agreement over rows', async (t) => {
  const def = taskDef('classify');
  const ref = { y: tensor([2, 7], [9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 1]) };
  const got = { y: tensor([2, 7], [9, 1, 0, 0, 0, 0, 0, 0, 9, 0, 5, 0, 8, 1]) };
  t.same(def.figures(def.stats(ref, ref)), { value: 1, top1: 1, top5: 1 });
  t.same(def.figures(def.stats(ref, got)), { value: 0.5, top1: 0.5, top5: 1 });
  const two = def.figures(def.stats({ y: tensor([1, 2], [0.9, 0.1]) }, { y: tensor([1, 2], [0.2, 0.8]) }));
  t.same(two, { value: 0, top1: 0 }, 'two classes: no top-5 figure');
});

t.test("each counting task's unit is what one item (box, row, character) moves its headline by", async (t) => {
  // text-det: 2 boxes per image over 2 images; one box of 4 missed moves F1 by about the unit
  const ref = map(20, 30, [
    [2, 2, 10, 6, 0.9],
    [20, 10, 28, 18, 0.9],
  ]);
  const oneMissed = map(20, 30, [[2, 2, 10, 6, 0.9]]);
  const o = (m: Float32Array): Outputs => ({ y: tensor([1, 1, 20, 30], m) });
  const self = compareTask('text-det', undefined, [o(ref), o(ref)], [o(ref), o(ref)]);
  t.equal(self.unit, 1 / 8, 'four reference boxes: 1 / (2 x 4)');
  const missed = compareTask('text-det', undefined, [o(ref), o(ref)], [o(ref), o(oneMissed)]);
  t.ok(
    Math.abs(1 - missed.value - self.unit!) < self.unit! / 2,
    `one box missed: F1 ${missed.value.toFixed(4)}, within half a unit of 1 - unit`,
  );
  // classify: one of 4 rows; ctc: one of 4 characters
  const rows = { y: tensor([4, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0]) };
  const oneRow = { y: tensor([4, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0]) };
  const c = compareTask('classify', undefined, [rows], [oneRow]);
  t.equal(c.unit, 1 / 4);
  t.equal(1 - c.value, c.unit, 'one row of four disagrees: top-1 one unit lower');
  const line = { y: steps([0, 1, 0, 2, 3, 0, 4, 0]) };
  const ctc = compareTask('ctc', undefined, [line], [{ y: steps([0, 1, 0, 2, 2, 0, 4, 0]) }]);
  t.equal(ctc.unit, 1 / 4);
  t.equal(1 - ctc.value, ctc.unit, 'one character of four wrong: one unit lower');
  const raw = compareTask('raw', undefined, [{ y: tensor([1, 3], [1, 2, 3]) }], [{ y: tensor([1, 3], [1, 2, 3]) }]);
  t.equal(raw.unit, undefined, 'a continuous metric has no unit');
});

t.test('embed/raw: cosine, worst output, clamped headline', async (t) => {
  const a = { u: tensor([1, 3], [1, 0, 0]), v: tensor([1, 2], [1, 1]) };
  const b = { u: tensor([1, 3], [-1, 0, 0]), v: tensor([1, 2], [1, 1]) };
  const f = taskDef('raw').figures(taskDef('raw').stats(a, b));
  t.same([f.value, f.cosine], [0, -1]);
  t.equal(taskDef('embed').figures(taskDef('embed').stats(a, a)).value, 1);
});

t.test('task names: parsed; every task has its metric', async (t) => {
  t.equal(parseTask('ctc'), 'ctc');
  t.equal(parseTask('auto'), 'auto');
  t.throws(() => parseTask('ocr'), { code: 'USAGE', message: /unknown task 'ocr'/ });
  for (const n of TASK_NAMES) t.equal(taskDef(n), TASKS[n], n);
  t.throws(() => compareTask('ctc', undefined, [{ y: tensor([1, 4], [1, 0, 0, 0]) }], [{ y: tensor([1, 4], [1, 0, 0, 0]) }]), {
    code: 'USAGE',
    message: /task ctc does not fit this model's outputs \(y 1x4\)/,
  });
});

t.test('detectTask on the real PP-OCR models and MNIST', async (t) => {
  const cases = [
    [OCR_MODELS.det.file, 'text-det', /probability map/],
    [OCR_MODELS.rec.file, 'ctc', /per-step class distribution/],
    [OCR_MODELS.cls.file, 'classify', /class scores/],
    [join(ROOT, 'models/mnist-cnn.onnx'), 'classify', /class scores 'logits'/],
  ] as const;
  for (const [file, task, reason] of cases) {
    const g = detectTask(loadModel(file).graph);
    t.equal(g.task, task, file);
    t.match(g.reason, reason);
  }
  // from concrete first outputs, without a graph: the values decide
  const p = Float32Array.from({ length: 2 * 6625 }, (_, i) => (i % 6625 === 0 ? 1 : 0));
  t.equal(detectTask(undefined, { y: tensor([1, 2, 6625], p) }).task, 'ctc');
  t.equal(detectTask(undefined, { y: tensor([1, 1, 8, 8], new Float32Array(64).fill(0.2)) }).task, 'text-det');
  t.equal(
    detectTask(undefined, { y: tensor([1, 1, 8, 8], new Float32Array(64).fill(-3)) }).task,
    'raw',
    'a map outside [0, 1] is no probability map',
  );
});

t.test('detectTask on generated fixtures', async (t) => {
  t.equal(detectTask(FIXTURES.residual().graph).task, 'classify', 'gemm head over 10 classes');
  t.equal(detectTask(FIXTURES.transformer().graph).task, 'raw', 'a [N, T, C] hidden state without a Softmax');

  const det = new ModelBuilder({ seed: 3 });
  det.output(det.unary('Sigmoid', det.conv(det.convBnRelu(det.input('x', [1, 3, 32, 32]), 8, { k: 3 }), 1)));
  t.equal(detectTask(det.graph).task, 'text-det');
  // a guess the outputs contradict falls back to raw cosine; the same task given is refused
  const other = [{ z: tensor([1, 4], [1, 2, 3, 4]) }];
  const fell = compareTask('auto', det.graph, other, other);
  t.same([fell.task, fell.auto, fell.value], ['raw', true, 1]);
  t.match(fell.reason, /but the outputs do not fit text-det; raw cosine/);
  t.throws(() => compareTask('text-det', det.graph, other, other), { code: 'USAGE' });

  const rec = new ModelBuilder({ seed: 4 });
  const seq = rec.reshape(rec.gap(rec.conv(rec.input('x', [1, 3, 8, 32]), 64)), [1, 8, 8]);
  rec.output(rec.softmax(seq));
  t.equal(detectTask(rec.graph).task, 'ctc');

  const yolo = new ModelBuilder({ seed: 5 });
  const feat = yolo.conv(yolo.input('x', [1, 3, 40, 40]), 85);
  yolo.output(yolo.transpose(yolo.reshape(feat, [1, 85, 1600]), [0, 2, 1]));
  t.equal(detectTask(yolo.graph).task, 'detect', '[1, 1600 anchors, 85] box tensor');
  const r = resolveTask('auto', yolo.graph);
  t.same([r.task, r.auto, r.def.metric], ['detect', true, 'detF1'], 'judged by detection F1');

  const emb = new ModelBuilder({ seed: 6 });
  emb.output(emb.node('LpNormalization', [emb.gemm(emb.flatten(emb.gap(emb.conv(emb.input('x', [1, 3, 8, 8]), 16))), 32)], [1, 32]));
  t.equal(detectTask(emb.graph).task, 'embed');
});

t.test("the agent config's model.task: auto by default, a task name, anything else refused", async (t) => {
  t.equal(loadAgentConfig({ env: {} }).model.task, 'auto');
  t.equal(loadAgentConfig({ env: {}, flags: { model: { task: 'ctc' } } }).model.task, 'ctc');
  t.throws(() => loadAgentConfig({ env: {}, flags: { model: { task: 'ocr' } } }), {
    code: 'CONFIG',
    message: /model\.task: must be one of "auto", "classify", "text-det", "detect", "ctc", "embed", "raw"/,
  });
});
