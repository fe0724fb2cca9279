// A generated box detector for the 'detect' task's tests (issue 16): a tiny, hand-weighted
// three-level head (strides 8, 16, 32 on a 128 x 128 RGB input in 0..1) that finds regions by
// colour, so it gives a handful of confident, distinct boxes on real photographs and nothing on
// a flat grey. Every cell's box is centred on the cell, moved and sized by its mean colour; three
// classes score reddish, dark and bright cells. One network, exported in the layouts detectors
// ship in: YOLOv8 raw [1, 4+C, N], YOLOv5 raw [1, N, 5+C] (objectness = the best class score,
// class scores divided by it, so its detections are the YOLOv8 export's), SSD boxes + scores, and
// built-in NMS (ONNX NonMaxSuppression and gathers -> boxes, scores, labels). Deterministic: no
// random weights at all.
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../src/ir/model.js';
import { serializeModel } from '../src/onnx/index.js';
import { Tensor } from '../src/ir/tensor.js';
import { nchwSpec } from '../src/data/image.js';
import { ModelBuilder } from './builder.js';
import { ROOT } from './paths.js';

export const DETECTOR_SIZE = 128;
export const DETECTOR_STRIDES = [8, 16, 32] as const;
export const DETECTOR_CLASSES = 3;
/** Anchors: 16^2 + 8^2 + 4^2 = 336, a multiple of 21 as every P3-P5 YOLO head's is. */
export const DETECTOR_ANCHORS = DETECTOR_STRIDES.reduce((n, s) => n + (DETECTOR_SIZE / s) ** 2, 0);
/** How real images become its input: RGB scaled to 0..1, no mean or std. */
export const DETECTOR_SPEC = nchwSpec(DETECTOR_SIZE, DETECTOR_SIZE, 3, { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] });

export const DETECTOR_LAYOUTS = ['yolov8', 'yolov5', 'ssd', 'nms'] as const;
export type DetectorLayout = (typeof DETECTOR_LAYOUTS)[number];

export interface DetectorOpts {
  /** Pixels added to every box's centre x: a weight nudge whose effect on IoU is known by hand ((w - d) / (w + d)). */
  shiftX?: number;
  /** Subtract `by` from one class's logits: its scores fall, its boxes and their ranking stay. */
  dimClass?: { cls: number; by: number };
  /** Class biases so low that every score is 0: a model that detects nothing. */
  silent?: boolean;
}

/** Class logits: gain x (colour feature - threshold), per class; mean colour r, g, b in 0..1. */
const GAIN = 20;
const CLASS_WEIGHTS = [
  [1, -0.5, -0.5], // reddish: r above the mean of g and b
  [-1 / 3, -1 / 3, -1 / 3], // dark
  [1 / 3, 1 / 3, 1 / 3], // bright
] as const;
/** Per level (stride 8, 16, 32), the feature value where each class's score is 0.5: the finest level asks most. */
const CLASS_THRESHOLDS = [
  [0.6, -0.04, 0.96],
  [0.5, -0.08, 0.92],
  [0.4, -0.12, 0.88],
] as const;
/** Box offsets from the mean colour (rows dx, dy, dw, dh), through tanh, scaled by the stride. */
const BOX_WEIGHTS = [
  [2, -2, 0],
  [0, 2, -2],
  [1.5, 1.5, -3],
  [-3, 1.5, 1.5],
] as const;

const ints = (value: number[]) => ({ type: 'ints' as const, value });
const int = (value: number) => ({ type: 'int' as const, value });

/** The YOLOv8-layout head: [1, 4 + C, N] with cx, cy, w, h in input pixels and sigmoid class scores. */
function head(b: ModelBuilder, x: string, o: DetectorOpts): string {
  const C = DETECTOR_CLASSES;
  const levels = DETECTOR_STRIDES.map((s, li) => {
    const g = DETECTOR_SIZE / s;
    const p = b.node('AveragePool', [x], [1, 3, g, g], { kernel_shape: ints([s, s]), strides: ints([s, s]) });
    const conv = (rows: readonly (readonly number[])[], bias: number[], scale: number) =>
      b.node(
        'Conv',
        [
          p,
          b.constant(
            'w',
            [rows.length, 3, 1, 1],
            rows.flat().map((v) => v * scale),
          ),
          b.constant('b', [rows.length], bias),
        ],
        [1, rows.length, g, g],
        {
          kernel_shape: ints([1, 1]),
        },
      );
    const raw = b.unary('Tanh', conv(BOX_WEIGHTS, [0, 0, 0, 0], 1));
    const scaled = b.binary('Mul', raw, b.constant('bs', [1, 4, 1, 1], [s / 2, s / 2, 2 * s, 2 * s]));
    const grid = new Float32Array(4 * g * g);
    for (let i = 0; i < g; i++)
      for (let j = 0; j < g; j++) {
        const a = i * g + j;
        grid[a] = (j + 0.5) * s + (o.shiftX ?? 0);
        grid[g * g + a] = (i + 0.5) * s;
        grid[2 * g * g + a] = 4 * s;
        grid[3 * g * g + a] = 4 * s;
      }
    const box = b.binary('Add', b.reshape(scaled, [1, 4, g * g]), b.constant('grid', [1, 4, g * g], grid));
    const dim = (c: number) => (o.dimClass?.cls === c ? o.dimClass.by : 0);
    const bias = CLASS_THRESHOLDS[li]!.map((t, c) => (o.silent ? -1e4 : -GAIN * t - dim(c)));
    const cls = b.reshape(b.unary('Sigmoid', conv(CLASS_WEIGHTS, bias, GAIN)), [1, C, g * g]);
    return b.concat([box, cls], 1);
  });
  return b.concat(levels, 2);
}

function slice(b: ModelBuilder, x: string, start: number, end: number, axis: number): string {
  const s = [...b.shape(x)];
  s[axis] = end - start;
  return b.node('Slice', [x, b.int64('st', [start]), b.int64('en', [end]), b.int64('ax', [axis])], s);
}

/** A scalar int64 initializer (Gather with a scalar index drops the axis). */
function scalar(b: ModelBuilder, name: string, v: number): string {
  b.graph.setInitializer(Tensor.fromInt64(name, [], [v]));
  return name;
}

/** The fixture detector in one of its export layouts. */
export function detectorModel(layout: DetectorLayout, o: DetectorOpts = {}): Model {
  const b = new ModelBuilder({ opset: 17 });
  const raw = head(b, b.input('images', [1, 3, DETECTOR_SIZE, DETECTOR_SIZE]), o);
  if (layout === 'yolov8') {
    b.output(raw);
    return b.build();
  }
  // cx, cy, w, h -> x0, y0, x1, y1 as one MatMul (rows: inputs, columns: outputs)
  const toCorners = [1, 0, 1, 0, 0, 1, 0, 1, -0.5, 0, 0.5, 0, 0, -0.5, 0, 0.5];
  const rows = b.transpose(raw, [0, 2, 1]);
  if (layout === 'yolov5') {
    const cls = slice(b, rows, 4, 4 + DETECTOR_CLASSES, 2);
    const obj = b.node('ReduceMax', [cls], [1, DETECTOR_ANCHORS, 1], { axes: ints([2]), keepdims: int(1) });
    const perClass = b.binary('Div', cls, b.node('Max', [obj, b.constant('eps', [], [1e-6])], [1, DETECTOR_ANCHORS, 1]));
    b.output(b.concat([slice(b, rows, 0, 4, 2), obj, perClass], 2));
    return b.build();
  }
  const boxes = b.matmul(slice(b, rows, 0, 4, 2), b.constant('corners', [4, 4], toCorners));
  if (layout === 'ssd') {
    b.output(boxes);
    b.output(slice(b, rows, 4, 4 + DETECTOR_CLASSES, 2));
    return b.build();
  }
  // built-in NMS as exporters add it: per class, IoU 0.45, down to score 0.001
  const scores = slice(b, raw, 4, 4 + DETECTOR_CLASSES, 1);
  const sel = b.node(
    'NonMaxSuppression',
    [boxes, scores, b.int64('max', [100]), b.constant('iou', [1], [0.45]), b.constant('min', [1], [0.001])],
    [-1, 3],
  );
  const column = (k: number) => b.node('Gather', [sel, scalar(b, `col${k}`, k)], [-1], { axis: int(1) });
  const kept = b.node('Gather', [boxes, column(2)], [1, -1, 4], { axis: int(1) });
  const unsq = (v: string) => b.node('Unsqueeze', [v, b.int64('axes', [0])], [1, -1]);
  const keptScores = unsq(b.node('GatherND', [scores, sel], [-1]));
  const labels = unsq(b.node('Cast', [column(1)], [-1], { to: int(1) }));
  for (const [v, shape] of [
    [kept, [1, 'K', 4]],
    [keptScores, [1, 'K']],
    [labels, [1, 'K']],
  ] as const)
    b.graph.outputs.push({ name: v, type: { dtype: 'float32', shape: [...shape] } });
  return b.build();
}

/** Files of a detector fixture on disk, for the CLI (`edgefit eval <model> --reference <ref> --data <images> --task detect`). */
export interface DetectorFiles {
  /** Image folder with the detector's preprocess.json. */
  images: string;
  /** Per layout: the model, its copy with class 0 scored lower, and its copy that detects nothing. */
  models: Record<DetectorLayout, { ref: string; dimmed: string; silent: string }>;
}

/** The photographs the fixture is judged on (test/fixtures/images, all of them). */
export const DETECTOR_IMAGES = join(ROOT, 'test/fixtures/images');

/** Write every layout of the fixture (and its perturbed copies) and an image folder into `dir`. */
export function writeDetectorFixture(dir: string): DetectorFiles {
  const images = join(dir, 'images');
  mkdirSync(images, { recursive: true });
  for (const f of readdirSync(DETECTOR_IMAGES).filter((n) => n.endsWith('.png'))) copyFileSync(join(DETECTOR_IMAGES, f), join(images, f));
  writeFileSync(join(images, 'preprocess.json'), `${JSON.stringify(DETECTOR_SPEC, null, 2)}\n`);
  const models = {} as DetectorFiles['models'];
  for (const layout of DETECTOR_LAYOUTS) {
    const write = (tag: string, o: DetectorOpts) => {
      const path = join(dir, `detector-${layout}${tag}.onnx`);
      writeFileSync(path, serializeModel(detectorModel(layout, o)));
      return path;
    };
    models[layout] = {
      ref: write('', {}),
      dimmed: write('-dimmed', { dimClass: { cls: 0, by: 1.2 } }),
      silent: write('-silent', { silent: true }),
    };
  }
  return { images, models };
}
