// The one fidelity module (issue 15): named metrics over output tensors (metrics.ts), the
// comparison of a candidate's outputs with a reference's over samples (compare.ts), and eval's
// report and labelled accuracy (report.ts). Pure arithmetic: callers run the models.
export * from './metrics.js';
export * from './compare.js';
export * from './report.js';
export * from './boxes.js';
export * from './tasks.js';
export * from './task-def.js';
export * from './task-compare.js';
export { textBoxes, BOX_THRESH, MIN_BOX_SIDE } from './task-textdet.js';
export { ctcGreedy, editDistance, CTC_BLANK } from './task-ctc.js';
