// The fit never keeps a pruned candidate that is not faster than the same candidate unpruned
// (issue 17): the rule on timings alone, then inside the search on a box where pruning buys no
// speed (a candidate "meeting" the budget by a hair is still not kept).
import t from 'tap';
import { searchFrontier } from '../../src/fit/search.js';
import { prunedPays } from '../../src/fit/rounds.js';
import type { CandidateConfig, LatencyRound } from '../../src/fit/types.js';

const rounds = (ratios: number[], ref = 100): LatencyRound[] => ratios.map((r) => ({ referenceP50Ms: ref, candidateP50Ms: r * ref }));
const entry = (ratios: number[]) => {
  const r = rounds(ratios);
  const med = [...ratios].sort((a, b) => a - b)[ratios.length >> 1]!;
  return { latencyP50Ms: med * 100, latencyP95Ms: med * 100, referenceP50Ms: 100, latencyRatio: med, rounds: r };
};
const original = { latencyP50Ms: 100, latencyP95Ms: 101, referenceP50Ms: 100 };

t.test('prunedPays: faster than its unpruned twin by more than the noise', async (t) => {
  t.equal(prunedPays(entry([0.6, 0.61, 0.59]), original)?.pays, true, '0.6x of the original, steady: pays');
  t.equal(prunedPays(entry([0.99, 0.98, 0.99]), original)?.pays, false, '0.99x: within the floor margin, not kept');
  t.equal(prunedPays(entry([1.2, 1.1, 1.15]), original)?.pays, false, 'slower: not kept');
  const noisy = prunedPays(entry([0.7, 0.95, 1.3, 0.85, 1.1]), original)!;
  t.equal(noisy.pays, false, `0.95x median with a wide spread: margin ${noisy.margin.toFixed(3)} covers it`);
  // against an int8 twin at 0.5x of the original: the pruned int8 must beat 0.5x, not 1x
  t.equal(prunedPays(entry([0.49, 0.5, 0.49]), entry([0.5, 0.5, 0.5]))?.pays, false, 'int8 pruned ~ int8 unpruned: not kept');
  t.equal(prunedPays(entry([0.3, 0.31, 0.3]), entry([0.5, 0.5, 0.5]))?.pays, true, 'int8 pruned 0.6x of int8: kept');
  t.ok(prunedPays(entry([0.6, 0.6, 0.6]), entry([0.5, 0.9, 1.4]))!.margin > 0.1, "the unpruned twin's own spread counts too");
  t.equal(prunedPays({ latencyP50Ms: 50, latencyP95Ms: 50 }, original), null, 'no ratio to the original: cannot judge');
});

t.test('search: pruned candidates that buy no speed are never kept, even when they scrape under the budget', async (t) => {
  const calls: CandidateConfig[] = [];
  const evaluate = async (c: CandidateConfig) => {
    calls.push(c);
    const base = { modelRssMb: 10, sizeBytes: 1, modelPath: '/x', sha256: 'x' };
    if (c.structured === 0) return { ...base, ...original, fidelity: 1 };
    // pruning at any ratio runs 0.99x of the original: inside the noise
    return { ...base, ...entry([0.99, 0.985, 0.99]), fidelity: 1 - 0.2 * c.structured };
  };
  const out = await searchFrontier(
    { evaluate },
    { budgets: { latencyMs: 99.5, minFidelity: 0.5 }, threads: 2, tryQuant: false, structuredBy: 'latency' },
  );
  t.ok(
    calls.some((c) => c.structured > 0 && c.structuredBy === 'latency'),
    'latency candidates were tried',
  );
  t.equal(out.chosen.config.structured, 0, 'the original is kept');
  t.notOk(out.feasible, 'nothing counts as meeting the budget');
  t.ok(
    out.frontier.every((e) => e.config.structured === 0),
    'no pruned candidate on the frontier',
  );
  t.match(out.notes.join('\n'), /is not faster than the same model unpruned \(0\.99x/, 'the note says why');
  t.match(out.candidates.find((e) => e.config.structured > 0)!.id, /^l0\./, "latency candidates are keyed 'l'");
});

t.test('search: a pruned candidate that is really faster is chosen as before', async (t) => {
  const evaluate = async (c: CandidateConfig) => {
    const base = { modelRssMb: 10, sizeBytes: 1, modelPath: '/x', sha256: 'x' };
    if (c.structured === 0) return { ...base, ...original, fidelity: 1 };
    const r = 1 - 0.9 * c.structured;
    return { ...base, ...entry([r, r * 1.01, r * 0.99]), fidelity: 1 - 0.2 * c.structured };
  };
  const out = await searchFrontier(
    { evaluate },
    { budgets: { latencyFactor: 0.6, minFidelity: 0.5 }, threads: 2, tryQuant: false, structuredBy: 'latency' },
  );
  t.ok(out.feasible);
  t.ok(out.chosen.config.structured > 0, `chose ${out.chosen.id}`);
  t.notMatch(out.notes.join('\n'), /not faster than the same model unpruned/);
});

t.test("search: a trained candidate is judged by its untrained sibling's timing, since it is that graph", async (t) => {
  // the trained twin timed alone on a loaded box: its sibling's median, a spread of +-40 %
  const spread = [0.6, 1.4, 1, 0.8, 1.32];
  const evaluate = async (c: CandidateConfig) => {
    const base = { modelRssMb: 10, sizeBytes: 1, modelPath: '/x', sha256: 'x' };
    if (c.structured === 0) return { ...base, ...original, fidelity: 1 };
    const ratio = 1 - 0.9 * c.structured;
    const timed = c.train ? entry(spread.map((x) => x * ratio)) : entry([ratio, ratio * 1.01, ratio * 0.99]);
    return { ...base, ...timed, fidelity: 1 - (c.train ? 0.05 : 0.2) * c.structured };
  };
  const out = await searchFrontier(
    { evaluate },
    { budgets: { latencyFactor: 0.85, minFidelity: 0.5 }, threads: 2, tryQuant: false, structuredBy: 'latency', trainMinutes: 2 },
  );
  const trained = out.candidates.find((e) => e.config.train && e.config.threads === 2)!;
  t.ok(trained, `a candidate was trained (${trained?.id})`);
  const own = prunedPays(trained, original)!;
  t.equal(own.pays, false, `on its own timing it would be dropped (${own.ratio.toFixed(2)}x, margin ${own.margin.toFixed(2)})`);
  t.notMatch(out.notes.join('\n'), /train2 is not faster than the same model unpruned/, 'not dropped for its own spread');
  // (the choice is then the same model at 1 thread, which also meets the budget)
  t.equal(out.chosen.id.replace('-t1-', '-t2-'), trained.id, `it is the choice (${out.chosen.id})`);
});

t.test('search: a trained candidate and its untrained sibling are one graph, judged on their rounds pooled', async (t) => {
  // the twin timed on a loaded box: two of its three rounds at 1.6x its sibling's steady timing
  const evaluate = async (c: CandidateConfig) => {
    const base = { modelRssMb: 10, sizeBytes: 1, modelPath: '/x', sha256: 'x' };
    if (c.structured === 0) return { ...base, ...original, fidelity: 1 };
    const r = 1 - 0.9 * c.structured;
    const timed = c.train ? entry([1.6 * r, 0.98 * r, 1.6 * r]) : entry([r, 1.01 * r, 0.99 * r, r, 1.01 * r]);
    return { ...base, ...timed, fidelity: 1 - (c.train ? 0.05 : 0.2) * c.structured };
  };
  const out = await searchFrontier(
    { evaluate },
    { budgets: { latencyFactor: 0.85, minFidelity: 0.5 }, threads: 2, tryQuant: false, structuredBy: 'latency', trainMinutes: 2 },
  );
  const trained = out.candidates.filter((e) => e.config.train);
  t.ok(trained.length > 0, `a candidate was trained (${trained.map((e) => e.id).join(', ')})`);
  // (the fewer-threads step times the trained model at 1 thread too, where no untrained one was timed)
  const pairs = trained.flatMap((e) => out.candidates.filter((x) => x.id === e.id.replace(/-train2$/, '')).map((u) => [u, e] as const));
  t.ok(pairs.length > 0, 'a trained candidate beside its untrained sibling');
  for (const [u, e] of pairs) {
    const pooled = [...u.rounds!, ...e.rounds!].map((x) => x.candidateP50Ms / x.referenceP50Ms).sort((a, b) => a - b);
    const median = (pooled[(pooled.length >> 1) - 1]! + pooled[pooled.length >> 1]!) / 2;
    t.equal(e.rounds!.length, 3, `${e.id} keeps its own rounds`);
    t.ok(Math.abs(e.latencyRatio! - median) < 1e-9 && e.latencyRatio === u.latencyRatio, `${e.id}: one ratio, the pooled median ${median}`);
    t.equal(e.meets.latency, u.meets.latency, `${e.id} and ${u.id}: one latency verdict`);
    t.ok(e.rounds!.filter((x) => x.candidateP50Ms / x.referenceP50Ms > 0.85).length >= 2, 'on its own rounds it would miss 0.85x');
  }
  t.match(out.notes.join('\n'), /train2 is l[\d.]+-u0\.00-none-t2 with trained weights, one graph: both judged on their 8 rounds pooled/);
  t.ok(out.chosen.config.train, `the trained model, closer to the original at the same speed, is the choice (${out.chosen.id})`);
});
