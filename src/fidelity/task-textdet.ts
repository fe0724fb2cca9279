// Text detection by probability map (DB, PP-OCR det) judged by its boxes (issue 16): the map
// [N, 1, H, W] is cut into text boxes the way PP-OCR's DBPostProcess does, for the reference and
// the candidate alike, and the candidate's boxes matched to the reference's at IoU >= 0.5.
// A map's cosine says little about this: a static-int8 det with map cosine 0.89 still finds
// most of the original's boxes.
import type { Outputs } from './compare.js';
import type { TaskDef } from './task-def.js';
import { MASK_THRESHOLD, maskCounts } from './metrics.js';
import { boxF1Unit, matchBoxes, prf, type Box } from './boxes.js';

/** PP-OCR's box_thresh: a component whose mean probability is below this is no text box. */
export const BOX_THRESH = 0.6;
/** PP-OCR's min_size: boxes whose shorter side is below this many pixels are dropped. */
export const MIN_BOX_SIDE = 3;

/** A single-channel map [N, 1, H, W]. */
export const isProbabilityMap = (dims: readonly number[]): boolean => dims.length === 4 && dims[1] === 1 && dims[2]! > 1 && dims[3]! > 1;

/**
 * Text boxes of one map (h x w values from `off`): pixels above MASK_THRESHOLD, grouped into
 * 8-connected components (PP-OCR traces each region's outer contour with cv2.findContours,
 * which follows 8-connected pixels, so two pixels touching at a corner are one region there
 * too), each component's bounding box (pixel edges: x1 = last column + 1) and the mean map
 * value over its pixels; components below BOX_THRESH or with a side below MIN_BOX_SIDE dropped.
 * PP-OCR then unclips (dilates) each box by a ratio of its area / perimeter; that is skipped
 * here, since the reference's and the candidate's boxes would be dilated alike and IoU matching
 * at 0.5 hardly changes. Boxes are axis-aligned where PP-OCR fits rotated rectangles: the
 * comparison is between two models' maps, not against ground truth.
 * One flood fill per component over a Uint8Array with an Int32Array stack: every pixel is
 * visited once, no per-pixel objects (a 640x640 map takes a few ms).
 */
export function textBoxes(map: ArrayLike<number>, off: number, h: number, w: number): Box[] {
  const n = h * w;
  // 0 = background, 1 = text not yet visited, 2 = visited
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) if (map[off + i]! > MASK_THRESHOLD) mask[i] = 1;
  const stack = new Int32Array(n);
  const boxes: Box[] = [];
  for (let seed = 0; seed < n; seed++) {
    if (mask[seed] !== 1) continue;
    let top = 0;
    stack[top++] = seed;
    mask[seed] = 2;
    let x0 = w,
      y0 = h,
      x1 = -1,
      y1 = -1,
      sum = 0,
      count = 0;
    while (top > 0) {
      const p = stack[--top]!;
      const y = (p / w) | 0;
      const x = p - y * w;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      sum += map[off + p]!;
      count++;
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
    const score = sum / count;
    if (score < BOX_THRESH || Math.min(x1 - x0 + 1, y1 - y0 + 1) < MIN_BOX_SIDE) continue;
    boxes.push({ x0, y0, x1: x1 + 1, y1: y1 + 1, score });
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
