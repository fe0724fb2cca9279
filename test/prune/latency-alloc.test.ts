// Issue 17: kept widths in the kernels' block (any multiple, 'auto'), per-layer widths of a keep
// plan read off the group analysis (checked against really cutting a clone of the cls model), and
// the latency knapsack on hand-made tables: a cut that saves nothing is never taken, the target is
// met by the prediction, floors hold, ties are broken one documented way.
import t from 'tap';
import { OCR_MODELS } from '../../devkit/paths.js';
import { ModelBuilder } from '../../devkit/builder.js';
import { loadModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { cloneModel, type Model } from '../../src/ir/model.js';
import { runPass } from '../../src/passes/pass.js';
import { structuredPrunePass } from '../../src/passes/prune/apply.js';
import { analyzeGroups } from '../../src/passes/prune/groups.js';
import { keepCount, uniformKeep } from '../../src/passes/prune/select.js';
import { scoreGroups } from '../../src/passes/prune/structured.js';
import { layerWidths, weightLayers, widthsFor } from '../../src/passes/prune/widths.js';
import { allocateByLatency, widthLadder } from '../../src/passes/prune/latency-alloc.js';
import { robustTables, theilSen } from '../../src/passes/prune/robust-tables.js';
import { parseRound, resolveRound } from '../../src/passes/prune/round.js';
import { thisCpuBlock } from '../../src/passes/prune/round.js';
import { blockFromCpu, cpuFacts } from '../../src/analyze/latency/hardware.js';
import { predictMs } from '../../src/analyze/latency/predict.js';
import type { LatencyTables, LayerTable } from '../../src/analyze/latency/types.js';
import { layerId, predictModelMs } from '../../src/analyze/latency/index.js';
import { HISTORY_KEY, prune } from '../../src/passes/prune/index.js';

const cls = (): Model => normalize(loadModel(OCR_MODELS.cls.file));

t.test('rounding: any multiple, narrow groups whole, grouped chunks equal', async (t) => {
  t.equal(keepCount(200, 0.5, 16), 96, '100 -> nearest multiple of 16');
  t.equal(keepCount(200, 0.5, 12), 96, 'any positive integer works: 100 -> 96 (a multiple of 12)');
  t.equal(keepCount(64, 0.9, 16), 16, 'never below one block');
  t.equal(keepCount(16, 0.5, 16), 16, 'a group no wider than the block stays whole');
  t.equal(keepCount(12, 0.5, 16), 12, 'narrower than the block: whole');
  const k = keepCount(96, 0.5, 16, 4);
  t.equal(k % 16, 0, 'grouped chunks: the total is a block multiple');
  t.equal((k / 4) % 4, 0, 'and every chunk keeps the same count');
  t.same(widthLadder(40, 16, 1, 0.1), [40, 32, 16], 'ladder: aligned down to block multiples, floor one block');
  t.same(widthLadder(200, 16, 1, 0.3), [200, 192, 176, 160, 144, 128, 112, 96, 80, 64], 'floor: 30% of 200 rounded up to the block');
  t.same(widthLadder(16, 16, 1, 0.1), [16], 'narrow: no step');
  t.same(
    widthLadder(96, 8, 4, 0.1),
    [96, 88, 80, 72, 64, 56, 48, 40, 32, 24, 16],
    'chunks 4 and block 8: steps of 8 (2 per chunk), floor 16 (10% rounded up)',
  );
  t.same(widthLadder(96, 16, 6, 0.1), [96, 48], 'chunks 6 and block 16: steps of 48 (lcm)');
});

t.test("--round: a positive integer or 'auto' from the tables, else the CPU", async (t) => {
  t.equal(parseRound('auto'), 'auto');
  t.equal(parseRound('12'), 12);
  t.equal(parseRound(8), 8);
  for (const bad of [0, -8, 2.5, 'x', '8x', ''])
    t.throws(() => parseRound(bad), /positive integer or 'auto'/, `refuses ${JSON.stringify(bad)}`);
  t.equal(
    resolveRound('auto', { block: 32 }, () => 16),
    32,
    'tables win',
  );
  t.equal(
    resolveRound('auto', undefined, () => 16),
    16,
    'no tables: the CPU block',
  );
  t.equal(
    resolveRound(4, { block: 32 }, () => 16),
    4,
    'an explicit multiple is kept',
  );
  t.equal(thisCpuBlock(), blockFromCpu(cpuFacts()), "auto without tables: the table builder's own CPU rule");
  t.equal(resolveRound('auto'), thisCpuBlock());
});

t.test('per-layer widths of a keep plan equal the widths after really cutting (cls)', async (t) => {
  const m = cls();
  const ga = analyzeGroups(m);
  const scores = scoreGroups(m, ga, 'l2');
  for (const [ratio, round] of [
    [0.5, 8],
    [0.3, 1],
  ] as const) {
    const keep = uniformKeep(ga.groups, scores, ratio, round);
    const predicted = layerWidths(m, ga, keep);
    const c = cloneModel(m);
    const cga = analyzeGroups(c);
    const ids = new Map(ga.groups.map((g, i) => [g.id, cga.groups[i]!.id]));
    runPass(structuredPrunePass, c, { analysis: cga, keep: new Map([...keep].map(([id, k]) => [ids.get(id)!, k])) });
    const after = analyzeGroups(c);
    const real = widthsFor(after, weightLayers(c, after), new Map());
    t.ok(predicted.size >= 50, `${predicted.size} weight layers`);
    t.same([...predicted].sort(), [...real].sort(), `ratio ${ratio}, round ${round}: every layer's (cin, cout) as cut`);
    t.ok(
      [...predicted.values()].some((w, i) => w.cout < [...layerWidths(m, ga, new Map()).values()][i]!.cout),
      'some layers really narrowed',
    );
  }
});

/** Hand-made tables: time ~ cin x cout in whole blocks of 8 (a staircase), measured at block multiples. */
function tablesFor(m: Model, opts: { flat?: Set<string>; unit?: number } = {}): LatencyTables {
  const ga = analyzeGroups(m);
  const full = layerWidths(m, ga, new Map());
  const up = (w: number) => Math.ceil(w / 8) * 8;
  const layers: LayerTable[] = [];
  for (const [node, w] of full) {
    const n = m.graph.nodes.find((x) => layerId(x) === node)!;
    const depthwise = n.opType === 'Conv' && n.attrInt('group', 1) === w.cin && w.cin === w.cout && w.cin > 1;
    const flat = opts.flat?.has(node) ?? false;
    const u = opts.unit ?? 1e-4;
    const time = (ci: number, co: number) => (flat ? u * up(w.cin) * up(w.cout) : depthwise ? u * 9 * up(co) : u * up(ci) * up(co));
    const ladder = (c: number) => [...Array.from({ length: Math.floor((c - 1) / 8) }, (_, i) => (i + 1) * 8), c];
    const ins = depthwise ? [] : ladder(w.cin);
    const outs = ladder(w.cout);
    layers.push({
      node,
      op: n.opType,
      inChannels: w.cin,
      outChannels: w.cout,
      depthwise,
      inWidths: ins,
      inMs: ins.map((c) => time(c, w.cout)),
      outWidths: outs,
      outMs: outs.map((c) => time(w.cin, c)),
      fullMs: time(w.cin, w.cout),
    });
  }
  const sum = layers.reduce((a, l) => a + l.fullMs, 0);
  return {
    version: 1,
    key: { model: 'hand-made', hardware: 'test', threads: 2, shapes: {} },
    block: 8,
    blockSource: 'cpu',
    blockEvidence: [],
    layers,
    modelMs: sum * 1.25, // what pruning does not touch stays in the anchor
    buildMs: 0,
  };
}

t.test('allocateByLatency on hand-made tables (cls)', async (t) => {
  const m = cls();
  const ga = analyzeGroups(m);
  const scores = scoreGroups(m, ga, 'l2');
  // the 200-channel group of p2o.Conv.42: its layers cost the same at any width
  const g200 = ga.groups.find((g) => g.label === 'p2o.Conv.42')!;
  const flat = new Set(g200.actions.filter((a) => a.input === 1 || a.role === 'group').map((a) => a.node.name));
  const tables = tablesFor(m, { flat });
  const target = tables.modelMs * 0.85;
  const a = allocateByLatency(m, ga, { tables, targetMs: target, block: 8, scores });
  t.ok(a.met, 'target met');
  t.ok(a.predictedMs <= target, `predicted ${a.predictedMs.toFixed(4)} <= target ${target.toFixed(4)}`);
  t.ok(a.predictedMs > target * 0.9, 'greedy stops soon after the target (no over-cutting)');
  t.equal(a.counts.get(g200.id), 200, 'a group whose cut saves nothing is never cut');
  t.ok(a.keep.size >= 1, `${a.keep.size} groups cut`);
  for (const grp of ga.groups) {
    const k = a.counts.get(grp.id);
    if (k === undefined || k === grp.size) continue;
    t.equal(k % 8, 0, `${grp.label}: ${k} of ${grp.size} is a block multiple`);
    t.ok(k >= Math.max(8, 0.1 * grp.size), `${grp.label}: above its floor`);
    t.equal(a.keep.get(grp.id)!.length, k, 'keep map agrees with the count');
  }
  // the prediction is the tables' figure for the model really cut that way
  const c = cloneModel(m);
  const cga = analyzeGroups(c);
  const ids = new Map(ga.groups.map((g, i) => [g.id, cga.groups[i]!.id]));
  runPass(structuredPrunePass, c, { analysis: cga, keep: new Map([...a.keep].map(([id, k]) => [ids.get(id)!, k])) });
  const after = analyzeGroups(c);
  t.ok(Math.abs(predictMs(tables, widthsFor(after, weightLayers(c, after), new Map())) - a.predictedMs) < 1e-9, 'prediction = cut model');

  const unreachable = allocateByLatency(m, ga, { tables, targetMs: 0, block: 8, scores, minKeep: 0.5 });
  t.notOk(unreachable.met, 'an unreachable target: every saving cut taken, met=false');
  for (const grp of ga.groups) {
    const k = unreachable.counts.get(grp.id);
    if (k !== undefined) t.ok(k === grp.size || k >= 0.5 * grp.size, `${grp.label}: floor 50% holds`);
  }
  t.equal(unreachable.counts.get(g200.id), 200, 'still never cut');

  const sens = allocateByLatency(m, ga, {
    tables,
    targetMs: target,
    block: 8,
    scores,
    // every group tolerates cuts except p2o.Conv.37's, which breaks at the first probed ratio
    sensitivity: ga.groups
      .map((g, index) => ({ g, index }))
      .filter(({ g }) => g.prunable)
      .map(({ g, index }) => ({
        index,
        label: g.label,
        size: g.size,
        drops: [0.3, 0.5, 0.7].map((ratio) => ({ ratio, drop: g.label === 'p2o.Conv.37' ? 0.5 : 0.01 * ratio })),
      })),
  });
  t.ok(sens.met, 'sensitivity loss: target met');
  t.equal(sens.counts.get(ga.groups.find((g) => g.label === 'p2o.Conv.37')!.id), 104, 'the sensitive group is left whole');
});

t.test('ties: equal saving per loss goes to the larger saving, then the earlier group', async (t) => {
  const b = new ModelBuilder({ seed: 7 });
  const x = b.input('x', [1, 3, 16, 16]);
  const a1 = b.relu(b.conv(x, 32, { k: 1 }));
  const a2 = b.relu(b.conv(a1, 32, { k: 1 }));
  b.output(b.conv(a2, 4, { k: 1 }));
  const m = b.build();
  const ga = analyzeGroups(m);
  const prunable = ga.groups.filter((g) => g.prunable);
  t.equal(prunable.length, 2);
  const ones = new Map(prunable.map((g) => [g.id, new Float64Array(g.size).fill(1)]));
  // equal layer times: cutting either group saves the same
  const tables = tablesFor(m);
  for (const l of tables.layers) {
    const f = (c: number, full: number) => (l.fullMs * c) / full;
    l.inMs = l.inWidths.map((c) => f(c, l.inChannels));
    l.outMs = l.outWidths.map((c) => f(c, l.outChannels));
  }
  const r1 = allocateByLatency(m, ga, { tables, targetMs: tables.modelMs - 1e-9, block: 8, scores: ones });
  const r2 = allocateByLatency(m, ga, { tables, targetMs: tables.modelMs - 1e-9, block: 8, scores: ones });
  t.same([...r1.counts], [...r2.counts], 'deterministic');
  t.equal(r1.keep.size, 1, 'one block from one group meets the target');
  t.ok(r1.keep.has(prunable[0]!.id), 'the tie goes to the earlier group');
  t.equal(r1.counts.get(prunable[0]!.id), 24, 'one block of 8 taken');
});

t.test('prune with a latency target: history, prediction, steps, and clear refusals', async (t) => {
  const base = cls();
  const tables = tablesFor(base);
  const shapes = new Map([['x', [...OCR_MODELS.cls.shape]]]);
  const common = { importance: 'l2' as const, recover: 'none' as const, round: 'auto' as const, shapes, samples: [], synthetic: true };
  const m = cloneModel(base);
  const r = await prune(m, { ...common, targetLatency: { fraction: 0.8 }, tables, steps: 2 });
  t.equal(r.round, 8, "round 'auto' is the tables' block");
  t.same(
    r.steps.map((s) => s.allocation),
    ['latency', 'latency'],
    'history records the latency allocation',
  );
  t.ok(r.steps[0]!.targetMs! > r.steps[1]!.targetMs!, 'the target is approached over the steps');
  t.ok(Math.abs(r.steps[1]!.targetMs! - 0.8 * tables.modelMs) < 1e-2, 'the last step aims at the target itself');
  t.ok(r.latency && r.latency.predictedMs <= 0.8 * tables.modelMs + 1e-6, `predicted ${r.latency?.predictedMs} meets the target`);
  t.ok(
    Math.abs(r.latency!.predictedMs - predictModelMs(robustTables(tables), m)) < 1e-6,
    "the report's prediction is the (robustly read) tables' for the written model",
  );
  const h = JSON.parse(m.metadata.get(HISTORY_KEY)!) as { steps: { allocation: string; predictedMs: number }[] };
  t.equal(h.steps[1]!.allocation, 'latency');
  t.type(h.steps[1]!.predictedMs, 'number', 'and its predicted ms');

  const bad: [object, RegExp][] = [
    [{ targetLatency: { fraction: 0 }, tables }, /\(0, 1\), got 0x/],
    [{ targetLatency: { fraction: -0.5 }, tables }, /\(0, 1\)/],
    [{ targetLatency: { fraction: 1 }, tables }, /\(0, 1\), got 1x/],
    [{ targetLatency: { ms: 0 }, tables }, /positive time/],
    [{ targetLatency: { ms: tables.modelMs * 2 }, tables }, /not below the original's measured/],
    [{ targetLatency: { fraction: 0.5 } }, /needs latency tables/],
    [{ targetLatency: { fraction: 0.5 }, tables, structured: 0.3 }, /not several/],
  ];
  for (const [o, re] of bad)
    await t.rejects(prune(cloneModel(base), { ...common, steps: 1, ...o }), { code: 'USAGE', message: re }, JSON.stringify(o).slice(0, 60));
});

t.test('tables of another model are refused, not silently ignored', async (t) => {
  const base = cls();
  const tables = tablesFor(base);
  for (const l of tables.layers) l.node = `other/${l.node}`;
  await t.rejects(
    prune(cloneModel(base), {
      importance: 'l2',
      recover: 'none',
      round: 'auto',
      steps: 1,
      shapes: new Map([['x', [...OCR_MODELS.cls.shape]]]),
      samples: [],
      synthetic: true,
      targetLatency: { fraction: 0.7 },
      tables,
    }),
    { code: 'DATA', message: /built for another model/ },
  );
});

t.test('a staircase bump: a group whose next width costs time but a deeper one saves is cut to the deeper one', async (t) => {
  const b = new ModelBuilder({ seed: 8 });
  const x = b.input('x', [1, 3, 16, 16]);
  const a1 = b.relu(b.conv(x, 32, { k: 1 }));
  const a2 = b.relu(b.conv(a1, 32, { k: 1 }));
  b.output(b.conv(a2, 4, { k: 1 }));
  const m = b.build();
  const ga = analyzeGroups(m);
  const [ga1, ga2] = ga.groups.filter((g) => g.prunable);
  const ones = new Map([ga1!, ga2!].map((g) => [g.id, new Float64Array(g.size).fill(1)]));
  const tables = tablesFor(m);
  const [l1, l2, l3] = tables.layers;
  // group 1 (conv 1's outputs, conv 2's inputs): 24 wide is off the fast path, 16 is on it
  l1!.outMs = l1!.outWidths.map((w, i) => (w === 24 ? l1!.fullMs * 1.5 : l1!.outMs[i]!));
  l2!.inMs = l2!.inWidths.map((w, i) => (w === 24 ? l2!.fullMs * 1.5 : l2!.inMs[i]!));
  // group 2 (conv 2's outputs, conv 3's inputs): no width saves anything
  l2!.outMs = l2!.outWidths.map(() => l2!.fullMs);
  l3!.inMs = l3!.inWidths.map(() => l3!.fullMs);
  const r = allocateByLatency(m, ga, { tables, targetMs: tables.modelMs * 0.95, block: 8, scores: ones });
  t.equal(r.counts.get(ga2!.id), 32, 'the group that saves nothing is whole');
  t.equal(r.counts.get(ga1!.id), 16, 'past the bump at 24, to 16');
  t.ok(r.met, 'target met');
});

t.test('robust reading of measured tables: outliers do not drive the allocation', async (t) => {
  const line = theilSen([16, 32, 48, 64, 80, 96], [1, 2, 3, 4, 5, 15]);
  t.ok(Math.abs(line(96) - 6) < 1e-9, 'one inflated point (15 at full width) is read as the line through the rest (6)');
  t.equal(theilSen([16, 32, 48], [3, 2, 1])(16), theilSen([16, 32, 48], [3, 2, 1])(48), 'narrower not faster: a flat line (no saving)');
  const m = cls();
  const tables = tablesFor(m);
  const r = robustTables(tables);
  const l = tables.layers.find((x) => !x.depthwise && x.inChannels % 8 === 0 && x.outChannels % 8 === 0 && x.outWidths.length > 2)!;
  const rl = r.layers.find((x) => x.node === l.node)!;
  t.ok(
    rl.outMs.every((v, i) => Math.abs(v - l.outMs[i]!) < 1e-9 * l.fullMs),
    'tables that are already lines at block multiples are read unchanged',
  );
  const heavy = { ...tables, modelMs: tables.layers.reduce((a, x) => a + x.fullMs, 0) / 2 };
  const rh = robustTables(heavy);
  t.ok(
    Math.abs(rh.layers.reduce((a, x) => a + x.fullMs, 0) - heavy.modelMs) < 1e-9,
    'layers adding up to more than the model are scaled to fit it',
  );
});

t.test('a deep cut that would overshoot the target is trimmed to the fewest steps reaching it', async (t) => {
  const b = new ModelBuilder({ seed: 9 });
  const x = b.input('x', [1, 3, 16, 16]);
  const a1 = b.relu(b.conv(x, 32, { k: 1 }));
  const a2 = b.relu(b.conv(a1, 32, { k: 1 }));
  b.output(b.conv(a2, 4, { k: 1 }));
  const m = b.build();
  const ga = analyzeGroups(m);
  const [g1, g2] = ga.groups.filter((g) => g.prunable);
  const ones = new Map([g1!, g2!].map((g) => [g.id, new Float64Array(g.size).fill(1)]));
  const tables = tablesFor(m);
  const [l1, l2, l3] = tables.layers;
  const F = l1!.fullMs;
  // group 1: 24 saves 10 %, 16 saves 90 % (the best ratio), 8 saves 95 %; group 2 saves nothing
  l1!.outMs = [0.05, 0.1, 0.9, 1].map((f) => f * F);
  l2!.inMs = l2!.inWidths.map(() => l2!.fullMs);
  l2!.outMs = l2!.outWidths.map(() => l2!.fullMs);
  l3!.inMs = l3!.inWidths.map(() => l3!.fullMs);
  const small = allocateByLatency(m, ga, { tables, targetMs: tables.modelMs - 0.05 * F, block: 8, scores: ones });
  t.equal(small.counts.get(g1!.id), 24, 'a 5 % target: one step (to 24), not the best-ratio jump to 16');
  const big = allocateByLatency(m, ga, { tables, targetMs: tables.modelMs - 0.5 * F, block: 8, scores: ones });
  t.equal(big.counts.get(g1!.id), 16, 'a 50 % target: the jump to 16');
});
