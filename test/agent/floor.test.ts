// The fidelity floor at run time (issue 16): step-down never moves to a frontier entry below the
// budgets' minFidelity (it skips such entries to a faster one that keeps the floor, or stays),
// unless the user prefers latency; a fit's choice below the floor is replaced by the best entry
// that keeps it, the original at worst; and what cannot be met is said in words. Scripted
// latencies: the decisions, not the box's speed, are under test.
import t from 'tap';
import { Adaptation } from '../../src/agent/adaptation.js';
import { deployableChoice, fidelityFloor, unmetBudgets } from '../../src/agent/floor.js';
import type { FrontierEntry } from '../../src/fit/types.js';

function entry(id: string, latencyP50Ms: number, fidelity: number, modelRssMb = 10): FrontierEntry {
  return {
    id,
    config: { structured: 0, unstructured: 0, quant: 'none', threads: 1 },
    modelPath: `/nowhere/${id}.onnx`,
    sha256: id.padEnd(64, '0'),
    sizeBytes: 1000,
    latencyP50Ms,
    latencyP95Ms: latencyP50Ms * 1.2,
    modelRssMb,
    fidelity,
    meets: { latency: false, ram: true, fidelity: fidelity >= 0.98 },
  };
}

// largest/slowest first, as a fit stores it; L2 is fast but below a 0.98 floor, L3 keeps it
const frontier = [entry('L0', 10, 1), entry('L1', 8, 0.99), entry('L2', 4, 0.5), entry('L3', 6, 0.985), entry('L4', 2, 0.3)];

/** Feed `n` probes at `live` ms; the decisions that were not 'stay'. */
function probe(a: Adaptation, live: number, budget: number, level: number, floor: number | null, n: number) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const d = a.observe(live, budget, frontier, level, 0, floor);
    if (d.kind !== 'stay') out.push(d);
  }
  return out;
}

t.test('step-down skips entries below the floor and stops at the last one that keeps it', async (t) => {
  const a = new Adaptation(2, 3, 0.9);
  t.same(probe(a, 20, 5, 0, 0.98, 2), [{ kind: 'down', to: 1 }], 'L0 -> L1 (0.99 keeps 0.98)');
  t.same(probe(a, 20, 5, 1, 0.98, 2), [{ kind: 'down', to: 3 }], 'L1 -> L3: L2 (0.5) is skipped');
  t.same(probe(a, 20, 5, 3, 0.98, 20), [], 'at L3 nothing faster keeps the floor: it stays, however long the budget is broken');
});

t.test("without a floor (prefer 'latency', or no minFidelity) step-down walks the whole frontier", async (t) => {
  const a = new Adaptation(2, 3, 0.9);
  t.same(probe(a, 20, 5, 1, null, 2), [{ kind: 'down', to: 2 }]);
  t.same(probe(a, 20, 5, 3, null, 2), [{ kind: 'down', to: 4 }]);
  t.equal(fidelityFloor({ minFidelity: 0.98 }, 'latency'), null);
  t.equal(fidelityFloor({ minFidelity: 0.98 }, 'fidelity'), 0.98);
  t.equal(fidelityFloor({ latencyMs: 3 }, 'fidelity'), null);
});

t.test('a floor raised at run time (set-budget) is obeyed by the next decision', async (t) => {
  const a = new Adaptation(1, 3, 0.9);
  t.same(probe(a, 20, 5, 1, 0.4, 1), [{ kind: 'down', to: 2 }], 'floor 0.4: L2 (0.5) is allowed');
  t.same(probe(a, 20, 5, 1, 0.99, 5), [], 'floor 0.99: nothing below L1 keeps it');
});

t.test('step-up skips entries below the floor on the way back to the choice', async (t) => {
  const a = new Adaptation(2, 2, 0.9);
  // at L3 (6 ms fit-time) live 1 ms: L1 predicted 8/6 ms, well within 0.9 x 5 ms; L2 is not a stop
  const ups = [];
  for (let i = 0; i < 2; i++) {
    const d = a.observe(1, 5, frontier, 3, 1, 0.98);
    if (d.kind !== 'stay') ups.push(d);
  }
  t.same(ups, [{ kind: 'up', to: 1 }]);
});

t.test("a fit's choice below the floor is replaced by the best entry that keeps it, the original at worst", async (t) => {
  const b = { latencyMs: 5, minFidelity: 0.98 };
  t.equal(deployableChoice(frontier, 'L1', b, 'fidelity', 10)?.id, 'L1', 'a choice that keeps the floor stays');
  t.equal(deployableChoice(frontier, 'L2', b, 'fidelity', 10)?.id, 'L3', 'L2 (0.5) -> L3, the fastest that keeps 0.98');
  t.equal(deployableChoice(frontier, 'L2', b, 'latency', 10)?.id, 'L2', "prefer 'latency' keeps the fit's choice");
  t.equal(deployableChoice(frontier, 'L4', { ...b, ramMb: 5 }, 'fidelity', 10)?.id, 'L3', 'every entry misses RAM alike: latency decides');
  const low = [entry('a', 4, 0.5), entry('b', 2, 0.3)];
  t.equal(deployableChoice(low, 'b', b, 'fidelity', 10), null, 'nothing keeps the floor: the original');
});

t.test('the shortfall is said in words: which budget, the figures, and what stays deployed', async (t) => {
  const u = unmetBudgets(frontier[3]!, { latencyMs: 5, minFidelity: 0.98 }, 10, 'top1');
  t.ok(u);
  t.same(u!.shortfall, { latencyMs: 1 });
  t.equal(u!.keeping, 'L3');
  t.equal(u!.message, 'latency 6.0 ms p50 vs budget 5.0 ms: cannot be met; keeping L3 (top1 0.985)');
  const o = unmetBudgets(null, { latencyFactor: 0.5, minFidelity: 0.98 }, 62, null);
  t.match(
    o!.message,
    /^latency 62 ms p50 vs budget 31 ms \(0\.5x of the original 62 ms\): cannot be met; keeping original \(fidelity 1\.000\)$/,
  );
  t.equal(unmetBudgets(frontier[1]!, { latencyMs: 9, minFidelity: 0.98 }, 10, null), null, 'every budget met: nothing to say');
});
