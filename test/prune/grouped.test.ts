// Grouped Conv pruning (ResNeXt / ShuffleNet style): a grouped Conv's output loses the same
// number of channels in every group (G stays, Cout/G shrinks); its input channels stay (whole-group
// removal is not implemented and is reported). Fixtures are built here through the IR builder.
// Every cut is checked against the original with the removed channels' contribution masked
// (exactness.ts): any index slip between groups shows up as an output difference.
import t from 'tap';
import { ModelBuilder } from '../helpers/builder.js';
import { ModelRunner, type Sample } from '../../src/calib/runner.js';
import { syntheticSamples } from '../../src/calib/synthetic.js';
import { analyzeCost } from '../../src/analyze/cost.js';
import type { Model } from '../../src/ir/model.js';
import type { Node } from '../../src/ir/node.js';
import { serializeModel } from '../../src/onnx/index.js';
import { applyPruning } from '../../src/passes/prune/apply.js';
import { maskRemoved, probeChannels } from '../../src/passes/prune/exactness.js';
import { analyzeGroups, type Group } from '../../src/passes/prune/groups.js';
import { prune } from '../../src/passes/prune/index.js';
import { keepCount, topK } from '../../src/passes/prune/select.js';
import { range } from '../../src/passes/prune/space.js';
import { cloneModel, countMacs, pruneStep } from '../../src/passes/prune/structured.js';

/** ResNeXt-like: stem, then blocks 1x1 -> grouped 3x3 (G=4) -> 1x1 + residual; head GAP -> Gemm. */
function resnext(seed = 21): Model {
  const b = new ModelBuilder({ seed });
  let x = b.convBnRelu(b.input('x', [1, 3, 24, 24]), 32, { k: 3 });
  for (let i = 0; i < 2; i++) {
    const y = b.convBnRelu(x, 64, { k: 1 });
    // block 0: Conv+BN as exported before folding; block 1: a folded Conv with bias
    const g = i === 0 ? b.convBnRelu(y, 64, { k: 3, group: 4 }) : b.relu(b.conv(y, 64, { k: 3, group: 4 }));
    x = b.relu(b.binary('Add', x, b.bn(b.conv(g, 32, { k: 1, bias: false }))));
  }
  b.output(b.gemm(b.flatten(b.gap(x)), 10));
  return b.build();
}

/** ShuffleNet(v1)-like unit: grouped 1x1 (G=3) -> shuffle -> depthwise 3x3 -> grouped 1x1 (G=3) + residual, then a 1x1 head. */
function shufflenet(seed = 22): Model {
  const b = new ModelBuilder({ seed });
  const x = b.convBnRelu(b.input('x', [1, 3, 24, 24]), 24, { k: 3 });
  let y = b.channelShuffle(b.convBnRelu(x, 12, { k: 1, group: 3 }), 3);
  y = b.bn(b.depthwise(y));
  y = b.bn(b.conv(y, 24, { k: 1, group: 3, bias: false }));
  const z = b.convBnRelu(b.relu(b.binary('Add', x, y)), 32, { k: 1 });
  b.output(b.gemm(b.flatten(b.gap(z)), 10));
  return b.build();
}

/** Depthwise with a channel multiplier (group = Cin = 8, Cout = 24: three outputs per input channel). */
function multiplier(seed = 23): Model {
  const b = new ModelBuilder({ seed });
  const x = b.convBnRelu(b.input('x', [1, 3, 16, 16]), 8, { k: 3 });
  const y = b.relu(b.bn(b.conv(x, 24, { k: 3, group: 8 })));
  b.output(b.conv(y, 6, { k: 1 }));
  return b.build();
}

const SUBJECTS = { resnext, shufflenet, multiplier } as const;
const shapesOf = (m: Model) => new Map([['x', m.graph.inputs[0]!.type!.shape as number[]]]);
const groupedConvs = (m: Model): Node[] => m.graph.topoOrder().filter((n) => n.opType === 'Conv' && n.attrInt('group', 1) > 1 && m.graph.initializer(n.inputs[1]!)!.dims[1] !== 1);

async function outputs(m: Model, s: Sample, optimization: 'basic' | 'disabled' = 'basic'): Promise<{ dims: number[]; data: Float32Array }> {
  const r = await ModelRunner.fromBytes(serializeModel(m), { optimization });
  try {
    const o = (await r.run(s)).get(m.graph.outputs[0]!.name)!;
    return { dims: [...o.dims], data: Float32Array.from(o.data) };
  } finally {
    await r.release();
  }
}

function relMaxErr(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(a[i]!));
  }
  return Number.isFinite(d) ? d / (s || 1) : Infinity;
}

/** Probe removal respecting a group's chunks: the same local channels (first, middle, last) of every chunk. */
function probe(grp: Group): number[] {
  const per = grp.size / grp.chunks;
  const local = probeChannels(per);
  return range(grp.chunks).flatMap((c) => local.map((i) => c * per + i));
}

/** Per-chunk kept counts of a kept index list. */
function perChunk(kept: readonly number[], size: number, chunks: number): number[] {
  const counts = new Array<number>(chunks).fill(0);
  for (const i of kept) counts[Math.floor(i / (size / chunks))]!++;
  return counts;
}

/** Prune a clone with `keep` (by group index) and a masked clone; relative max error of the outputs, and the masked model's own float noise. */
async function pruneVsMask(base: Model, keepByIndex: ReadonlyMap<number, number[]>, s: Sample): Promise<{ err: number; noise: number; pruned: Model }> {
  const pruned = cloneModel(base);
  const gp = analyzeGroups(pruned);
  applyPruning(pruned, gp, new Map([...keepByIndex].map(([gi, k]) => [gp.groups[gi]!.id, k])));
  const masked = cloneModel(base);
  const gm = analyzeGroups(masked);
  maskRemoved(masked, gm, new Map([...keepByIndex].map(([gi, k]) => [gm.groups[gi]!.id, k])));
  const ref = await outputs(masked, s);
  const err = relMaxErr(ref.data, (await outputs(pruned, s)).data);
  const noise = relMaxErr(ref.data, (await outputs(masked, s, 'disabled')).data);
  return { err, noise, pruned };
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
  const rx = analyzeGroups(resnext());
  for (const n of groupedConvs(resnext())) {
    const out = rx.groups.find((g) => g.values.includes(n.outputs[0]!))!;
    t.ok(out.prunable, `${n.name}: output prunable`);
    t.equal(out.chunks, 4, `${n.name}: chosen per group of 4`);
    const inp = rx.groups.find((g) => g.values.includes(n.inputs[0]!))!;
    t.notOk(inp.prunable, `${n.name}: input channels unprunable`);
    t.match(inp.reasons.join(' '), /grouped Conv \(group=4, 16 input channels per group\) reads these channels/);
  }
  t.ok(rx.groups.some((g) => g.prunable && g.size === 32 && g.chunks === 1), 'the residual stream stays prunable');

  const sh = analyzeGroups(shufflenet());
  const [g1, g2] = groupedConvs(shufflenet());
  const out1 = sh.groups.find((g) => g.values.includes(g1!.outputs[0]!))!;
  t.notOk(out1.prunable, 'the grouped Conv feeding the channel shuffle: unprunable');
  t.match(out1.reasons.join(' '), /channel shuffle/);
  const out2 = sh.groups.find((g) => g.values.includes(g2!.outputs[0]!))!;
  t.notOk(out2.prunable, 'the second grouped Conv: coupled by the residual Add to the stem, which a grouped Conv reads');
  t.match(out2.reasons.join(' '), /grouped Conv \(group=3, 8 input channels per group\)/);
  t.ok(sh.groups.some((g) => g.prunable && g.size === 32), 'the 1x1 head stays prunable');

  const mu = analyzeGroups(multiplier());
  const mo = mu.groups.find((g) => g.size === 24)!;
  t.ok(mo.prunable && mo.chunks === 8, 'channel-multiplier depthwise: output prunable per group of 3');
  t.match(mu.groups.find((g) => g.size === 8)!.reasons.join(' '), /grouped Conv \(group=8, 1 input channels per group\)/);

  // one output channel per group: nothing to choose inside a group
  const b = new ModelBuilder({ seed: 3 });
  const x = b.convBnRelu(b.input('x', [1, 3, 8, 8]), 8, { k: 1 });
  b.output(b.conv(b.relu(b.conv(x, 4, { k: 3, group: 4 })), 2, { k: 1 }));
  const one = analyzeGroups(b.build()).groups.find((g) => g.size === 4)!;
  t.notOk(one.prunable);
  t.match(one.reasons.join(' '), /one output channel per group \(4 groups\)/);
});

for (const [name, make] of Object.entries(SUBJECTS)) {
  t.test(`${name}: 30/50/70% give valid, smaller models with consistent grouped Convs`, async (t) => {
    const base = make();
    const [sample] = syntheticSamples(base, shapesOf(base), 1);
    const ref = await outputs(base, sample!);
    const macs0 = countMacs(cloneModel(base), shapesOf(base))!;
    const params0 = analyzeCost(base).params;
    const g0 = groupedConvs(base).map((n) => ({ name: n.name, group: n.attrInt('group', 1), dims: base.graph.initializer(n.inputs[1]!)!.dims }));
    for (const ratio of [0.3, 0.5, 0.7]) {
      const m = cloneModel(base);
      const step = pruneStep(m, { ratio, importance: 'l2' });
      const out = await outputs(m, sample!);
      t.same(out.dims, ref.dims, `${ratio}: output shape kept`);
      t.ok(out.data.every(Number.isFinite), `${ratio}: finite output`);
      const macs = countMacs(cloneModel(m), shapesOf(base))!;
      const params = analyzeCost(m).params;
      t.ok(macs < macs0 && params < params0, `${ratio}: MACs ${macs0} -> ${macs}, params ${params0} -> ${params}`);
      for (const before of g0) {
        const n = m.graph.nodes.find((x) => x.name === before.name)!;
        const w = m.graph.initializer(n.inputs[1]!)!;
        t.equal(n.attrInt('group', 1), before.group, `${ratio}: ${n.name} keeps group=${before.group}`);
        t.equal(w.dims[1], before.dims[1], `${ratio}: ${n.name} keeps ${before.dims[1]} input channels per group`);
        t.equal(w.dims[0]! % before.group, 0, `${ratio}: ${n.name} has ${w.dims[0]} outputs, a multiple of ${before.group}`);
        const grp = step.analysis.groups.find((g) => g.values.includes(n.outputs[0]!))!;
        const k = step.keep.get(grp.id);
        if (grp.prunable) {
          const per = before.dims[0]! / before.group;
          t.equal(w.dims[0], before.group * keepCount(per, ratio), `${ratio}: ${n.name} keeps ${keepCount(per, ratio)} of ${per} outputs per group`);
          t.ok(k && new Set(perChunk(k, grp.size, grp.chunks)).size === 1, `${ratio}: the same count chosen in every group (${k && perChunk(k, grp.size, grp.chunks)})`);
        } else {
          t.same(w.dims, before.dims, `${ratio}: ${n.name} (unprunable) unchanged`);
        }
      }
    }
  });

  t.test(`${name}: pruning equals masking the removed channels (exactness)`, async (t) => {
    const base = make();
    const [sample] = syntheticSamples(base, shapesOf(base), 1, 3);
    const ga = analyzeGroups(base);
    const worst: string[] = [];
    for (let gi = 0; gi < ga.groups.length; gi++) {
      const grp = ga.groups[gi]!;
      if (!grp.prunable) continue;
      const removed = new Set(probe(grp));
      const { err } = await pruneVsMask(base, new Map([[gi, range(grp.size).filter((i) => !removed.has(i))]]), sample!);
      t.ok(err < 2e-4, `${grp.label} (${grp.size} ch in ${grp.chunks} group(s), removed ${[...removed]}): rel max err ${err.toExponential(2)}`);
      worst.push(`${grp.label} ${err.toExponential(2)}`);
    }
    // the real selection at 50%, every group at once
    const m = cloneModel(base);
    const step = pruneStep(m, { ratio: 0.5, importance: 'l2' });
    const byIndex = new Map([...step.keep].map(([id, k]) => [step.analysis.groups.findIndex((g) => g.id === id), k]));
    const { err, noise, pruned } = await pruneVsMask(base, byIndex, sample!);
    t.same(serializeModel(pruned), serializeModel(m), 'pruneStep is the surgery checked here');
    t.ok(err <= Math.max(2e-4, 4 * noise), `50% everywhere: pruned == masked (rel max err ${err.toExponential(2)}, float noise ${noise.toExponential(2)})`);
    t.ok(worst.length > 0, `single groups: ${worst.join(', ')}`);
  });
}

t.test('a keep with unequal counts per group is refused, not cut into a broken model', async (t) => {
  const m = resnext();
  const ga = analyzeGroups(m);
  const grp = ga.groups.find((g) => g.chunks === 4)!;
  t.throws(() => applyPruning(m, ga, new Map([[grp.id, range(grp.size).slice(1)]])), { code: 'INTERNAL', message: /keeps 15\/16\/16\/16 channels per group/ });
});

t.test('prune(): sensitivity allocation and lsq recovery keep grouped Convs valid', async (t) => {
  const base = resnext();
  const samples = syntheticSamples(base, shapesOf(base), 4);
  const m = cloneModel(base);
  const rep = await prune(m, { structured: 0.5, importance: 'activation', recover: 'lsq', allocation: 'sensitivity', steps: 1, round: 1, shapes: shapesOf(base), samples, synthetic: true });
  t.ok(rep.macs.ratio !== null && rep.macs.ratio < 1, `MACs ratio ${rep.macs.ratio?.toFixed(3)}`);
  for (const n of groupedConvs(m)) {
    const w = m.graph.initializer(n.inputs[1]!)!;
    t.equal(w.dims[0]! % 4, 0, `${n.name}: ${w.dims[0]} outputs in 4 equal groups`);
  }
  const out = await outputs(m, samples[0]!);
  t.ok(out.data.every(Number.isFinite), 'runs with finite output');
  t.ok(rep.fidelity && rep.fidelity.pooledCosine > 0.5, `fidelity vs the original: pooled cosine ${rep.fidelity?.pooledCosine.toFixed(4)}`);

  // SIMD rounding: the grouped Conv's total width is a multiple of 8 with 4 equal groups
  const r8 = cloneModel(base);
  pruneStep(r8, { ratio: 0.6, importance: 'l1', round: 8 });
  for (const n of groupedConvs(r8)) {
    const oc = r8.graph.initializer(n.inputs[1]!)!.dims[0]!;
    t.ok(oc % 8 === 0 && oc < 64, `${n.name}: ${oc} outputs with round 8`);
  }
  t.ok((await outputs(r8, samples[0]!)).data.every(Number.isFinite), 'round 8: runs');
});
