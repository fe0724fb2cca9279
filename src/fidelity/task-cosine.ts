// Embeddings and anything without a known decoding: cosine of the raw outputs, each output pooled
// over samples, the worst output as the headline (eval's default before tasks, issue 15). With no
// decoding there is nothing to compare but the numbers themselves.
import { METRICS } from './metrics.js';
import type { TaskDef } from './task-def.js';

const COS = METRICS.cosine;

function cosineTask(describe: string): TaskDef {
  return {
    describe,
    metric: 'cosine',
    applies: () => true,
    // (a.b, a.a, b.b) per output, outputs in the reference's order (the same every sample)
    stats: (ref, got) => Object.keys(ref).flatMap((n) => COS.stats(ref[n]!.data, got[n]!.data)),
    figures(sum) {
      let worst = 1;
      for (let i = 0; i + 2 < sum.length; i += 3) worst = Math.min(worst, COS.value(sum.slice(i, i + 3)));
      // the headline is in [0, 1]: opposite directions are as useless as orthogonal ones
      return { value: Math.max(0, worst), cosine: worst };
    },
  };
}

export const EMBED_TASK = cosineTask('cosine similarity of the embeddings (worst output, pooled over samples)');
export const RAW_TASK = cosineTask('cosine similarity of the raw outputs (worst output, pooled over samples)');
