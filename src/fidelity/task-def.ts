// The shape every task metric takes (issue 16): a task decodes the reference's and the
// candidate's outputs the way the model's users read them (labels, boxes, text) and compares the
// decoded results. Statistics are per sample and summed over samples, so a caller can add
// samples one at a time and pool them, like the raw-output metrics of metrics.ts.
import type { Outputs } from './compare.js';

/** A task's figures from summed statistics: `value` is the headline in [0, 1] (1 = the reference's own). */
export interface TaskFigures {
  value: number;
  [figure: string]: number;
}

export interface TaskDef {
  readonly describe: string;
  /** Name of the headline figure, as printed and stored ('top1', 'boxF1', 'textAgreement', 'cosine'). */
  readonly metric: string;
  /**
   * Name of a finer figure (in `figures`) that orders results the headline ties on: a headline
   * counted in boxes or samples stops moving on a small held-out set long before the outputs stop
   * improving. Absent: nothing finer than the headline.
   */
  readonly finer?: string;
  /** Whether these reference outputs have this task's layout (auto-detection). */
  applies(ref: Outputs): boolean;
  /** One sample's sufficient statistics: the candidate's decoded outputs against the reference's (same inputs). */
  stats(ref: Outputs, got: Outputs): number[];
  /** Headline and named figures from statistics summed over samples. */
  figures(sum: readonly number[]): TaskFigures;
  /**
   * What one counted item (a box, a row, a character) moves the headline by, from the reference
   * compared with itself (summed statistics): the metric's resolution on this data. Absent for
   * continuous metrics (cosine).
   */
  unit?(sum: readonly number[]): number;
}
