// The box-detector layouts and the detect task's arithmetic on hand-made tensors: each layout is
// recognised and decoded (raw ones through per-class NMS, post-NMS ones as they are), YOLOv5 and
// YOLOv8 read the same anchors the same way transposed, objectness multiplies, SSD softmax drops
// its background column, a class mismatch is no match, AP integrates a histogram as worked out
// by hand, and tensors of other tasks are never taken for a detector.
import t from 'tap';
import { EdgefitError } from '../../src/errors.js';
import type { Outputs } from '../../src/fidelity/compare.js';
import { apFromHistogram, DETECT, DETECT_TASK } from '../../src/fidelity/detect.js';
import { decodeDetections, recogniseDetector, type Recognised } from '../../src/fidelity/detect-layouts.js';
import type { Box } from '../../src/fidelity/boxes.js';

/** Anchors of a three-level head (strides 8, 16, 32) on a 32 x 32 input: 16 + 4 + 1. */
const N = 21;
type Anchor = [cx: number, cy: number, w: number, h: number, ...scores: number[]];

/** YOLOv8 layout [1, 4 + C, N]: the anchors given first, the rest all zero. */
function v8(anchors: Anchor[], classes = 3, n = N): Outputs {
  const f = 4 + classes;
  const data = new Float32Array(f * n);
  anchors.forEach((a, i) => a.forEach((v, j) => (data[j * n + i] = v)));
  return { output0: { dims: [1, f, n], data } };
}

/** YOLOv5 layout [1, N, 5 + C]: cx, cy, w, h, objectness, class scores per row. */
function v5(anchors: Anchor[], classes = 3, n = N): Outputs {
  const f = 5 + classes;
  const data = new Float32Array(f * n);
  anchors.forEach((a, i) => data.set(a, i * f));
  return { output0: { dims: [1, n, f], data } };
}

const t2 = (dims: number[], values: number[]) => ({ dims, data: Float32Array.from(values) });
const corners = (b: Box): number[] => [b.x0, b.y0, b.x1, b.y1, b.cls ?? -1];
const close = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) < 1e-5);

function decode(o: Outputs, min: number = DETECT.refScore, strict = true): { rec: Recognised; boxes: Box[] } {
  const rec = recogniseDetector(o, strict);
  if (!rec) throw new Error(`not recognised: ${JSON.stringify(Object.values(o).map((x) => x.dims))}`);
  return { rec, boxes: decodeDetections(o, rec, min) };
}

// A at (40..60), B almost on it in the same class (NMS drops it), C on it in another class, D faint
const ANCHORS: Anchor[] = [
  [50, 50, 20, 20, 0.9, 0, 0],
  [52, 50, 20, 20, 0.8, 0, 0],
  [52, 50, 20, 20, 0, 0.7, 0],
  [100, 20, 10, 30, 0, 0, 0.1],
];

t.test('YOLOv8 [1, 4+C, N]: best class per anchor, per-class NMS at 0.45, corners from centre and size', async (t) => {
  const { rec, boxes } = decode(v8(ANCHORS));
  t.equal(rec.layout, 'yolov8');
  t.equal(rec.classes, 3);
  t.equal(boxes.length, 2, 'B is suppressed by A (IoU 18/22 > 0.45); C is another class');
  t.ok(close(corners(boxes[0]!), [40, 40, 60, 60, 0]));
  t.ok(close(corners(boxes[1]!), [42, 40, 62, 60, 1]));
  const low = decodeDetections(v8(ANCHORS), rec, DETECT.rankScore);
  t.equal(low.length, 3, 'down to 0.001 the faint D counts too');
  t.ok(close(corners(low[2]!), [95, 5, 105, 35, 2]));
  t.equal(low[2]!.score, Math.fround(0.1));
  const many = Array.from({ length: 420 }, (_, i): Anchor => [
    (i % 30) * 20 + 5,
    Math.floor(i / 30) * 20 + 5,
    10,
    10,
    0.3 + i / 1000,
    0,
    0,
  ]);
  const kept = decodeDetections(v8(many, 3, 420), rec, DETECT.refScore);
  t.equal(kept.length, 300, '420 separate boxes: the best 300 kept, as YOLO val keeps');
  t.equal(Math.min(...kept.map((b) => b.score)), Math.fround(0.3 + 120 / 1000));
});

t.test('a one-level head (N = 400, no multi-scale count) is still recognised by its boxes in pixels', async (t) => {
  t.equal(recogniseDetector(v8(ANCHORS, 3, 400), true)?.layout, 'yolov8');
  const unitBoxes = ANCHORS.map(([cx, cy, w, h, ...s]) => [cx / 640, cy / 640, w / 640, h / 640, ...s] as Anchor);
  t.equal(recogniseDetector(v8(unitBoxes, 3, 400), true), undefined, 'all in [0, 1] over 400 anchors: could be any sigmoid map');
  t.equal(recogniseDetector(v8(unitBoxes, 3, 420), true)?.layout, 'yolov8', 'normalised boxes over a three-level anchor count');
  t.equal(recogniseDetector(v8(unitBoxes, 3, 400), false)?.layout, 'yolov8', 'named by the user: the shape is enough');
});

t.test('YOLOv5 [1, N, 5+C]: the same anchors transposed, scored objectness x class', async (t) => {
  const withObj = ANCHORS.map(([cx, cy, w, h, ...s]) => [cx, cy, w, h, 1, ...s] as Anchor);
  const a = decode(v5(withObj), DETECT.rankScore);
  t.equal(a.rec.layout, 'yolov5');
  t.same(a.boxes.map(corners), decode(v8(ANCHORS), DETECT.rankScore).boxes.map(corners), 'YOLOv5 with objectness 1 = YOLOv8');
  // objectness 0.5 halves every score: A 0.45 stays, C 0.35 stays, D 0.05 drops below 0.25
  const half = ANCHORS.map(([cx, cy, w, h, ...s]) => [cx, cy, w, h, 0.5, ...s] as Anchor);
  const b = decode(v5(half));
  t.same(
    b.boxes.map((x) => Number(x.score.toFixed(4))),
    [0.45, 0.35],
  );
  t.same(decode(v5([[50, 50, 20, 20, 0.2, 1, 0, 0]])).boxes, [], 'low objectness, no box whatever the class says');
});

t.test('SSD boxes [1, N, 4] + scores [1, N, C]: sigmoid scores are all classes, softmax rows drop column 0', async (t) => {
  const boxes = t2([1, 3, 4], [0, 0, 10, 10, 1, 0, 11, 10, 50, 50, 60, 70]);
  const sig = decode({ boxes, scores: t2([1, 3, 2], [0.9, 0, 0.8, 0, 0, 0.6]) });
  t.equal(sig.rec.layout, 'ssd');
  t.equal(sig.rec.classes, 2);
  t.same(sig.boxes.map(corners), [
    [0, 0, 10, 10, 0],
    [50, 50, 60, 70, 1],
  ]);
  const soft = decode({ boxes, scores: t2([1, 3, 3], [0.1, 0.9, 0, 0.2, 0.8, 0, 0.4, 0, 0.6]) });
  t.ok(soft.rec.background, 'rows summing to 1: column 0 is background');
  t.equal(soft.rec.classes, 2);
  t.same(soft.boxes.map(corners), [
    [0, 0, 10, 10, 0],
    [50, 50, 60, 70, 1],
  ]);
  t.equal(
    recogniseDetector({ boxes: t2([1, 2, 4], [10, 0, 0, 10, 0, 0, 1, 1]), scores: t2([1, 2, 1], [0.9, 0.1]) }, true),
    undefined,
    'anchor offsets (x1 < x0 on a confident row) are not decoded boxes',
  );
});

t.test('built-in NMS rows: [1, K, 6] and YOLOv7 [K, 7] read as they are (no NMS), padding and other batches skipped', async (t) => {
  const rows6 = { output0: t2([1, 3, 6], [0, 0, 10, 10, 0.9, 2, 1, 0, 11, 10, 0.8, 2, 0, 0, 0, 0, 0, 0]) };
  const a = decode(rows6);
  t.equal(a.rec.layout, 'rows6');
  t.same(
    a.boxes.map(corners),
    [
      [0, 0, 10, 10, 2],
      [1, 0, 11, 10, 2],
    ],
    'overlapping boxes both kept: the model did its NMS',
  );
  const rows7 = { output: t2([3, 7], [0, 0, 0, 10, 10, 1, 0.9, 1, 5, 5, 9, 9, 0, 0.9, 0, 20, 20, 30, 40, 0, 0.3]) };
  const b = decode(rows7);
  t.equal(b.rec.layout, 'rows7');
  t.same(
    b.boxes.map(corners),
    [
      [0, 0, 10, 10, 1],
      [20, 20, 30, 40, 0],
    ],
    'the row of batch 1 is not this sample',
  );
  // a one-class YOLOv5 [1, N, 6] has the rows' shape: its fractional class scores say what it is
  const raw = v5([[50, 50, 20, 20, 0.9, 0.8]], 1);
  t.equal(recogniseDetector(raw, true)?.layout, 'yolov5');
  t.equal(recogniseDetector(raw, false)?.layout, 'yolov5', 'also when the user named the task');
});

t.test('split NMS outputs: boxes + scores + labels (+ num_detections), by name or by values', async (t) => {
  const trt = {
    num_dets: t2([1, 1], [2]),
    det_boxes: t2([1, 3, 4], [0, 0, 10, 10, 20, 20, 30, 30, 0, 0, 10, 10]),
    det_scores: t2([1, 3], [0.9, 0.5, 0.8]),
    det_classes: t2([1, 3], [3, 7, 3]),
  };
  const a = decode(trt);
  t.equal(a.rec.layout, 'split');
  t.same(a.rec.roles, { boxes: 'det_boxes', scores: 'det_scores', labels: 'det_classes', num: 'num_dets' });
  t.same(
    a.boxes.map(corners),
    [
      [0, 0, 10, 10, 3],
      [20, 20, 30, 30, 7],
    ],
    'num_dets = 2: the third row is padding',
  );
  // generic names: labels are the integer-valued one
  const generic = { out0: t2([1, 2, 4], [0, 0, 10, 10, 20, 20, 30, 30]), out1: t2([1, 2], [4, 1]), out2: t2([1, 2], [0.9, 0.6]) };
  t.same(decode(generic).boxes.map(corners), [
    [0, 0, 10, 10, 4],
    [20, 20, 30, 30, 1],
  ]);
  // integer labels are dropped by the runner (float outputs only): boxes + scores still read, one class
  t.same(decode({ boxes: generic.out0, scores: generic.out2 }).boxes.map(corners), [
    [0, 0, 10, 10, 0],
    [20, 20, 30, 30, 0],
  ]);
  // a reference with no boxes at all cannot tell scores from labels by value: the export order does
  const none = { out0: t2([1, 0, 4], []), out1: t2([1, 0], []), out2: t2([1, 0], []) };
  const rec = recogniseDetector(none, true)!;
  t.same(rec.roles, { boxes: 'out0', scores: 'out1', labels: 'out2' });
  const found = { out0: generic.out0, out1: t2([1, 2], [0.9, 0.6]), out2: t2([1, 2], [4, 1]) };
  t.same(decodeDetections(found, rec, DETECT.refScore).map(corners), [
    [0, 0, 10, 10, 4],
    [20, 20, 30, 30, 1],
  ]);
  t.same(judge([[none, found]]).value, 0, 'nothing to find, two found');
  // exported labels first: an empty reference takes the roles from the candidate's values
  const swapped = { out0: generic.out0, out1: t2([1, 2], [4, 1]), out2: t2([1, 2], [0.875, 0.6]) };
  const s = DETECT_TASK.stats(none, swapped);
  t.same(s.slice(0, 3), [0, 2, 0], 'two false positives at their scores, not at their class ids');
  t.equal(s[3 + 4 * (1 + 2 * DETECT.bins) + 1 + DETECT.bins + 87], 1, 'class 4, score 0.875: its false-positive bin');
  // K = 1: the count [1, 1] is told from the per-box [1, 1] outputs by its name
  const one = decode({
    num_detections: t2([1, 1], [1]),
    boxes: t2([1, 1, 4], [0, 0, 5, 5]),
    scores: t2([1, 1], [0.5]),
    labels: t2([1, 1], [2]),
  });
  t.same(one.rec.roles, { boxes: 'boxes', scores: 'scores', labels: 'labels', num: 'num_detections' });
  t.same(one.boxes.map(corners), [[0, 0, 5, 5, 2]]);
  const mm = decode({ dets: t2([1, 2, 5], [0, 0, 10, 10, 0.9, 5, 5, 6, 6, 0.1]), labels: t2([1, 2], [2, 0]) });
  t.equal(mm.rec.layout, 'dets5');
  t.same(mm.boxes.map(corners), [[0, 0, 10, 10, 2]]);
});

t.test('no other task looks like a detector', async (t) => {
  const softmax = (n: number) => Array.from({ length: n }, (_, i) => (i === 2 ? 0.5 : 0.5 / (n - 1)));
  const logits = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 7.3 + seed) * 3);
  const ctc = new Float32Array(40 * 97).map((_, i) => (i % 97 === 0 ? 0.9 : 0.1 / 96));
  const cases: Record<string, Outputs> = {
    'classifier [1, 10] softmax': { prob: t2([1, 10], softmax(10)) },
    'classifier [1, 7] logits': { logits: t2([1, 7], logits(7, 1)) },
    'classifier [1, 6] softmax': { prob: t2([1, 6], softmax(6)) },
    'PP-OCR map [1, 1, 32, 32]': {
      map: t2(
        [1, 1, 32, 32],
        Array.from({ length: 1024 }, (_, i) => (i % 5) / 5),
      ),
    },
    'CTC [1, 40, 97] softmax': { ctc: { dims: [1, 40, 97], data: ctc } },
    'CTC [1, 84, 21] softmax': {
      ctc: t2(
        [1, 84, 21],
        Array.from({ length: 84 * 21 }, () => 1 / 21),
      ),
    },
    'sequence [1, 16, 8] features': { h: t2([1, 16, 8], logits(128, 2)) },
    'sigmoid map as [1, 8, 400]': {
      m: t2(
        [1, 8, 400],
        Array.from({ length: 3200 }, (_, i) => (i % 7) / 7),
      ),
    },
    'embedding [1, 128]': { e: t2([1, 128], logits(128, 3)) },
  };
  for (const [what, o] of Object.entries(cases)) {
    t.equal(recogniseDetector(o, true), undefined, `${what}: not auto-detected`);
    t.notOk(DETECT_TASK.applies(o), `${what}: the task does not apply`);
  }
  t.equal(recogniseDetector(cases['classifier [1, 10] softmax']!, false), undefined, 'a classifier is no detector even when named one');
  const map = cases['PP-OCR map [1, 1, 32, 32]']!;
  let err: unknown;
  try {
    DETECT_TASK.stats(map, map);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof EdgefitError && err.code === 'USAGE' && /map \[1, 1, 32, 32\]/.test(err.message), `a clear error: ${String(err)}`);
});

/** The task's figures over samples, statistics summed. */
function judge(pairs: [Outputs, Outputs][]) {
  let sum: number[] = [];
  for (const [r, g] of pairs) {
    const s = DETECT_TASK.stats(r, g);
    sum = s.map((v, i) => v + (sum[i] ?? 0));
  }
  return DETECT_TASK.figures(sum);
}

t.test('detect task: a class mismatch is no match; mAP averages the classes the reference has', async (t) => {
  const ref = v8([[50, 50, 20, 20, 0.9, 0, 0]]);
  const wrong = v8([[50, 50, 20, 20, 0, 0.9, 0]]);
  const f = judge([[ref, wrong]]);
  t.same([f.precision, f.recall, f.value, f.mAP50], [0, 0, 0, 0], 'right place, wrong class');

  // class 0: found at once (AP 1); class 1: missed (AP 0); class 2: not in the reference, its false positive costs F1 only
  const ref2 = v8([
    [50, 50, 20, 20, 0.9, 0, 0],
    [150, 50, 20, 20, 0, 0.8, 0],
  ]);
  const got2 = v8([
    [50, 50, 20, 20, 0.95, 0, 0],
    [250, 50, 20, 20, 0, 0, 0.7],
  ]);
  const g = judge([[ref2, got2]]);
  t.equal(g.classes, 2);
  t.equal(g.mAP50, 0.5);
  t.same([g.precision, g.recall, g.value], [0.5, 0.5, 0.5]);
  t.equal(DETECT_TASK.metric, 'detF1');
});

t.test('detect task: statistics sum over samples; no reference box anywhere is perfect only when nothing is found', async (t) => {
  const ref = v8([
    [50, 50, 20, 20, 0.9, 0, 0],
    [150, 50, 20, 20, 0.8, 0, 0],
  ]);
  const empty = v8([]);
  const f = judge([
    [ref, ref],
    [ref, empty],
  ]);
  t.same([f.precision, f.recall, f.refBoxes], [1, 0.5, 4]);
  t.equal(f.value, 2 / 3);
  t.equal(f.mAP50, 0.5, 'half the boxes found, all at precision 1');
  t.same([judge([[empty, empty]]).value, judge([[empty, empty]]).mAP50], [1, 1], 'nothing to find, nothing found');
  t.same([judge([[empty, ref]]).value, judge([[empty, ref]]).mAP50], [0, 0], 'nothing to find, two found');
});

t.test('apFromHistogram: the PR curve at bin edges, precision made monotone, as worked out by hand', async (t) => {
  const tp = new Array<number>(100).fill(0),
    fp = new Array<number>(100).fill(0);
  tp[90] = 2;
  fp[80] = 1;
  tp[70] = 1;
  fp[10] = 2;
  // recall 0.5 at precision 1, then 0.75 at 3/4 (the dip to 2/3 between is lifted): 0.5 + 0.25 * 0.75
  t.equal(apFromHistogram(4, tp, fp), 0.6875);
  t.equal(apFromHistogram(0, tp, fp), 0, 'no reference box: no AP');
  const tied = new Array<number>(100).fill(0);
  tied[50] = 1;
  t.equal(apFromHistogram(1, tied, tied), 0.5, 'a true and a false positive in one bin count as tied');
});
