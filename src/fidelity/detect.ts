// Fidelity of a box detector (YOLO/SSD-style, with or without built-in NMS; issue 16): the
// reference model's confident detections are the ground truth, and the candidate is judged as a
// detector is judged against labels: matched at IoU >= 0.5 -> precision, recall, F1 (headline),
// and mAP@0.5 from the candidate's detections ranked by score. Statistics are counts and fixed
// score histograms, so they sum over samples like every task's.
import { EdgefitError } from '../errors.js';
import { boxF1Unit, MATCH_IOU, matchBoxes, prf, type Box } from './boxes.js';
import type { Outputs } from './compare.js';
import { decodeDetections, LAYOUT_NAMES, recogniseDetector, type Recognised } from './detect-layouts.js';
import type { TaskDef, TaskFigures } from './task-def.js';

export const DETECT = {
  /** The reference's detections at this score are the ground truth (YOLO predict's default conf). */
  refScore: 0.25,
  /** The candidate's detections are ranked down to this score for mAP (YOLO val's conf). */
  rankScore: 0.001,
  /**
   * Score bins of the AP histogram, equal width over [0, 1]. 100 bins put an edge exactly at
   * refScore, so true positives (which an identical model has only at >= 0.25) and false
   * positives below it never share a bin and an identical model scores exactly 1; 0.01 of score
   * is finer than the spread of a detector's confident scores, and the histogram stays small to
   * sum (1 + 2 x 100 numbers a class per sample).
   */
  bins: 100,
} as const;

/** Statistics: [tp, fp, fn at refScore, then per class slot: reference boxes, tp per bin, fp per bin]. */
const HEAD = 3;
const SLOT = 1 + 2 * DETECT.bins;

function binOf(score: number): number {
  const b = Math.min(DETECT.bins - 1, Math.floor(score * DETECT.bins));
  // the refScore edge is exact whatever the rounding of score * bins
  const edge = Math.round(DETECT.refScore * DETECT.bins);
  return score < DETECT.refScore ? Math.min(b, edge - 1) : Math.max(b, edge);
}

/** A class's histogram slot: its id, folded into the slots there are (ids are values in post-NMS layouts). */
function slotOf(cls: number | undefined, slots: number): number {
  const id = cls !== undefined && Number.isFinite(cls) ? Math.round(cls) : 0;
  return ((id % slots) + slots) % slots;
}

/**
 * The layout, read from the reference; when a reference output is empty (a post-NMS export that
 * kept no box on this sample) its values cannot tell roles apart, so the candidate's may.
 */
function recognised(ref: Outputs, got: Outputs): Recognised {
  const empty = Object.values(ref).some((t) => t.data.length === 0);
  const fromGot = empty ? recogniseDetector(got, false) : undefined;
  const fromRef = recogniseDetector(ref, false);
  const rec = fromGot && fromGot.layout === fromRef?.layout ? fromGot : fromRef;
  if (!rec)
    throw new EdgefitError(
      'USAGE',
      `outputs ${Object.entries(ref)
        .map(([n, t]) => `${n} [${t.dims.join(', ')}]`)
        .join(', ')} are no box detector's (layouts read: ${LAYOUT_NAMES.join(', ')})`,
    );
  return rec;
}

/**
 * Average precision of one class from its histogram: the PR curve at each bin's lower edge
 * (highest bin first; detections within a bin count as tied), precision made monotone as in
 * VOC 2010+ / COCO, integrated over recall. Within a bin the step is taken at its end, so a bin
 * mixing true and false positives is counted at its worse precision.
 */
export function apFromHistogram(nRef: number, tp: ArrayLike<number>, fp: ArrayLike<number>): number {
  if (nRef <= 0) return 0;
  // per occupied bin, highest first: true positives it adds, and precision at its end
  const gain: number[] = [];
  const precision: number[] = [];
  let ctp = 0,
    cfp = 0;
  for (let b = tp.length - 1; b >= 0; b--) {
    if (!tp[b] && !fp[b]) continue;
    ctp += tp[b]!;
    cfp += fp[b]!;
    gain.push(tp[b]!);
    precision.push(ctp / (ctp + cfp));
  }
  // recall steps as counts, divided once at the end: a perfect curve sums to exactly 1
  let area = 0;
  let env = 0;
  for (let k = gain.length - 1; k >= 0; k--) {
    env = Math.max(env, precision[k]!);
    area += gain[k]! * env;
  }
  return area / nRef;
}

function detectStats(ref: Outputs, got: Outputs): number[] {
  const rec = recognised(ref, got);
  let truth: Box[], found: Box[];
  try {
    truth = decodeDetections(ref, rec, DETECT.refScore);
    found = decodeDetections(got, rec, DETECT.rankScore);
  } catch (e) {
    throw new EdgefitError('EVAL', `cannot read the candidate's detections as ${rec.layout}: ${(e as Error).message}`, { cause: e });
  }
  const slots = rec.classes;
  const s = new Array<number>(HEAD + slots * SLOT).fill(0);
  // one greedy pass by score serves both figures: matches of the detections >= refScore are
  // decided before any lower-scored one is looked at, exactly as matching that subset alone
  const m = matchBoxes(truth, found, MATCH_IOU);
  for (let i = 0; i < found.length; i++) {
    const g = found[i]!;
    const hit = m.matchOf[i]! >= 0;
    if (g.score >= DETECT.refScore) s[hit ? 0 : 1]!++;
    const at = HEAD + slotOf(g.cls, slots) * SLOT + 1 + (hit ? 0 : DETECT.bins) + binOf(g.score);
    s[at]!++;
  }
  for (const t of truth) s[HEAD + slotOf(t.cls, slots) * SLOT]!++;
  s[2] = truth.length - s[0]!;
  return s;
}

function detectFigures(sum: readonly number[]): TaskFigures {
  const [tp, fp, fn] = [sum[0] ?? 0, sum[1] ?? 0, sum[2] ?? 0];
  const { precision, recall, f1 } = prf(tp, fp, fn);
  const aps: number[] = [];
  for (let at = HEAD; at + SLOT <= sum.length; at += SLOT) {
    const nRef = sum[at]!;
    if (nRef > 0) aps.push(apFromHistogram(nRef, sum.slice(at + 1, at + 1 + DETECT.bins), sum.slice(at + 1 + DETECT.bins, at + SLOT)));
  }
  // no reference box anywhere: nothing to rank against, so mAP is what F1 says (1 when nothing was found)
  const mAP50 = aps.length ? aps.reduce((a, b) => a + b, 0) / aps.length : f1;
  return { value: f1, detF1: f1, precision, recall, mAP50, boxes: tp + fp, refBoxes: tp + fn, classes: aps.length };
}

/** The 'detect' task: box detectors of every layout in LAYOUTS. */
export const DETECT_TASK: TaskDef = {
  describe: `box detection: F1 of the candidate's detections against the reference's (score >= ${DETECT.refScore}) at IoU >= ${MATCH_IOU}, and mAP@${MATCH_IOU}`,
  metric: 'detF1',
  applies: (ref) => recogniseDetector(ref, true) !== undefined,
  stats: detectStats,
  figures: detectFigures,
  unit: (sum) => boxF1Unit((sum[0] ?? 0) + (sum[2] ?? 0)),
};
