// A model's first output for each of a list of samples, copied out of one session: the scripts
// that judge a candidate's outputs against the original's (bench-qat, bench-noise-floor,
// diag-qat-det) all read them so. Dev-only.
import type { Sample } from '../src/data/inputs.js';
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
