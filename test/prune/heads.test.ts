// Attention heads pruned as a unit: the transformer fixture's Q/K/V projections lose whole heads
// (the same ones in all three), both Reshape constants and the output projection's rows follow,
// onnxruntime runs the result with the same output shape, and pruning equals masking the removed
// heads' rows of the output projection. Attention that does not match the pattern stays refused
// with its reason.
import t from 'tap';
import { FIXTURES, ModelBuilder, fixtureInputShape } from '../../devkit/builder.js';
import { ModelRunner } from '../../src/runtime/runner.js';
import type { Sample } from '../../src/data/inputs.js';
import { syntheticSamples } from '../../src/data/model-inputs.js';
import { cloneModel, type Model } from '../../src/ir/model.js';
import type { Node } from '../../src/ir/node.js';
import { serializeModel } from '../../src/onnx/index.js';
import { applyPruning } from '../../src/passes/prune/apply.js';
import { maskRemoved } from '../../src/passes/prune/exactness.js';
import { type GroupAnalysis, analyzeGroups } from '../../src/passes/prune/groups.js';
import { HISTORY_KEY, prune, replayHistory } from '../../src/passes/prune/index.js';
import { countMacs, pruneStep } from '../../src/passes/prune/structured.js';

async function run(m: Model, s: Sample): Promise<{ dims: number[]; data: Float32Array }> {
  const r = await ModelRunner.fromBytes(serializeModel(m));
  try {
    const o = (await r.run(s)).get(m.graph.outputs[0]!.name)!;
    return { dims: o.shape, data: o.data };
  } finally {
    await r.release();
  }
}

const shapesOf = (m: Model) => new Map([['x', fixtureInputShape(m)]]);
const headGroups = (ga: GroupAnalysis) => ga.groups.filter((g) => /heads \(/.test(g.label));
const shapeConst = (m: Model, n: Node) => m.graph.initializer(n.inputs[1]!)!.toNumbers();
const dims = (m: Model, v: string) => m.graph.initializer(v)!.dims;

t.test('transformer fixture: each attention block is one prunable group of 4 heads', async (t) => {
  const ga = analyzeGroups(FIXTURES.transformer());
  const hs = headGroups(ga);
  t.equal(hs.length, 2, 'one head group per encoder block');
  for (const g of hs) {
    t.ok(g.prunable, `${g.label}: prunable (${g.reasons.join('; ')})`);
    t.equal(g.size, 4, 'the atom is the head, not the channel');
    t.equal(
      g.actions.filter((a) => a.role === 'out' && a.node.opType === 'MatMul').length,
      3,
      'Q, K and V projections lose the same heads',
    );
    t.equal(g.actions.filter((a) => a.role === 'param' && a.node.opType === 'Add').length, 3, 'their biases follow');
    t.equal(g.actions.filter((a) => a.role === 'shape').length, 4, 'three split Reshapes and the merge Reshape follow');
    t.equal(g.actions.filter((a) => a.role === 'in').length, 1, 'the output projection loses the matching rows');
  }
});

t.test('heads prune at 30/50/70 %: valid, smaller, constants and weights as expected', async (t) => {
  const base = FIXTURES.transformer();
  const [sample] = syntheticSamples(base, shapesOf(base), 1);
  const ref = await run(base, sample!);
  const macs0 = countMacs(cloneModel(base), shapesOf(base))!;
  for (const [ratio, heads] of [
    [0.3, 3],
    [0.5, 2],
    [0.7, 1],
  ] as const) {
    const m = cloneModel(base);
    const step = pruneStep(m, { ratio, importance: 'l2' });
    const recs = step.records.filter((r) => /heads \(/.test(r.group));
    t.same(
      recs.map((r) => r.kept),
      [heads, heads],
      `${ratio}: both blocks keep ${heads} of 4 heads`,
    );
    // the residual stream (32 channels) is a group of its own, pruned alongside
    const c = step.records.find((r) => r.size === 32)?.kept ?? 32;
    const out = await run(m, sample!);
    t.same(out.dims, ref.dims, `${ratio}: output shape kept`);
    t.ok(out.data.every(Number.isFinite), `${ratio}: finite output`);
    const macs = countMacs(cloneModel(m), shapesOf(base))!;
    t.ok(macs < macs0, `${ratio}: MACs ${macs} < ${macs0}`);
    const g = m.graph;
    const reshapes = g.topoOrder().filter((n) => n.opType === 'Reshape');
    t.equal(reshapes.length, 8, 'two blocks of three splits and a merge');
    for (const n of reshapes) {
      const s = shapeConst(m, n);
      if (s.length === 4) t.same(s, [1, 16, heads, 8], `${ratio}: split Reshape [1,16,${heads},8]`);
      else t.same(s, [1, 16, heads * 8], `${ratio}: merge Reshape [1,16,${heads * 8}]`);
      const mm = g.producer(n.inputs[0]!)!;
      if (s.length === 4) {
        // Reshape <- Add(bias) <- MatMul(x, W): W [32, heads*8], bias [heads*8]
        const proj = g.producer(mm.inputs[0]!)!;
        t.same(dims(m, proj.inputs[1]!), [c, heads * 8], `${ratio}: projection weight [${c}, ${heads * 8}]`);
        t.same(dims(m, mm.inputs[1]!), [heads * 8], `${ratio}: projection bias [${heads * 8}]`);
      } else {
        const oproj = g.consumers(n.outputs[0]!)[0]!;
        t.same(dims(m, oproj.inputs[1]!), [heads * 8, c], `${ratio}: output projection [${heads * 8}, ${c}]`);
      }
    }
    // d is whole, so the scale stays 1/sqrt(8)
    for (const n of g.nodes.filter(
      (x) => x.opType === 'Mul' && g.initializer(x.inputs[1]!)?.dims.length === 0 && g.producer(x.inputs[0]!)?.opType === 'MatMul',
    )) {
      t.ok(Math.abs(g.initializer(n.inputs[1]!)!.toNumbers()[0]! - 1 / Math.sqrt(8)) < 1e-6, 'scale unchanged');
    }
  }
});

t.test('pruning heads equals masking them (the output projection rows of the removed heads zeroed)', async (t) => {
  const base = FIXTURES.transformer();
  const [sample] = syntheticSamples(base, shapesOf(base), 1, 7);
  const ref = await run(base, sample!);
  const ga0 = analyzeGroups(base);
  const idx = headGroups(ga0).map((g) => ga0.groups.indexOf(g));
  // block 0 keeps heads 0 and 2, block 1 keeps head 3 only
  const keeps = [[0, 2], [3]];
  const keepFor = (ga: GroupAnalysis) => new Map(idx.map((gi, j) => [ga.groups[gi]!.id, keeps[j]!]));
  const pruned = cloneModel(base);
  const gp = analyzeGroups(pruned);
  applyPruning(pruned, gp, keepFor(gp));
  const masked = cloneModel(base);
  const gm = analyzeGroups(masked);
  t.equal(maskRemoved(masked, gm, keepFor(gm)), 2, 'both output projections masked');
  const a = await run(masked, sample!),
    b = await run(pruned, sample!);
  let err = 0,
    scale = 0,
    moved = 0;
  for (let i = 0; i < a.data.length; i++) {
    err = Math.max(err, Math.abs(a.data[i]! - b.data[i]!));
    scale = Math.max(scale, Math.abs(a.data[i]!));
    moved = Math.max(moved, Math.abs(a.data[i]! - ref.data[i]!));
  }
  t.ok(
    moved / scale > 1e-2,
    `removing the heads changes the output (rel ${(moved / scale).toExponential(2)}), so the comparison means something`,
  );
  t.ok(err / scale < 2e-5, `pruned == masked (rel max err ${(err / scale).toExponential(2)})`);
});

t.test('two prune steps (heads 4 -> 3 -> 2) replay from the history to the same model', async (t) => {
  const base = FIXTURES.transformer();
  const m = cloneModel(base);
  const [s] = syntheticSamples(m, shapesOf(m), 1);
  await prune(m, {
    structured: 0.5,
    importance: 'l2',
    recover: 'none',
    steps: 2,
    round: 1,
    shapes: shapesOf(m),
    samples: [s!],
    synthetic: true,
  });
  const splits = (x: Model) =>
    x.graph
      .topoOrder()
      .filter((n) => n.opType === 'Reshape')
      .map((n) => shapeConst(x, n).join('x'));
  t.same(
    splits(m).filter((v) => v.split('x').length === 4),
    Array(6).fill('1x16x2x8'),
    'two heads left in every split after two steps',
  );
  const again = cloneModel(base);
  replayHistory(again, m.metadata.get(HISTORY_KEY)!);
  t.same(splits(again), splits(m), 'replay gives the same Reshape constants');
  t.same((await run(again, s!)).data, (await run(m, s!)).data, 'and the same outputs');
});

/**
 * One attention block on [1, 16, 32] with 4 heads of 8, with one deviation from the standard
 * pattern; returns the model and the output value of the Q projection (its group's reasons).
 */
function variant(kind: 'leading' | 'indivisible' | 'softmax-heads' | 'no-split'): { m: Model; q: string } {
  const b = new ModelBuilder({ seed: 3 });
  const x = b.input('x', [1, 16, 32]);
  const proj = () => b.linear(x, 32);
  const q0 = proj(),
    k0 = proj(),
    v0 = proj();
  const qMatMul = b.graph.producer(q0)!.inputs[0]!;
  if (kind === 'no-split') {
    // single-head attention written without a head split: the scores contract the channels
    const att = b.softmax(b.matmul(q0, b.transpose(k0, [0, 2, 1])));
    b.output(b.linear(b.matmul(att, v0), 32));
    return { m: b.build(), q: qMatMul };
  }
  const to = kind === 'leading' ? [1, 8, 4, 16] : kind === 'indivisible' ? [1, 16, 3, 11] : [1, 16, 4, 8];
  const split = (v: string) => b.transpose(b.reshape(v, to), [0, 2, 1, 3]);
  const q = split(q0),
    k = split(k0),
    v = split(v0);
  const s = b.scalarOp('Mul', b.matmul(q, b.transpose(k, [0, 1, 3, 2])), 1 / Math.sqrt(8));
  const att = b.softmax(s, kind === 'softmax-heads' ? 1 : -1);
  const o = b.reshape(b.transpose(b.matmul(att, v), [0, 2, 1, 3]), [1, 16, 32]);
  b.output(b.linear(o, 32));
  return { m: b.build(), q: qMatMul };
}

t.test('attention that does not match the pattern stays refused, with its reason', async (t) => {
  const cases = [
    ['leading', /moves data across the leading axes/],
    ['indivisible', /does not divide the 32 channels into heads/],
    ['softmax-heads', /Softmax across the channel axis/],
    ['no-split', /contracted or mixed/],
  ] as const;
  for (const [kind, why] of cases) {
    const { m, q } = variant(kind);
    const ga = analyzeGroups(m);
    const qGroups = ga.groups.filter((g) => g.actions.some((a) => a.role === 'out' && a.node.outputs[0] === q));
    t.ok(qGroups.length > 0, `${kind}: the Q projection belongs to a group`);
    for (const g of qGroups) {
      t.notOk(g.prunable, `${kind}: ${g.label} refused`);
      t.match(g.reasons.join(' | '), why, `${kind}: with its reason`);
    }
    t.notOk(
      ga.groups.some((g) => g.prunable && g.actions.some((a) => a.role === 'shape')),
      `${kind}: no Reshape constant is rewritten`,
    );
  }
  // the standard pattern built the same way is prunable: the refusals above come from the deviations
  const ok = variant('softmax-heads');
  const sm = ok.m.graph.nodes.find((n) => n.opType === 'Softmax')!;
  sm.setInt('axis', -1);
  t.ok(
    analyzeGroups(ok.m).groups.some((g) => g.prunable && /heads \(/.test(g.label)),
    'with Softmax over the keys, the same block prunes its heads',
  );
});
