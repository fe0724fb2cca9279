// Classification judged by its labels: the candidate's top-1 class against the reference's on
// every row of every class-score output (issue 16). Accuracy against true labels stays
// report.ts's accuracy(); this compares with the original model, which needs no labels.
import { isScoreShape } from './report.js';
import { argmax, topK } from './metrics.js';
import type { Outputs } from './compare.js';
import type { TaskDef, TaskFigures } from './task-def.js';

/** Score outputs ([N, C], [N, 1, C] ...), in the reference's order. */
const scoreOutputs = (ref: Outputs): string[] => Object.keys(ref).filter((n) => isScoreShape(ref[n]!.dims));

export const CLASSIFY_TASK: TaskDef = {
  describe: "top-1 agreement with the reference's labels (top-5 as a figure when there are more than 5 classes)",
  metric: 'top1',
  applies: (ref) => scoreOutputs(ref).length > 0,
  // [top-1 agreements, rows, top-5 hits, rows with more than 5 classes]
  stats(ref, got) {
    let agree = 0,
      rows = 0,
      hits5 = 0,
      rows5 = 0;
    for (const name of scoreOutputs(ref)) {
      const a = ref[name]!.data;
      const b = got[name]!.data;
      const c = ref[name]!.dims[ref[name]!.dims.length - 1]!;
      for (let off = 0; off < a.length; off += c) {
        const want = argmax(a, off, c);
        if (argmax(b, off, c) === want) agree++;
        rows++;
        if (c > 5) {
          if (topK(b, off, c, 5).includes(want)) hits5++;
          rows5++;
        }
      }
    }
    return [agree, rows, hits5, rows5];
  },
  figures([agree, rows, hits5, rows5]) {
    const top1 = rows ? agree! / rows : 1;
    const f: TaskFigures = { value: top1, top1 };
    if (rows5) f.top5 = hits5! / rows5;
    return f;
  },
  unit: ([, rows]) => 1 / Math.max(1, rows!),
};
