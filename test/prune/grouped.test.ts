// Grouped Conv pruning within groups (ResNeXt / ShuffleNet style, where the grouped Conv's channels
// are shared with more than one private 1x1 chain): its output loses the same number of channels
// in every group (G stays, Cout/G shrinks), and so do the channels it reads (G stays, Cin/G
// shrinks; group g's rows keep their own column set). Whole-group removal (G shrinking: between
// private 1x1 chains, RegNet / ResNeXt; one input or output per group), channel shuffle and grouped Convs reading a concatenation are in structures.test.ts.
// Fixtures are built through the IR builder (devkit/builder.ts GROUPED_FIXTURES).
// Every cut is checked against the original with the removed channels' contribution masked
// (exactness.ts): any index slip between groups shows up as an output difference.
import t from 'tap';
import { GROUPED_FIXTURES, ModelBuilder } from '../../devkit/builder.js';
import { checkPruneEqualsMask, outputs } from '../helpers/prune-check.js';
import { syntheticSamples } from '../../src/data/model-inputs.js';
import { analyzeCost } from '../../src/analyze/cost.js';
import { Tensor } from '../../src/ir/tensor.js';
import { rng } from '../../src/util/rng.js';
import { cloneModel, type Model } from '../../src/ir/model.js';
import type { Node } from '../../src/ir/node.js';
import { applyPruning, gatherGroupedColumns } from '../../src/passes/prune/apply.js';
import { lsqRecover } from '../../src/passes/prune/recovery.js';
import { analyzeGroups, type Group } from '../../src/passes/prune/groups.js';
import { groupedColumnNorms, groupScores } from '../../src/passes/prune/importance.js';
import { prune } from '../../src/passes/prune/index.js';
import { keepCount, topK } from '../../src/passes/prune/select.js';
import { range } from '../../src/passes/prune/space.js';
import { countMacs, pruneStep } from '../../src/passes/prune/structured.js';

const { resnextShared, shufflenet, multiplier, coupled } = GROUPED_FIXTURES;

const SUBJECTS = { resnextShared, shufflenet, multiplier, coupled } as const;
const shapesOf = (m: Model) => new Map([['x', m.graph.inputs[0]!.type!.shape as number[]]]);
const groupedConvs = (m: Model): Node[] =>
  m.graph.topoOrder().filter((n) => n.opType === 'Conv' && n.attrInt('group', 1) > 1 && m.graph.initializer(n.inputs[1]!)!.dims[1] !== 1);

/** The group holding value `v`. */
const groupOf = (ga: { groups: Group[] }, v: string): Group => ga.groups.find((g) => g.values.includes(v))!;
const readsGrouped = (grp: Group, n?: Node): boolean => grp.actions.some((a) => a.role === 'in-grouped' && (!n || a.node.name === n.name));

/** Per-chunk kept counts of a kept index list. */
function perChunk(kept: readonly number[], size: number, chunks: number): number[] {
  const counts = new Array<number>(chunks).fill(0);
  for (const i of kept) counts[Math.floor(i / (size / chunks))]!++;
  return counts;
}

t.test('selection: equal count per group of a grouped Conv', async (t) => {
  t.equal(keepCount(64, 0.3, 1, 4), 44, '16 per group -> round(11.2) = 11 per group');
  t.equal(keepCount(64, 0.7, 1, 4), 20, '16 per group -> round(4.8) = 5 per group');
  t.equal(keepCount(64, 0.99, 1, 4), 4, 'never zero in any group');
  t.equal(keepCount(64, 0.5, 8, 4), 32, 'rounding applies to the total width (8 per group, 32 in all)');
  t.equal(keepCount(48, 0.3, 8, 4), 32, '12 per group, step 2 -> round(8.4 / 2) * 2 = 8 per group, 32 in all');
  t.equal(keepCount(12, 0.5, 8, 3), 12, 'too narrow to round with 3 groups: whole');
  const s = Float64Array.from([9, 1, 8, 7, 1, 2, 3, 4, 5, 0, 0, 6]);
  t.same(topK(s, 6, 3), [0, 2, 6, 7, 8, 11], 'the two best of every group of 4');
  t.same(topK(s, 6), [0, 2, 3, 7, 8, 11], 'without groups: the six best overall');
  t.throws(() => topK(s, 5, 3), { code: 'INTERNAL' }, 'a count that is not a multiple of the groups is refused');
});

t.test('analysis: which grouped channels are prunable, and why not the others', async (t) => {
  const rx = analyzeGroups(resnextShared());
  for (const n of groupedConvs(resnextShared())) {
    const out = groupOf(rx, n.outputs[0]!);
    t.ok(out.prunable, `${n.name}: output prunable`);
    t.equal(out.chunks, 4, `${n.name}: chosen per group of 4`);
    // the 1x1 reduce conv's output: read 16 per group by the grouped 3x3
    const inp = groupOf(rx, n.inputs[0]!);
    t.ok(inp.prunable, `${n.name}: input channels prunable (${inp.reasons.join('; ')})`);
    t.equal(inp.chunks, 4, `${n.name}: its input chosen per group of 4 too`);
    t.ok(readsGrouped(inp, n), `${n.name}: reads them through a per-group column gather`);
  }
  t.ok(
    rx.groups.some((g) => g.prunable && g.size === 32 && g.chunks === 1),
    'the residual stream stays prunable',
  );
  const stuck = rx.groups.filter(
    (g) => !g.prunable && g.actions.some((a) => a.role === 'out') && !g.reasons.every((r) => /graph output/.test(r)),
  );
  t.same(
    stuck.map((g) => `${g.label}: ${g.reasons.join('; ')}`),
    [],
    'every channel space a ResNeXt weight layer produces, but the graph output, is prunable',
  );

  const sh = analyzeGroups(shufflenet());
  const [g1, g2] = groupedConvs(shufflenet());
  // the first grouped Conv's output is the shuffle's input: its channels are the shuffle positions
  t.notOk(
    sh.groups.some((g) => g.values.includes(g1!.outputs[0]!)),
    'the shuffled channels have no group of their own',
  );
  const out1 = sh.groups.find((g) => g.actions.some((a) => a.role === 'out' && a.node.name === g1!.name))!;
  t.ok(
    out1.actions.some((a) => a.role === 'shape'),
    'the shuffle positions carry both Reshape constants',
  );
  t.notOk(out1.prunable, 'the second grouped Conv reads 4 per group across blocks of 3: unprunable');
  t.match(
    out1.reasons.join(' '),
    /reads them in 3 groups of 4: its groups of 4 channels neither hold whole blocks of 3 nor fit inside one .*shuffle position.*keeps every group the same count/,
  );
  const stream = groupOf(sh, g2!.outputs[0]!);
  t.ok(stream.prunable, `the residual stream (stem, second grouped Conv, Add) is prunable (${stream.reasons.join('; ')})`);
  t.equal(stream.chunks, 3, 'in 3 equal runs: the first grouped Conv reads it and the second writes it, both with G=3');
  t.ok(stream.values.includes(g1!.inputs[0]!) && readsGrouped(stream, g1), 'the stem is in it, read per group by the first grouped Conv');
  t.ok(
    sh.groups.some((g) => g.prunable && g.size === 32),
    'the 1x1 head stays prunable',
  );

  const mu = analyzeGroups(multiplier());
  const mo = mu.groups.find((g) => g.size === 3 && g.actions.some((a) => a.role === 'out'))!;
  t.ok(
    mo.prunable && mo.chunks === 1,
    'channel-multiplier depthwise: its multiplier (3 outputs per input) is prunable, the same in every group',
  );
  const mi = mu.groups.find((g) => g.size === 8)!;
  t.ok(
    mi.prunable && mi.actions.some((a) => a.role === 'group'),
    `one input channel per group: whole groups go with it (${mi.reasons.join('; ')})`,
  );

  const co = analyzeGroups(coupled());
  const stem = co.groups.find((g) => g.size === 24)!;
  t.ok(stem.prunable && stem.chunks === 6, `a stem read by G=2 and G=3 Convs: runs of lcm 6 (${stem.chunks})`);

  // one output channel per group: nothing to choose inside a group, but whole groups can go (with
  // the 2 input channels each reads), and so can the same position in every group
  const b = new ModelBuilder({ seed: 3 });
  const x = b.convBnRelu(b.input('x', [1, 3, 8, 8]), 8, { k: 1 });
  b.output(b.conv(b.relu(b.conv(x, 4, { k: 3, group: 4 })), 2, { k: 1 }));
  const ga = analyzeGroups(b.build());
  const one = ga.groups.find((g) => g.size === 4)!;
  t.ok(one.prunable && one.actions.some((a) => a.role === 'group'), `whole groups (${one.reasons.join('; ')})`);
  t.notOk(
    ga.groups.some((g) => g.size === 8),
    'its 8 inputs have no group of their own: they are (group) x (position)',
  );
  t.ok(
    ga.groups.some((g) => g.size === 2 && g.prunable),
    'the position within a group is prunable',
  );

  // ... unless the input is not one weight layer's channels: a concatenation of 4 + 4
  const b4 = new ModelBuilder({ seed: 6 });
  const i4 = b4.input('x', [1, 3, 8, 8]);
  const c4 = b4.concat([b4.convBnRelu(i4, 4, { k: 1 }), b4.convBnRelu(i4, 4, { k: 1 })]);
  b4.output(b4.conv(b4.relu(b4.conv(c4, 4, { k: 3, group: 4 })), 2, { k: 1 }));
  const one4 = analyzeGroups(b4.build()).groups.find(
    (g) => g.size === 4 && g.actions.some((a) => a.role === 'out' && a.node.attrInt('group', 1) === 4),
  )!;
  t.notOk(one4.prunable);
  t.match(
    one4.reasons.join(' '),
    /leave one channel per group \(4 groups: .* writes them in 4 groups of 1\): only whole groups could go \(G shrinking\), which is implemented for .* not for this combination/,
  );

  // runs of the lcm of coupled group counts can leave one channel per run
  const b2 = new ModelBuilder({ seed: 4 });
  const x2 = b2.convBnRelu(b2.input('x', [1, 3, 8, 8]), 12, { k: 1 });
  b2.output(b2.binary('Add', b2.conv(x2, 12, { k: 1, group: 4 }), b2.conv(x2, 12, { k: 1, group: 6 })));
  const lcm = analyzeGroups(b2.build()).groups.find((g) => g.values.includes(x2))!;
  t.notOk(lcm.prunable);
  t.match(lcm.reasons.join(' '), /leave one channel per group \(12 groups: .*reads them in 4 groups of 3; .*reads them in 6 groups of 2\)/);

  // a grouped Conv reading a concatenation: its groups straddle the parts
  const b3 = new ModelBuilder({ seed: 5 });
  const i3 = b3.input('x', [1, 3, 8, 8]);
  const c3 = b3.concat([b3.convBnRelu(i3, 6, { k: 1 }), b3.convBnRelu(i3, 10, { k: 1 })]);
  b3.output(b3.conv(b3.relu(b3.conv(c3, 8, { k: 3, group: 4 })), 2, { k: 1 }));
  const cat = analyzeGroups(b3.build()).groups.filter((g) => g.size === 6 || g.size === 10);
  t.equal(cat.length, 2);
  for (const g of cat)
    t.match(
      g.reasons.join(' '),
      /reads them in 4 groups of 4: the concatenated parts \(6 \+ 10 channels\) do not start and end on its group boundaries \(every 4 channels\).*independently cut producers.*the parts stay whole/,
    );
});

t.test('gatherGroupedColumns: the rows of each group keep their own columns', async (t) => {
  // [Cout=4, Cin/G=3, 1, 1] with G=2: w[o][j] = 10*o + j
  const w = Tensor.fromFloat32(
    'w',
    [4, 3, 1, 1],
    Float32Array.from({ length: 12 }, (_, i) => 10 * Math.floor(i / 3) + (i % 3)),
  );
  const g = gatherGroupedColumns(w, [
    [0, 2],
    [1, 2],
  ]);
  t.same(g.dims, [4, 2, 1, 1]);
  t.same([...g.toFloat32()], [0, 2, 10, 12, 21, 22, 31, 32], 'group 0 rows keep columns 0,2; group 1 rows keep 1,2');
  t.throws(() => gatherGroupedColumns(w, [[0], [1], [2]]), { code: 'INTERNAL' }, '4 rows do not split into 3 groups');
  // channel g*3 + j is read by column j of group g's rows only
  t.same([...groupedColumnNorms(w.toFloat32(), w.dims, 2, 1)], [10, 12, 14, 50, 52, 54], "L1 per input channel over its own group's rows");
});

t.test("importance of channels a grouped Conv reads: its own group's columns, times the activation", async (t) => {
  const m = resnextShared();
  const ga = analyzeGroups(m);
  const conv = groupedConvs(m)[0]!;
  const grp = groupOf(ga, conv.inputs[0]!);
  const w = m.graph.initializer(conv.inputs[1]!)!;
  const cols = groupedColumnNorms(w.toFloat32(), w.dims, 4, 2);
  // activation-aware: one silent channel in group 2 scores lowest, whatever its weights
  const meanSq = Float64Array.from({ length: 64 }, () => 1);
  meanSq[37] = 0;
  const z = new Float64Array(64);
  const stats = new Map([[conv.inputs[0]!, { axis: 1, count: 1, mean: z, meanAbs: z, meanSq, min: z, max: z }]]);
  const act = groupScores(m.graph, ga, grp, 'activation', stats);
  t.equal(act[37], 0, 'the silent channel contributes nothing to its group');
  const ratio = act[5]! / act[6]!;
  t.ok(
    Math.abs(ratio - cols[5]! / cols[6]!) < 1e-9,
    `with equal activations the score follows the group's column norms (${ratio.toFixed(4)})`,
  );
  t.same(topK(act, keepCount(64, 0.25, 1, grp.chunks), grp.chunks).includes(37), false, 'and is cut first in its group');
});

for (const [name, make] of Object.entries(SUBJECTS)) {
  t.test(`${name}: 30/50/70% give valid, smaller models with consistent grouped Convs`, async (t) => {
    const base = make();
    const [sample] = syntheticSamples(base, shapesOf(base), 1);
    const ref = await outputs(base, sample!);
    const macs0 = countMacs(cloneModel(base), shapesOf(base))!;
    const params0 = analyzeCost(base).params;
    const g0 = groupedConvs(base).map((n) => ({
      name: n.name,
      group: n.attrInt('group', 1),
      dims: base.graph.initializer(n.inputs[1]!)!.dims,
    }));
    const figures: string[] = [];
    for (const ratio of [0.3, 0.5, 0.7]) {
      const m = cloneModel(base);
      const step = pruneStep(m, { ratio, importance: 'l2' });
      const out = await outputs(m, sample!);
      t.same(out.dims, ref.dims, `${ratio}: output shape kept`);
      t.ok(out.data.every(Number.isFinite), `${ratio}: finite output`);
      const macs = countMacs(cloneModel(m), shapesOf(base))!;
      const params = analyzeCost(m).params;
      t.ok(macs < macs0 && params < params0, `${ratio}: MACs ${macs0} -> ${macs}, params ${params0} -> ${params}`);
      // the same cut without the groups a grouped Conv reads (they were unprunable before input-side pruning)
      const old = cloneModel(base);
      const oga = analyzeGroups(old);
      const oldKeep = new Map(
        [...step.keep]
          .filter(([id]) => !readsGrouped(step.analysis.groups.find((g) => g.id === id)!))
          .map(([id, k]) => [oga.groups[step.analysis.groups.findIndex((g) => g.id === id)]!.id, k]),
      );
      applyPruning(old, oga, oldKeep);
      const macsOld = countMacs(old, shapesOf(base))!;
      const gains = oldKeep.size < step.keep.size;
      if (gains) t.ok(macs < macsOld, `${ratio}: cutting grouped Convs' inputs too: MACs ${macs} < ${macsOld} (outputs only)`);
      else t.equal(macs, macsOld, `${ratio}: no group read by a grouped Conv is prunable here: MACs as with outputs only`);
      figures.push(`${ratio}: ${macsOld} -> ${macs}`);
      for (const before of g0) {
        const n = m.graph.nodes.find((x) => x.name === before.name)!;
        const w = m.graph.initializer(n.inputs[1]!)!;
        t.equal(n.attrInt('group', 1), before.group, `${ratio}: ${n.name} keeps group=${before.group}`);
        const inGrp = groupOf(step.analysis, n.inputs[0]!) as Group | undefined; // undefined: untracked (after the shuffle)
        const inKeep = inGrp && step.keep.get(inGrp.id);
        if (inGrp?.prunable && readsGrouped(inGrp, n)) {
          const perIn = keepCount(inGrp.size, ratio, 1, inGrp.chunks) / before.group;
          t.equal(w.dims[1], perIn, `${ratio}: ${n.name} reads ${perIn} of ${before.dims[1]} input channels per group`);
          t.ok(
            inKeep && new Set(perChunk(inKeep, inGrp.size, before.group)).size === 1,
            `${ratio}: the same input count kept in every group (${inKeep && perChunk(inKeep, inGrp.size, before.group)})`,
          );
        } else {
          t.equal(
            w.dims[1],
            before.dims[1],
            `${ratio}: ${n.name} keeps ${before.dims[1]} input channels per group (${inGrp ? inGrp.reasons.join('; ') : 'input channels not tracked'})`,
          );
        }
        t.equal(w.dims[0]! % before.group, 0, `${ratio}: ${n.name} has ${w.dims[0]} outputs, a multiple of ${before.group}`);
        // a shuffled output has no group of its own: the shuffle positions' group holds its rows
        const grp =
          groupOf(step.analysis, n.outputs[0]!) ??
          step.analysis.groups.find((g) => g.actions.some((a) => a.role === 'out' && a.node.name === n.name))!;
        const k = step.keep.get(grp.id);
        if (grp.prunable) {
          // equal runs of the lcm of the group counts around it (the Conv's own G when alone)
          const per = before.dims[0]! / before.group;
          const kept = keepCount(grp.size, ratio, 1, grp.chunks) / before.group;
          t.equal(w.dims[0], before.group * kept, `${ratio}: ${n.name} keeps ${kept} of ${per} outputs per group (${grp.chunks} runs)`);
          t.ok(
            k && new Set(perChunk(k, grp.size, grp.chunks)).size === 1,
            `${ratio}: the same count chosen in every group (${k && perChunk(k, grp.size, grp.chunks)})`,
          );
        } else {
          t.equal(w.dims[0], before.dims[0], `${ratio}: ${n.name} (output unprunable) keeps ${before.dims[0]} outputs`);
        }
      }
    }
    t.ok(figures.length === 3, `MACs outputs-only -> with grouped inputs, base ${macs0}: ${figures.join(', ')}`);
  });

  t.test(`${name}: pruning equals masking the removed channels (exactness)`, async (t) => {
    const base = make();
    const [sample] = syntheticSamples(base, shapesOf(base), 1, 3);
    const worst = await checkPruneEqualsMask(
      t,
      base,
      sample!,
      (grp) => ` in ${grp.chunks} group(s)${readsGrouped(grp) ? ', read by a grouped Conv' : ''}`,
    );
    t.ok(worst.length > 0, `single groups: ${worst.join(', ')}`);
  });
}

t.test('a keep with unequal counts per group is refused, not cut into a broken model', async (t) => {
  const m = resnextShared();
  const ga = analyzeGroups(m);
  const [conv] = groupedConvs(m);
  // the output side (the grouped Conv writes 4 groups) and the input side (it reads 4 groups)
  for (const v of [conv!.outputs[0]!, conv!.inputs[0]!]) {
    const grp = groupOf(ga, v);
    t.throws(
      () => applyPruning(m, ga, new Map([[grp.id, range(grp.size).slice(1)]])),
      { code: 'INTERNAL', message: /keeps 15\/16\/16\/16 channels per group/ },
      `${grp.label}`,
    );
  }
  t.same(m.graph.initializer(conv!.inputs[1]!)!.dims, [64, 16, 3, 3], 'nothing was cut');
});

t.test('prune(): sensitivity allocation and lsq recovery keep grouped Convs valid', async (t) => {
  const base = resnextShared();
  const samples = syntheticSamples(base, shapesOf(base), 4);
  const m = cloneModel(base);
  const rep = await prune(m, {
    structured: 0.5,
    importance: 'activation',
    recover: 'lsq',
    allocation: 'sensitivity',
    steps: 1,
    round: 1,
    shapes: shapesOf(base),
    samples,
    synthetic: true,
  });
  t.ok(rep.macs.ratio !== null && rep.macs.ratio < 1, `MACs ratio ${rep.macs.ratio?.toFixed(3)}`);
  for (const n of groupedConvs(m)) {
    const w = m.graph.initializer(n.inputs[1]!)!;
    t.equal(w.dims[0]! % 4, 0, `${n.name}: ${w.dims[0]} outputs in 4 equal groups`);
    t.ok(w.dims[1]! <= 16, `${n.name}: reads ${w.dims[1]} channels per group`);
  }
  const lsq = rep.steps[0]!.lsq!;
  t.ok(lsq.layers > 0, `lsq fits: ${lsq.layers} (refit ${lsq.refit}, rejected ${lsq.rejected}, reverted ${lsq.reverted})`);
  const out = await outputs(m, samples[0]!);
  t.ok(out.data.every(Number.isFinite), 'runs with finite output');
  t.ok(rep.fidelity && rep.fidelity.pooledCosine > 0.5, `fidelity vs the original: pooled cosine ${rep.fidelity?.pooledCosine.toFixed(4)}`);

  // SIMD rounding: the grouped Conv's total width is a multiple of 8 with 4 equal groups
  const r8 = cloneModel(base);
  pruneStep(r8, { ratio: 0.6, importance: 'l1', round: 8 });
  for (const n of groupedConvs(r8)) {
    const [oc, ic] = r8.graph.initializer(n.inputs[1]!)!.dims as [number, number];
    t.ok(oc % 8 === 0 && oc < 64, `${n.name}: ${oc} outputs with round 8`);
    t.ok((ic * 4) % 8 === 0 && ic < 16, `${n.name}: reads ${ic * 4} channels (${ic} per group) with round 8`);
  }
  t.ok((await outputs(r8, samples[0]!)).data.every(Number.isFinite), 'round 8: runs');
});

t.test('lsq refits a grouped Conv group by group', async (t) => {
  const teacher = resnextShared();
  const samples = syntheticSamples(teacher, shapesOf(teacher), 4);
  // a grouped 3x3 with its weight perturbed: the fit should bring its output back to the teacher's
  const student = cloneModel(teacher);
  const n = groupedConvs(student)[1]!;
  const w0 = student.graph.initializer(n.inputs[1]!)!;
  const next = rng(9);
  const f = Float32Array.from(w0.toFloat32(), (v) => v + 0.1 * (next() - 0.5));
  student.graph.setInitializer(Tensor.fromFloat32(w0.name, w0.dims, f));
  const rep = await lsqRecover(teacher, student, [n.outputs[0]!], samples);
  t.equal(rep.layers, 4, 'one fit per group');
  t.equal(rep.refit, 4, `every group refit (rejected ${rep.rejected}, reverted ${rep.reverted})`);
  t.ok(
    rep.errAfter < 0.01 * rep.errBefore,
    `layer error (held-out rows) ${rep.errBefore.toExponential(2)} -> ${rep.errAfter.toExponential(2)}`,
  );
  t.ok(
    rep.heldOut && rep.heldOut.after < 0.01 * rep.heldOut.before,
    `model output error on held-out samples ${rep.heldOut?.before.toExponential(2)} -> ${rep.heldOut?.after.toExponential(2)}`,
  );
  const w1 = student.graph.initializer(n.inputs[1]!)!;
  t.same(w1.dims, w0.dims, 'weight layout unchanged');
  t.equal(n.attrInt('group', 1), 4, 'group count unchanged');

  // after input-side pruning (the reduce conv's output at 50%), lsq repairs the grouped Conv per group
  const pruned = cloneModel(teacher);
  const ga = analyzeGroups(pruned);
  const pn = groupedConvs(pruned)[1]!;
  const inGrp = groupOf(ga, pn.inputs[0]!);
  const keep = new Map([
    [
      inGrp.id,
      topK(
        Float64Array.from(range(inGrp.size), (i) => (i * 7) % 5),
        keepCount(inGrp.size, 0.5, 1, inGrp.chunks),
        inGrp.chunks,
      ),
    ],
  ]);
  const applied = applyPruning(pruned, ga, keep);
  t.ok(applied.inChanged.has(pn.outputs[0]!), 'the grouped Conv is a recovery target');
  const r2 = await lsqRecover(teacher, pruned, [pn.outputs[0]!], samples);
  t.equal(r2.layers, 4, 'one fit per group after pruning its inputs');
  t.ok(
    r2.refit >= 1 && r2.heldOut && r2.heldOut.after < r2.heldOut.before,
    `refit ${r2.refit}/4, output error ${r2.heldOut?.before.toExponential(2)} -> ${r2.heldOut?.after.toExponential(2)}`,
  );
  t.same(pruned.graph.initializer(pn.inputs[1]!)!.dims, [64, 8, 3, 3], 'still 8 inputs per group after the refit');
  t.ok((await outputs(pruned, samples[0]!)).data.every(Number.isFinite), 'runs');
});
