// Side-by-side timing for the benchmark scripts: one warm-up run per session, then `runs` rounds
// that time every session once each, so load drift on a shared box hits all of them alike.
import type * as ort from 'onnxruntime-node';

export const median = (a: readonly number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;

/** Median wall time (ms) of each session on `feeds`, measured interleaved. */
export async function interleavedMedians(
  sessions: readonly ort.InferenceSession[],
  feeds: ort.InferenceSession.FeedsType,
  runs: number,
): Promise<number[]> {
  for (const s of sessions) await s.run(feeds);
  const ts: number[][] = sessions.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < sessions.length; k++) {
      const t = performance.now();
      await sessions[k]!.run(feeds);
      ts[k]!.push(performance.now() - t);
    }
  }
  return ts.map(median);
}
