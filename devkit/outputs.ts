// A model's first output for each of a list of samples, copied out of one session: the scripts
// that judge a candidate's outputs against the original's (bench-qat, bench-noise-floor,
// diag-qat-det, judge-det) all read them so, and judge them with judgeDetMaps. Dev-only.
import type { Sample } from '../src/data/inputs.js';
import { cosine } from '../src/fidelity/index.js';
import { TEXT_DET_TASK } from '../src/fidelity/task-textdet.js';
import { openSession, toFeeds } from '../src/runtime/runner.js';

export interface FirstOutput {
  data: Float32Array;
  dims: number[];
}

/** Runs `bytes` on each sample (2 threads, idle pools sleeping) and keeps its first output. */
export async function firstOutputs(bytes: Uint8Array, samples: readonly Sample[]): Promise<FirstOutput[]> {
  const s = await openSession(bytes, { level: 'all', threads: 2, spinning: false });
  const out: FirstOutput[] = [];
  for (const x of samples) {
    const o = (await s.run(toFeeds(x)))[s.outputNames[0]!]!;
    out.push({ data: Float32Array.from(o.data as Float32Array), dims: [...o.dims] });
  }
  await s.release();
  return out;
}

/** Text detection's judge of `got` against `ref`, the original's maps on the same images: each
 * image's map cosine and their mean, and the task's figures pooled over the images (box F1,
 * precision, recall, mask IoU). The det scripts judge a candidate so. */
export function judgeDetMaps(ref: readonly FirstOutput[], got: readonly FirstOutput[]) {
  const sum: number[] = [];
  ref.forEach((r, i) => TEXT_DET_TASK.stats({ y: r }, { y: got[i]! }).forEach((v, k) => (sum[k] = (sum[k] ?? 0) + v)));
  const cos = ref.map((r, i) => cosine(r.data, got[i]!.data));
  return { cos, meanCos: cos.reduce((a, b) => a + b, 0) / cos.length, figures: TEXT_DET_TASK.figures(sum) };
}
