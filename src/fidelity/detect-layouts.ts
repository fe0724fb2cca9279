// The output layouts box detectors are exported with (issue 16), each with its recogniser and its
// decoder to boxes. Raw layouts (one row or column per anchor) go through per-class NMS; layouts
// that already went through NMS are read as they are. Recognition runs at two strengths: `strict`
// for auto-detection (shape plus evidence in the values, so a classifier's [1, C], a PP-OCR map
// [1, 1, H, W] or a CTC recogniser's [1, T, C] never pass), lenient when the user named the task
// (shape alone). Pure arithmetic over output tensors.
import { nms, type Box } from './boxes.js';
import type { Outputs } from './compare.js';
import type { OutputTensor } from './metrics.js';

/** How raw outputs become detections. */
export const DECODE = {
  /**
   * NMS overlap (IoU above which a same-class box is dropped): YOLO's own default, and below the
   * 0.5 a match needs, so no two detections that survive NMS can both match one reference box:
   * an identical model's matching is one-to-one and it scores exactly 1.
   */
  nmsIou: 0.45,
  /** Detections kept per image after NMS (YOLO val's max_det). */
  maxDet: 300,
  /** Class slots for layouts whose class ids are values, not a dimension (ids fold modulo this). */
  classSlots: 128,
} as const;

/** Layout names, in the order they are tried (rows before YOLOv5: a [1, K, 6] of NMS rows must not read as one-class raw output). */
export const LAYOUT_NAMES = ['rows6', 'rows7', 'split', 'dets5', 'ssd', 'yolov5', 'yolov8'] as const;
export type LayoutName = (typeof LAYOUT_NAMES)[number];

/** Which output plays which role, fixed from the reference and reused for the candidate. */
export interface Recognised {
  layout: LayoutName;
  /** Output names by role ('raw', 'boxes', 'scores', 'labels', 'num', 'rows'; 'transposed' names SSD scores given as [1, C, N]). */
  roles: Readonly<Record<string, string>>;
  /** Class slots the statistics need: the class count when a dimension says it, else DECODE.classSlots. */
  classes: number;
  /** SSD with softmax scores: column 0 is background and is not a class. */
  background?: boolean;
}

type Vals = ArrayLike<number>;

const isInt = (v: number): boolean => Number.isInteger(v) && v >= 0;
const unit = (v: number): boolean => v >= 0 && v <= 1;
const rankOf = (t: OutputTensor): number => t.dims.length;

/**
 * Anchor counts of multi-scale YOLO heads: strides 8/16/32 on an input of 32a x 32b give
 * 21ab anchors (times 3 anchors per cell for v5), strides 8..64 on 64a x 64b give 85ab. A raw
 * tensor whose long side is neither must show boxes in pixels to be taken for a detector (a
 * sigmoid map reshaped to [1, C, HW] has every value in [0, 1]).
 */
const yoloAnchorCount = (n: number): boolean => n > 0 && (n % 21 === 0 || n % 85 === 0);

/** Corners in order whatever the export's convention (some give y before x: IoU is the same). */
function corners(x0: number, y0: number, x1: number, y1: number, score: number, cls: number): Box {
  return { x0: Math.min(x0, x1), y0: Math.min(y0, y1), x1: Math.max(x0, x1), y1: Math.max(y0, y1), score, cls };
}
const fromCenter = (cx: number, cy: number, w: number, h: number, score: number, cls: number): Box =>
  corners(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score, cls);

/** An anchor's best class and its score (YOLO predict's single label per box). */
function best(get: (c: number) => number, classes: number): [number, number] {
  let cls = 0,
    score = -Infinity;
  for (let c = 0; c < classes; c++) {
    const s = get(c);
    if (s > score) {
      score = s;
      cls = c;
    }
  }
  return [cls, score];
}

/** The one output of rank 3 and batch 1, when every other output is a rank >= 4 side map (YOLOv5's per-level maps). */
function rawOutput(outs: Outputs, strict: boolean): string | undefined {
  const names = Object.keys(outs);
  const r3 = names.filter((n) => rankOf(outs[n]!) === 3 && outs[n]!.dims[0] === 1);
  if (r3.length !== 1) return undefined;
  if (strict && names.some((n) => n !== r3[0] && rankOf(outs[n]!) < 4)) return undefined;
  return r3[0];
}

/** Every value i*stride+offset (i < n) satisfies `ok`. */
function every(d: Vals, n: number, stride: number, offset: number, ok: (v: number) => boolean): boolean {
  for (let i = 0; i < n; i++) if (!ok(d[i * stride + offset]!)) return false;
  return true;
}

/** Reading of a raw YOLO tensor: value of feature f at anchor i. */
type At = (d: Vals, i: number, f: number) => number;

/** The last axis of a rank-3 tensor sums to 1 everywhere: a softmax (a CTC recogniser's [1, T, C]), never a box head. */
function lastAxisSoftmax(t: OutputTensor): boolean {
  const c = t.dims[2]!;
  const rows = t.data.length / c;
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = 0; j < c; j++) sum += t.data[r * c + j]!;
    if (Math.abs(sum - 1) > 1e-3) return false;
  }
  return rows > 0;
}

function yoloEvidence(t: OutputTensor, n: number, feats: number, at: At): boolean {
  if (lastAxisSoftmax(t)) return false;
  // sigmoid scores (and objectness) in [0, 1], widths and heights >= 0, at every anchor
  const d = t.data;
  let pixels = false;
  for (let i = 0; i < n; i++) {
    if (at(d, i, 2) < 0 || at(d, i, 3) < 0) return false;
    for (let f = 4; f < feats; f++) if (!unit(at(d, i, f))) return false;
    pixels ||= at(d, i, 0) > 1.5 || at(d, i, 1) > 1.5;
  }
  return pixels || yoloAnchorCount(n);
}

function decodeYolo(t: OutputTensor, minScore: number, n: number, feats: number, at: At, objectness: boolean): Box[] {
  const d = t.data;
  const first = objectness ? 5 : 4;
  const out: Box[] = [];
  for (let i = 0; i < n; i++) {
    const obj = objectness ? at(d, i, 4) : 1;
    if (obj < minScore) continue;
    const [cls, s] = best((c) => at(d, i, first + c), feats - first);
    const score = obj * s;
    if (score >= minScore) out.push(fromCenter(at(d, i, 0), at(d, i, 1), at(d, i, 2), at(d, i, 3), score, cls));
  }
  return out;
}

/** Rows [.., K, F] read as detections already past NMS; `col` names the columns. */
interface RowCols {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  score: number;
  cls: number;
  batch?: number;
}

function rowEvidence(d: Vals, k: number, width: number, c: RowCols): boolean {
  for (let i = 0; i < k; i++) {
    const r = (j: number) => d[i * width + j]!;
    if (!unit(r(c.score)) || !isInt(r(c.cls)) || (c.batch !== undefined && !isInt(r(c.batch)))) return false;
    // padding rows are all zeros; a real row has its corners in order
    if (r(c.score) > 0 && (r(c.x1) < r(c.x0) || r(c.y1) < r(c.y0))) return false;
  }
  return true;
}

function decodeRows(t: OutputTensor, minScore: number, c: RowCols): Box[] {
  const width = t.dims[t.dims.length - 1]!;
  const k = t.data.length / width;
  const d = t.data;
  const out: Box[] = [];
  for (let i = 0; i < k; i++) {
    const r = (j: number) => d[i * width + j]!;
    if (c.batch !== undefined && r(c.batch) !== 0) continue;
    if (r(c.score) >= minScore) out.push(corners(r(c.x0), r(c.y0), r(c.x1), r(c.y1), r(c.score), r(c.cls)));
  }
  return out;
}

const ROWS6: RowCols = { x0: 0, y0: 1, x1: 2, y1: 3, score: 4, cls: 5 };
/** YOLOv7's end-to-end ONNX export: batch id, corners, class id, score. */
const ROWS7: RowCols = { batch: 0, x0: 1, y0: 2, x1: 3, y1: 4, cls: 5, score: 6 };

/** The [1, K] outputs of a split post-NMS export: scores, and labels when there are any (by name, else by integer values). */
function splitRoles(outs: Outputs, k: number, boxes: string, strict: boolean): Record<string, string> | undefined {
  const rest = Object.keys(outs).filter((n) => n !== boxes);
  const perBoxShape = (n: string) => rankOf(outs[n]!) === 2 && outs[n]!.dims[0] === 1 && outs[n]!.dims[1] === k;
  // a count is one number; by name when K = 1 makes it look per-box
  const num = rest.filter((n) => outs[n]!.data.length === 1 && rankOf(outs[n]!) <= 2 && (/num|count/i.test(n) || !perBoxShape(n)));
  const perBox = rest.filter((n) => !num.includes(n) && perBoxShape(n));
  if (perBox.length < 1 || perBox.length > 2 || num.length > 1) return undefined;
  if (strict && rest.length !== perBox.length + num.length) return undefined;
  const labelish = (n: string) => /label|class|cls/i.test(n);
  const scoreish = (n: string) => /score|conf|prob/i.test(n);
  const ints = (n: string) => every(outs[n]!.data, k, 1, 0, isInt);
  let labels: string | undefined;
  if (perBox.length === 2) {
    labels = perBox.find(labelish) ?? perBox.find((n) => !scoreish(n) && perBox.some(scoreish));
    // unnamed: the integer-valued one; with neither or both (no boxes at all), the export order: scores, then labels
    const intValued = perBox.filter(ints);
    labels ??= intValued.length === 1 ? intValued[0] : perBox[1];
  }
  const scores = perBox.find((n) => n !== labels)!;
  if (strict && (!every(outs[scores]!.data, k, 1, 0, unit) || (labels && !ints(labels)))) return undefined;
  return { boxes, scores, ...(labels ? { labels } : {}), ...(num[0] ? { num: num[0] } : {}) };
}

function decodeSplit(outs: Outputs, roles: Readonly<Record<string, string>>, minScore: number, boxWidth: number): Box[] {
  const b = outs[roles.boxes!]!.data;
  const s = roles.scores ? outs[roles.scores]!.data : undefined;
  const l = roles.labels ? outs[roles.labels]!.data : undefined;
  let k = b.length / boxWidth;
  if (roles.num) k = Math.min(k, outs[roles.num]!.data[0]!);
  const out: Box[] = [];
  for (let i = 0; i < k; i++) {
    const score = s ? s[i]! : b[i * boxWidth + 4]!;
    if (score < minScore) continue;
    const at = i * boxWidth;
    out.push(corners(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!, score, l ? l[i]! : 0));
  }
  return out;
}

/**
 * SSD: [1, N, 4] corners and [1, N, C] scores, the same N (or [1, C, N] scores, as PP-YOLOE
 * exports them); rows of softmax scores mean a background column 0.
 */
function ssdRoles(outs: Outputs, strict: boolean): Recognised | undefined {
  const names = Object.keys(outs);
  if (strict && names.length !== 2) return undefined;
  const r3 = names.filter((n) => rankOf(outs[n]!) === 3 && outs[n]!.dims[0] === 1);
  const boxes = r3.filter((n) => outs[n]!.dims[2] === 4);
  for (const bx of boxes) {
    const n = outs[bx]!.dims[1]!;
    const scores = r3.filter((s) => s !== bx && (outs[s]!.dims[1] === n || outs[s]!.dims[2] === n));
    if (scores.length !== 1) continue;
    const st = outs[scores[0]!]!;
    const transposed = st.dims[1] !== n;
    const c = transposed ? st.dims[1]! : st.dims[2]!;
    const at = (i: number, j: number) => st.data[transposed ? j * n + i : i * c + j]!;
    if (strict) {
      if (!every(st.data, n * c, 1, 0, unit)) return undefined;
      // decoded corners in order wherever a class scores; anchor offsets still to decode do not pass
      const b = outs[bx]!.data;
      for (let i = 0; i < n; i++) {
        let m = 0;
        for (let j = 0; j < c; j++) m = Math.max(m, at(i, j));
        if (m >= 0.25 && (b[i * 4 + 2]! < b[i * 4]! || b[i * 4 + 3]! < b[i * 4 + 1]!)) return undefined;
      }
    }
    let softmax = c > 1;
    for (let i = 0; softmax && i < n; i++) {
      let sum = 0;
      for (let j = 0; j < c; j++) sum += at(i, j);
      softmax = Math.abs(sum - 1) < 1e-3;
    }
    const roles = { boxes: bx, scores: scores[0]!, ...(transposed ? { transposed: 'scores' } : {}) };
    return { layout: 'ssd', roles, classes: softmax ? c - 1 : c, background: softmax };
  }
  return undefined;
}

function decodeSsd(outs: Outputs, rec: Recognised, minScore: number): Box[] {
  const b = outs[rec.roles.boxes!]!.data;
  const st = outs[rec.roles.scores!]!;
  const n = b.length / 4;
  const transposed = rec.roles.transposed !== undefined;
  const c = transposed ? st.dims[1]! : st.dims[2]!;
  const skip = rec.background ? 1 : 0;
  const out: Box[] = [];
  for (let i = 0; i < n; i++) {
    const [cls, score] = best((j) => st.data[transposed ? (skip + j) * n + i : i * c + skip + j]!, c - skip);
    if (score >= minScore) out.push(corners(b[i * 4]!, b[i * 4 + 1]!, b[i * 4 + 2]!, b[i * 4 + 3]!, score, cls));
  }
  return out;
}

export interface LayoutDef {
  readonly describe: string;
  /** Already past NMS in the model; raw layouts' boxes go through per-class NMS here. */
  readonly builtInNms: boolean;
  recognise(outs: Outputs, strict: boolean): Recognised | undefined;
  /** Every box scoring at least `minScore`, before any NMS of ours. */
  decode(outs: Outputs, rec: Recognised, minScore: number): Box[];
}

/** Each layout's recogniser and decoder. */
export const LAYOUTS = {
  rows6: {
    describe: 'NMS rows [1, K, 6]: x0, y0, x1, y1, score, class (Ultralytics export with nms=True)',
    builtInNms: true,
    recognise(outs) {
      const names = Object.keys(outs);
      const t = outs[names[0]!]!;
      if (names.length !== 1 || rankOf(t) !== 3 || t.dims[0] !== 1 || t.dims[2] !== 6) return undefined;
      // evidence even when the user named the task: a one-class YOLOv5 [1, N, 6] has the same shape
      if (!rowEvidence(t.data, t.dims[1]!, 6, ROWS6)) return undefined;
      return { layout: 'rows6', roles: { rows: names[0]! }, classes: DECODE.classSlots };
    },
    decode: (outs, rec, min) => decodeRows(outs[rec.roles.rows!]!, min, ROWS6),
  },
  rows7: {
    describe: 'NMS rows [K, 7]: batch, x0, y0, x1, y1, class, score (YOLOv7 end-to-end export)',
    builtInNms: true,
    recognise(outs, strict) {
      const names = Object.keys(outs);
      const t = outs[names[0]!]!;
      if (names.length !== 1 || rankOf(t) !== 2 || t.dims[1] !== 7) return undefined;
      if (strict && !rowEvidence(t.data, t.dims[0]!, 7, ROWS7)) return undefined;
      return { layout: 'rows7', roles: { rows: names[0]! }, classes: DECODE.classSlots };
    },
    decode: (outs, rec, min) => decodeRows(outs[rec.roles.rows!]!, min, ROWS7),
  },
  split: {
    describe:
      'NMS outputs boxes [1, K, 4] + scores [1, K] (+ labels [1, K]) (+ num_detections [1, 1]), as TensorRT EfficientNMS / ONNX exports emit',
    builtInNms: true,
    recognise(outs, strict) {
      const boxes = Object.keys(outs).filter((n) => rankOf(outs[n]!) === 3 && outs[n]!.dims[0] === 1 && outs[n]!.dims[2] === 4);
      if (boxes.length !== 1) return undefined;
      const roles = splitRoles(outs, outs[boxes[0]!]!.dims[1]!, boxes[0]!, strict);
      return roles && { layout: 'split', roles, classes: DECODE.classSlots };
    },
    decode: (outs, rec, min) => decodeSplit(outs, rec.roles, min, 4),
  },
  dets5: {
    describe: 'NMS outputs dets [1, K, 5] (x0, y0, x1, y1, score) + labels [1, K] (MMDeploy export)',
    builtInNms: true,
    recognise(outs, strict) {
      const dets = Object.keys(outs).filter((n) => rankOf(outs[n]!) === 3 && outs[n]!.dims[0] === 1 && outs[n]!.dims[2] === 5);
      if (dets.length !== 1) return undefined;
      const k = outs[dets[0]!]!.dims[1]!;
      const rest = Object.keys(outs).filter((n) => n !== dets[0]);
      if (rest.length > 1) return undefined;
      const labels = rest[0];
      if (labels !== undefined && (rankOf(outs[labels]!) !== 2 || outs[labels]!.dims[1] !== k)) return undefined;
      const d = outs[dets[0]!]!.data;
      if (strict && (!labels || !every(outs[labels]!.data, k, 1, 0, isInt) || !every(d, k, 5, 4, unit))) return undefined;
      return { layout: 'dets5', roles: { boxes: dets[0]!, ...(labels ? { labels } : {}) }, classes: DECODE.classSlots };
    },
    decode: (outs, rec, min) => decodeSplit(outs, rec.roles, min, 5),
  },
  ssd: {
    describe: 'SSD-style boxes [1, N, 4] (x0, y0, x1, y1) + scores [1, N, C] or [1, C, N] (PP-YOLOE); softmax rows: column 0 is background',
    builtInNms: false,
    recognise: ssdRoles,
    decode: decodeSsd,
  },
  yolov5: {
    describe: 'YOLOv5-style raw [1, N, 5+C]: cx, cy, w, h, objectness, class scores (N > 5+C)',
    builtInNms: false,
    recognise(outs, strict) {
      const raw = rawOutput(outs, strict);
      if (!raw) return undefined;
      const [, n, f] = outs[raw]!.dims as [number, number, number];
      if (f < 6 || n <= f) return undefined;
      if (strict && !yoloEvidence(outs[raw]!, n, f, (d, i, j) => d[i * f + j]!)) return undefined;
      return { layout: 'yolov5', roles: { raw }, classes: f - 5 };
    },
    decode(outs, rec, min) {
      const t = outs[rec.roles.raw!]!;
      const [, n, f] = t.dims as [number, number, number];
      return decodeYolo(t, min, n, f, (d, i, j) => d[i * f + j]!, true);
    },
  },
  yolov8: {
    describe: 'YOLOv8-style raw [1, 4+C, N]: cx, cy, w, h, class scores, one column per anchor (N > 4+C)',
    builtInNms: false,
    recognise(outs, strict) {
      const raw = rawOutput(outs, strict);
      if (!raw) return undefined;
      const [, f, n] = outs[raw]!.dims as [number, number, number];
      if (f < 5 || n <= f) return undefined;
      if (strict && !yoloEvidence(outs[raw]!, n, f, (d, i, j) => d[j * n + i]!)) return undefined;
      return { layout: 'yolov8', roles: { raw }, classes: f - 4 };
    },
    decode(outs, rec, min) {
      const t = outs[rec.roles.raw!]!;
      const [, f, n] = t.dims as [number, number, number];
      return decodeYolo(t, min, n, f, (d, i, j) => d[j * n + i]!, false);
    },
  },
} as const satisfies Record<LayoutName, LayoutDef>;

/** The first layout these outputs have; `strict` asks for evidence in the values too (auto-detection). */
export function recogniseDetector(outs: Outputs, strict: boolean): Recognised | undefined {
  for (const name of LAYOUT_NAMES) {
    const def: LayoutDef = LAYOUTS[name];
    const r = def.recognise(outs, strict);
    if (r) return r;
  }
  return undefined;
}

/**
 * Detections scoring at least `minScore`; for raw layouts after per-class NMS (IoU
 * DECODE.nmsIou, at most DECODE.maxDet kept), as the model's users would run it.
 */
export function decodeDetections(outs: Outputs, rec: Recognised, minScore: number): Box[] {
  const def: LayoutDef = LAYOUTS[rec.layout];
  const boxes = def.decode(outs, rec, minScore);
  return def.builtInNms ? boxes : nms(boxes, DECODE.nmsIou, DECODE.maxDet);
}
