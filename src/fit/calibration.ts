// What calibrates a fit's candidates and what judges them. A candidate calibrated (quantization
// ranges, pruning importance, bias repair) on the samples it is then judged on looks better than
// it is on data it has never seen, so the two sets never share a sample:
// - FitRequest.judgeDataPath given: it judges; the calibration path (or its calibrate/ subfolder) calibrates;
// - else a calibration folder with calibrate/ and judge/ subfolders: those (assets/calib/det is laid out so);
// - else one flat set, split deterministically by sample order (splitCalibration).
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { InputSet, Sample } from '../data/inputs.js';

/** Samples that calibrate, and the most that judge (each evaluation reads at most this many). */
export const CALIBRATE_LIMIT = 16;
export const JUDGE_LIMIT = 16;
/** Below this many judged samples the fidelity figures are weak, and the fit says so. */
export const WEAK_JUDGE_SAMPLES = 4;

export const SPLITS = ['judge-path', 'folders', 'alternate', 'none', 'synthetic'] as const;
export type Split = (typeof SPLITS)[number];

export interface CalibData {
  samples: Sample[];
  source: string;
  synthetic: boolean;
  /**
   * What the candidates' fidelity is judged on: a data path (loaded per evaluation, as before, so a
   * fit does not hold a second set of 640x640 tensors), the judge half of a split set, or undefined
   * = the evaluator's seeded synthetic inputs.
   */
  judge: string | InputSet | undefined;
  judgeSource: string;
  judgeCount: number;
  /** How the two were separated ('none': one sample, judged on itself, flagged). */
  split: Split;
  /** A training folder beside the calibration data (trainingFolder), loaded only when a candidate trains. */
  train?: string;
}

const isDir = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();

/** The calibration and judge paths for a fit; judge undefined = split the calibration set. */
export function calibrationParts(calibPath: string, judgePath?: string): { calibrate: string; judge?: string; split: Split } {
  const sub = { calibrate: join(calibPath, 'calibrate'), judge: join(calibPath, 'judge') };
  const hasSub = isDir(sub.calibrate) && isDir(sub.judge);
  if (judgePath !== undefined) return { calibrate: hasSub ? sub.calibrate : calibPath, judge: judgePath, split: 'judge-path' };
  if (hasSub) return { calibrate: sub.calibrate, judge: sub.judge, split: 'folders' };
  return { calibrate: calibPath, split: 'alternate' };
}

/**
 * The training images for distillation (issue 18): a `train` folder inside the calibration folder
 * (beside calibrate/ and judge/, as assets/calib/det lays them out) or beside it when the
 * calibration folder is itself a `calibrate` folder (the agent's default). None: training uses
 * the calibration samples, a quarter of them held out. The calibration set stays what it was;
 * with a training folder it is what training is judged on (held out).
 */
export function trainingFolder(calibPath: string): string | undefined {
  const inside = join(calibPath, 'train');
  if (isDir(inside)) return inside;
  const beside = join(dirname(calibPath), 'train');
  return basename(calibPath) === 'calibrate' && isDir(beside) ? beside : undefined;
}

/**
 * Split one flat set: alternate samples in load order (sorted file names; a stack's rows in order)
 * go to calibrate (even) and judge (odd), counted per label in a labelled set so that both halves
 * keep every class (its samples come round-robin over the classes). A single sample cannot be
 * split: it is both, and the fit's notes say so.
 */
export function splitCalibration(set: InputSet): { calibrate: InputSet; judge: InputSet } {
  if (set.samples.length < 2) return { calibrate: set, judge: set };
  const seen = new Map<number, number>();
  const toJudge = set.samples.map((_, i) => {
    const label = set.labels?.[i] ?? 0;
    const k = seen.get(label) ?? 0;
    seen.set(label, k + 1);
    return k % 2 === 1;
  });
  const pick = (want: boolean): InputSet => {
    const idx = toJudge.flatMap((j, i) => (j === want ? [i] : []));
    return {
      ...set,
      samples: idx.map((i) => set.samples[i]!),
      ...(set.labels ? { labels: idx.map((i) => set.labels![i]!) } : {}),
    };
  };
  return { calibrate: pick(false), judge: pick(true) };
}

/** The fit's notes about its data: an unsplittable or small judge set gives weak figures. */
export function calibrationNotes(c: CalibData): string[] {
  if (c.synthetic) return [];
  const notes: string[] = [];
  if (c.split === 'none')
    notes.push('one calibration sample: it also judges the candidates, so their fidelity is flattered; give more data or a judge set');
  if (c.judgeCount < WEAK_JUDGE_SAMPLES)
    notes.push(`fidelity judged on only ${c.judgeCount} sample(s): the figures are weak; give ${WEAK_JUDGE_SAMPLES} or more`);
  return notes;
}
