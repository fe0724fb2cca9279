// Text detection by probability map (DB, PP-OCR det) judged by its boxes (issue 16): the map
// [N, 1, H, W] is cut into text boxes the way PP-OCR's DBPostProcess does, for the reference and
// the candidate alike, and the candidate's boxes matched to the reference's at IoU >= 0.5.
// A map's cosine says little about this: a static-int8 det with map cosine 0.89 still finds
// most of the original's boxes.
import type { Outputs } from './compare.js';
import type { TaskDef } from './task-def.js';
import { MASK_THRESHOLD, maskCounts } from './metrics.js';
import { boxF1Unit, matchBoxes, prf, type Box } from './boxes.js';
import { meanInRect, minAreaRect, rectBounds } from './min-rect.js';

/** PP-OCR's box_thresh (det_db_box_thresh at inference): a region whose box scores below this is no text box. */
export const BOX_THRESH = 0.6;
/** PP-OCR's min_size: regions whose rectangle's shorter side (between pixel centres) is below this are dropped; after unclipping, below this + 2. */
export const MIN_BOX_SIDE = 3;
/** PP-OCR's det_db_unclip_ratio at inference: each box grows by area x ratio / perimeter on every side. */
export const UNCLIP_RATIO = 1.5;

/** A single-channel map [N, 1, H, W]. */
export const isProbabilityMap = (dims: readonly number[]): boolean => dims.length === 4 && dims[1] === 1 && dims[2]! > 1 && dims[3]! > 1;

/**
 * Text boxes of one map (h x w values from `off`), cut as PP-OCR's DBPostProcess cuts them
 * (boxes_from_bitmap, score_mode 'fast'): pixels above MASK_THRESHOLD, grouped into 8-connected
 * regions (cv2.findContours traces 8-connected outlines); per region the smallest rotated
 * rectangle around its pixel centres (cv2.minAreaRect), dropped when its shorter side is under
 * MIN_BOX_SIDE; its score the mean map value over that rectangle, background included
 * (box_score_fast), dropped under BOX_THRESH; then the rectangle grown on every side by
 * area x UNCLIP_RATIO / perimeter (unclip) and dropped when its shorter side is under
 * MIN_BOX_SIDE + 2. Each box is the grown rectangle's axis-aligned bounds, clipped to the map
 * (matching compares those), its score the region's. Not reproduced: the inner outlines of
 * regions with holes, which findContours lists too (their rectangles enclose the hole and score
 * low) and the rounded corners of the grown polygon, which do not change its bounds.
 * One flood fill per region over a Uint8Array with an Int32Array stack: every pixel is visited
 * once; the rectangle is fitted to each row's two outermost pixels (their hull is the region's).
 */
export function textBoxes(map: ArrayLike<number>, off: number, h: number, w: number): Box[] {
  const n = h * w;
  // 0 = background, 1 = text not yet visited, 2 = visited
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) if (map[off + i]! > MASK_THRESHOLD) mask[i] = 1;
  const stack = new Int32Array(n);
  // each row's outermost pixels of the region being filled; rowOf marks the rows it touched
  const rowMin = new Int32Array(h),
    rowMax = new Int32Array(h),
    rowOf = new Int32Array(h).fill(-1);
  const boxes: Box[] = [];
  for (let seed = 0; seed < n; seed++) {
    if (mask[seed] !== 1) continue;
    let top = 0;
    stack[top++] = seed;
    mask[seed] = 2;
    const rows: number[] = [];
    while (top > 0) {
      const p = stack[--top]!;
      const y = (p / w) | 0;
      const x = p - y * w;
      if (rowOf[y] !== seed) {
        rowOf[y] = seed;
        rowMin[y] = x;
        rowMax[y] = x;
        rows.push(y);
      } else if (x < rowMin[y]!) rowMin[y] = x;
      else if (x > rowMax[y]!) rowMax[y] = x;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= w) continue;
          const q = yy * w + xx;
          if (mask[q] === 1) {
            mask[q] = 2;
            stack[top++] = q;
          }
        }
      }
    }
    const xs = rows.flatMap((y) => [rowMin[y]!, rowMax[y]!]);
    const ys = rows.flatMap((y) => [y, y]);
    const rect = minAreaRect(xs, ys);
    const side = Math.min(rect.width, rect.height);
    if (side < MIN_BOX_SIDE) continue;
    const score = meanInRect(map, off, h, w, rect);
    if (score < BOX_THRESH) continue;
    const d = (rect.width * rect.height * UNCLIP_RATIO) / (2 * (rect.width + rect.height));
    if (side + 2 * d < MIN_BOX_SIDE + 2) continue;
    const b = rectBounds({ ...rect, width: rect.width + 2 * d, height: rect.height + 2 * d });
    boxes.push({ x0: Math.max(0, b.x0), y0: Math.max(0, b.y0), x1: Math.min(w, b.x1), y1: Math.min(h, b.y1), score });
  }
  return boxes;
}

const mapOutput = (ref: Outputs): string | undefined => Object.keys(ref).find((n) => isProbabilityMap(ref[n]!.dims));

export const TEXT_DET_TASK: TaskDef = {
  describe: "box F1 of the text boxes cut from the probability map, matched to the reference's at IoU >= 0.5",
  metric: 'boxF1',
  // the maps' agreement pixel by pixel: where whole boxes tie (det's held-out images all score box F1
  // 0.99-1.0 at every evaluation of a training run), mask IoU keeps moving with what the boxes are cut from
  finer: 'maskIoU',
  applies: (ref) => mapOutput(ref) !== undefined,
  // [true positives, false positives, false negatives, images, mask intersection, mask union]
  stats(ref, got) {
    const name = mapOutput(ref)!;
    const [n, , h, w] = ref[name]!.dims as [number, number, number, number];
    let tp = 0,
      fp = 0,
      fn = 0;
    for (let i = 0; i < n; i++) {
      const m = matchBoxes(textBoxes(ref[name]!.data, i * h * w, h, w), textBoxes(got[name]!.data, i * h * w, h, w));
      tp += m.tp;
      fp += m.fp;
      fn += m.fn;
    }
    return [tp, fp, fn, n, ...maskCounts(ref[name]!.data, got[name]!.data)];
  },
  figures([tp, fp, fn, , inter, union]) {
    const { precision, recall, f1 } = prf(tp!, fp!, fn!);
    // pooled over the images (1 when neither map has text), as eval's mask IoU
    const maskIoU = union ? inter! / union : 1;
    return { value: f1, boxF1: f1, precision, recall, maskIoU, refBoxes: tp! + fn!, boxes: tp! + fp! };
  },
  unit: ([tp, , fn]) => boxF1Unit(tp! + fn!),
};
