// Default random crops for training on large images (issue 18). A fully convolutional model (det)
// learns from a crop as from the whole image at a fraction of the compute per row, so with no
// augmentation given, distillation and QAT train images of CROP_FROM+ pixels a side on random
// crops, CROP_BATCH rows a step, and shrink the crops when one row does not fit the training RAM
// budget. One home for it: the two used to differ (QAT trained det's whole 640x640 images on the
// default path, 126 steps in 12 minutes, while every QAT det figure was measured on crops).
import { EdgefitError, isEdgefitError } from '../../errors.js';
import type { Sample } from '../../data/inputs.js';
import { augmenter, type AugmentOptions } from '../../data/augment.js';
import type { TrainSpec } from './types.js';

/** Images at least this many pixels a side train on random crops when no augmentation is given. */
export const CROP_FROM = 256;
/** Rows per step on such crops (det at 4 x 320x320: 1.6 GB peak in all). */
export const CROP_BATCH = 4;
/**
 * When one row of the default crops does not fit the training RAM budget (ram.ts refuses), the
 * crops shrink by this factor a side and the plan is measured again: a Pi with 2 GB trains det on
 * smaller crops rather than not at all. Memory goes with the pixels, so each try needs ~0.56x.
 */
export const CROP_SHRINK = 0.75;
/** ... down to this side at the least (smaller crops hold too little text to learn from). */
export const CROP_MIN = 96;
/** Crop sides stay multiples of this: detectors downsample by 32 and need whole cells. */
const CROP_ALIGN = 32;

/** The default crop at `scale` of each side, or undefined when it would fall under CROP_MIN. */
export function cropAt(h: number, w: number, scale: number): [number, number] | undefined {
  const side = (v: number): number => Math.floor((v * scale) / CROP_ALIGN) * CROP_ALIGN;
  const c: [number, number] = [side(h), side(w)];
  return Math.min(...c) >= CROP_MIN ? c : undefined;
}

export interface CropPlan {
  augment: NonNullable<TrainSpec['augment']>;
  crop: [number, number];
}

/**
 * For samples of one image input [1, C, H, W] of CROP_FROM+ a side: random crops of `scale` of
 * each side with `extra` (flips, brightness); undefined for anything else (no crops).
 */
export function defaultCrops(samples: readonly Sample[], scale: number, extra: Omit<AugmentOptions, 'crop'> = {}): CropPlan | undefined {
  const first = samples[0];
  const arrays = first ? Object.values(first) : [];
  const img = arrays.find((a) => a.dtype === 'float32' && a.shape.length === 4);
  if (!img || arrays.length !== 1) return undefined;
  const [, , h, w] = img.shape as [number, number, number, number];
  if (Math.min(h, w) < CROP_FROM) return undefined;
  const crop = cropAt(h, w, scale);
  return crop && { augment: augmenter({ ...extra, crop }), crop };
}

export interface ShrinkingCrops {
  /** The crops in use (undefined: the samples get none); smaller once a run had to shrink them. */
  readonly plan: CropPlan | undefined;
  /** `f` with the current crops; on OVER_BUDGET, again with crops CROP_SHRINK smaller, down to CROP_MIN. */
  run<T>(f: (plan: CropPlan | undefined) => Promise<T>): Promise<T>;
}

/** Default crops starting at `scale` of a side, shrinking when the RAM budget refuses one row (later runs keep the smaller). */
export function shrinkingCrops(samples: readonly Sample[], scale: number, extra: Omit<AugmentOptions, 'crop'> = {}): ShrinkingCrops {
  let s = scale;
  let plan = defaultCrops(samples, s, extra);
  return {
    get plan() {
      return plan;
    },
    async run(f) {
      for (;;) {
        try {
          return await f(plan);
        } catch (e) {
          if (!plan || !isEdgefitError(e) || e.code !== 'OVER_BUDGET') throw e;
          const smaller = defaultCrops(samples, s * CROP_SHRINK, extra);
          if (!smaller) throw new EdgefitError('OVER_BUDGET', `${e.message} (even on ${plan.crop.join('x')} crops)`, { cause: e });
          s *= CROP_SHRINK;
          plan = smaller;
        }
      }
    },
  };
}
