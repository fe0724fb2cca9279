// Side-by-side timing for the benchmark scripts: one warm-up run per session, then `runs` rounds
// that time every session once each, so load drift on a shared box hits all of them alike; odd
// rounds go in reverse order, so no session always runs right after another. Open the sessions
// with idle pools sleeping (openSession's spinning: false): the same static-int8 det timed against
// itself (A/A, 15 rounds, 4 repeats) gave 0.99-1.12x with onnxruntime's default spinning pools and
// 0.98-1.01x with sleeping ones.
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
    for (let j = 0; j < sessions.length; j++) {
      const k = i % 2 === 0 ? j : sessions.length - 1 - j;
      const t = performance.now();
      await sessions[k]!.run(feeds);
      ts[k]!.push(performance.now() - t);
    }
  }
  return ts.map(median);
}
