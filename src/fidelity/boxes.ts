// Boxes, and how two sets of them are matched: the one home of IoU, greedy matching and
// non-maximum suppression, shared by every detection-style task metric (text detection's boxes
// cut from a probability map, YOLO/SSD-style detectors' boxes). Pure arithmetic.

/** An axis-aligned box in pixel (or any common) coordinates, x0 <= x1, y0 <= y1. */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** Confidence (a detector's score, a text box's mean probability). */
  score: number;
  /** Class index, when the detector has classes; boxes of different classes never match. */
  cls?: number;
}

const area = (b: Box): number => Math.max(0, b.x1 - b.x0) * Math.max(0, b.y1 - b.y0);

/** Intersection over union; 0 when both are empty. */
export function iou(a: Box, b: Box): number {
  const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
  const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

/** IoU a match needs (PASCAL VOC's mAP@0.5; ICDAR's text-box protocol uses the same). */
export const MATCH_IOU = 0.5;

export interface BoxMatch {
  /** Candidate boxes matched to a reference box. */
  tp: number;
  /** Candidate boxes matched to none. */
  fp: number;
  /** Reference boxes no candidate box matched. */
  fn: number;
  /** For each candidate box (in the order given), the index of its reference box, or -1. */
  matchOf: number[];
}

/**
 * Greedy matching as in PASCAL VOC / COCO evaluation: candidate boxes in descending score take
 * the unmatched reference box (same class) they overlap most, when that IoU reaches `minIou`.
 * Each reference box is matched at most once, so duplicates count as false positives.
 */
export function matchBoxes(ref: readonly Box[], got: readonly Box[], minIou = MATCH_IOU): BoxMatch {
  const order = got.map((_, i) => i).sort((a, b) => got[b]!.score - got[a]!.score || a - b);
  const taken = new Uint8Array(ref.length);
  const matchOf = new Array<number>(got.length).fill(-1);
  let tp = 0;
  for (const i of order) {
    const g = got[i]!;
    let best = -1;
    let bestIou = minIou;
    for (let j = 0; j < ref.length; j++) {
      const r = ref[j]!;
      if (taken[j] || (r.cls !== undefined && g.cls !== undefined && r.cls !== g.cls)) continue;
      const o = iou(r, g);
      if (o >= bestIou) {
        best = j;
        bestIou = o;
      }
    }
    if (best >= 0) {
      taken[best] = 1;
      matchOf[i] = best;
      tp++;
    }
  }
  return { tp, fp: got.length - tp, fn: ref.length - tp, matchOf };
}

/** What one box missed or extra moves F1 by when n boxes are to be found: 2n / (2n + 1), about 1 / (2n) lower (TaskDef.unit). */
export function boxF1Unit(n: number): number {
  return 1 / (2 * Math.max(1, n));
}

/** Precision, recall and F1 from match counts; both empty (nothing to find, nothing found) is perfect. */
export function prf(tp: number, fp: number, fn: number): { precision: number; recall: number; f1: number } {
  const precision = tp + fp ? tp / (tp + fp) : fn ? 0 : 1;
  const recall = tp + fn ? tp / (tp + fn) : fp ? 0 : 1;
  const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f1 };
}

/**
 * Non-maximum suppression, per class: boxes in descending score, each dropped when it overlaps
 * a kept box of the same class by more than `maxIou`. Keeps at most `limit` boxes.
 */
export function nms(boxes: readonly Box[], maxIou = 0.45, limit = Infinity): Box[] {
  const sorted = [...boxes].sort((a, b) => b.score - a.score);
  const kept: Box[] = [];
  for (const b of sorted) {
    if (kept.length >= limit) break;
    if (kept.some((k) => k.cls === b.cls && iou(k, b) > maxIou)) continue;
    kept.push(b);
  }
  return kept;
}
