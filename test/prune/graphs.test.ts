// More graphs prunable (issue 17): once the fold makes run-time shapes constant, torchvision's
// ShuffleNetV2 (channel shuffle, chunk by Slice, mean over H and W), PyTorch nn.MultiheadAttention
// (fused in_proj cut by Slices, heads split into the batch axis) and PP-OCRv4 rec's SVTR blocks
// (fused qkv Reshape [.., 3, H, d]) prune; pruning equals masking the removed channels or heads,
// the pruned models run with the original's output shapes (at another batch too, the declared
// dynamic batch kept), and a fused attention loses whole heads, never all of them.
import t from 'tap';
import { join } from 'node:path';
import { loadModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { runPass } from '../../src/passes/pass.js';
import { foldShapesPass } from '../../src/passes/cleanup/fold-shapes.js';
import { cloneModel, type Model } from '../../src/ir/model.js';
import { analyzeGroups } from '../../src/passes/prune/groups.js';
import { prune, type PruneOptions } from '../../src/passes/prune/index.js';
import { maskInexactReason } from '../../src/passes/prune/exactness.js';
import { range } from '../../src/passes/prune/space.js';
import { syntheticSamples } from '../../src/data/model-inputs.js';
import type { Sample } from '../../src/data/inputs.js';
import { ROOT, OCR_MODELS } from '../../devkit/paths.js';
import { ModelBuilder, randn, rng } from '../../devkit/builder.js';
import { Tensor } from '../../src/ir/tensor.js';
import { checkPruneEqualsMask, loadCalib, outputs, probe, pruneVsMask } from '../helpers/prune-check.js';

const zoo = (f: string) => join(ROOT, 'test/fixtures/zoo', f);
const prunable = (m: Model) => analyzeGroups(m).groups.filter((g) => g.prunable);
const heads = (m: Model) => prunable(m).filter((g) => /heads \(/.test(g.label));

/** The model folded at `shapes`, as prune() leaves it for its analysis. */
function folded(m: Model, shapes: Map<string, number[]>): Model {
  const f = cloneModel(m);
  runPass(foldShapesPass, f, { shapes });
  f.analysisShapes = shapes;
  return f;
}

const opts = (shapes: Map<string, number[]>): PruneOptions => ({
  structured: 0.3,
  importance: 'l2',
  recover: 'none',
  steps: 1,
  round: 1,
  shapes,
  samples: [],
  synthetic: false,
});

for (const [name, file, shape, minHeads] of [
  ['ShuffleNetV2 op13', 'shufflenetv2-op13.onnx', [1, 3, 64, 64], 0],
  ['ShuffleNetV2 op17', 'shufflenetv2-op17.onnx', [1, 3, 64, 64], 0],
  ['MultiheadAttention encoder op13', 'transformer-op13.onnx', [1, 16, 32], 2],
  ['MultiheadAttention encoder op17', 'transformer-op17.onnx', [1, 16, 32], 2],
] as const) {
  t.test(`${name}: prunable after the fold, pruned == masked`, async (t) => {
    const base = normalize(loadModel(zoo(file)));
    const shapes = new Map([['x', [...shape]]]);
    const f = folded(base, shapes);
    const before = prunable(base).length,
      after = prunable(f).length;
    t.ok(after > before, `prunable groups ${before} -> ${after}`);
    t.equal(heads(f).length, minHeads, `${minHeads} head groups`);
    for (const g of heads(f)) t.equal(g.size, 4, `${g.label}: 4 heads`);
    const [sample] = syntheticSamples(f, shapes, 1, 3);
    const inexact = prunable(f).filter((g) => maskInexactReason(g));
    if (!inexact.length) return void (await checkPruneEqualsMask(t, f, sample!));
    // a LayerNormalization over the residual stream: masking cannot reproduce that group by design
    // (exactness.ts), so every other group is checked alone
    const ga = analyzeGroups(f);
    for (const [gi, g] of ga.groups.entries()) {
      if (!g.prunable || maskInexactReason(g)) continue;
      const removed = new Set(probe(g));
      const { err } = await pruneVsMask(f, new Map([[gi, range(g.size).filter((i) => !removed.has(i))]]), sample!);
      t.ok(err < 2e-4, `${g.label} (removed ${[...removed]}): pruned == masked (rel max err ${err.toExponential(2)})`);
    }
  });

  t.test(`${name}: prune() keeps output shapes, at the given and another batch`, async (t) => {
    const base = normalize(loadModel(zoo(file)));
    const shapes = new Map([['x', [...shape]]]);
    const m = cloneModel(base);
    const r = await prune(m, opts(shapes));
    t.ok(r.shapeFold.folded > 0, `${r.shapeFold.folded} shape values folded`);
    t.ok(r.macs.ratio! < 0.85, `MACs ratio ${r.macs.ratio}`);
    for (const g of r.groups.pruned.filter((p) => /heads \(/.test(p.group))) t.same([g.size, g.kept], [4, 3], `${g.group}: 4 -> 3 heads`);
    t.equal(r.groups.pruned.filter((p) => /heads \(/.test(p.group)).length, minHeads, 'every attention block lost heads');
    for (const b of [1, 2]) {
      const s = new Map([['x', [b, ...shape.slice(1)]]]);
      const [x] = syntheticSamples(base, s, 1, 5);
      const [ref, got] = [await outputs(base, x!), await outputs(m, x!)];
      t.same(got.dims, ref.dims, `batch ${b}: output shape [${ref.dims}] kept`);
    }
  });
}

t.test('fused attention never loses every head', async (t) => {
  const base = normalize(loadModel(zoo('transformer-op17.onnx')));
  const shapes = new Map([['x', [1, 16, 32]]]);
  const m = cloneModel(base);
  const r = await prune(m, { ...opts(shapes), structured: 0.95 });
  // the step's record: with one head left the final analysis reads the block as plain channels
  const hs = r.steps[0]!.groups.filter((p) => /heads \(/.test(p.group));
  t.equal(hs.length, 2, 'both attention blocks cut');
  for (const h of hs) t.equal(h.kept, 1, `${h.group}: one head of 4 kept at 95 %`);
  const [x] = syntheticSamples(base, shapes, 1, 5);
  t.same((await outputs(m, x!)).dims, (await outputs(base, x!)).dims, 'runs, same output shape');
});

t.test('PP-OCRv4 rec: SVTR fused-qkv heads prune whole, pruned == masked', async (t) => {
  const base = normalize(loadModel(OCR_MODELS.rec.file));
  const shapes = new Map([['x', [...OCR_MODELS.rec.shape]]]);
  const f = folded(base, shapes);
  const hs = heads(f);
  t.equal(hs.length, 2, 'both SVTR blocks are head groups');
  const ga = analyzeGroups(f);
  const [sample]: Sample[] = loadCalib('test/fixtures/ocr/rec', [...OCR_MODELS.rec.shape], 1).samples;
  for (const h of hs) {
    t.equal(h.size, 8, `${h.label}: 8 heads`);
    t.equal(h.actions.filter((a) => a.role === 'shape').length, 2, 'the split and merge Reshapes follow the kept heads');
    const gi = ga.groups.findIndex((g) => g.label === h.label);
    const removed = new Set(probe(h));
    const { err } = await pruneVsMask(f, new Map([[gi, range(h.size).filter((i) => !removed.has(i))]]), sample!);
    t.ok(err < 2e-4, `${h.label}: heads ${[...removed]} removed, pruned == masked (rel max err ${err.toExponential(2)})`);
  }
  const m = cloneModel(base);
  const r = await prune(m, opts(shapes));
  const pruned = r.groups.pruned.filter((p) => /heads \(/.test(p.group));
  t.same(
    pruned.map((p) => [p.size, p.kept]),
    [
      [8, 6],
      [8, 6],
    ],
    'prune() cuts 8 -> 6 heads in each block',
  );
  t.notOk(
    r.groups.skipped.some((s) => s.reasons.some((x) => /Reshape whose shape is computed at run time|Squeeze is not in/.test(x))),
    'no group kept whole for a run-time Reshape shape or the Squeeze any more',
  );
  for (const w of [320, 640]) {
    const s = new Map([['x', [1, 3, 48, w]]]);
    const [x] = syntheticSamples(base, s, 1, 5);
    t.same((await outputs(m, x!)).dims, (await outputs(base, x!)).dims, `width ${w}: the pruned rec runs, same output shape`);
  }
});

t.test('torchvision ShuffleNetV2 nesting: a chunk that cuts a shuffled block in two stays exact', async (t) => {
  // stride-2 block, then three stride-1 blocks of 20 channels (chunk by Slice, branch, Concat,
  // shuffle): the second chunk cuts the positions of the first shuffle (5 = 2.5 blocks of 2), as
  // torchvision's x1_0 does with its 116 = 2 x 58 channels chunked at 58 = 29 blocks of 2
  const b = new ModelBuilder({ seed: 17 });
  const i64 = (name: string, v: number[]) => (b.graph.setInitializer(Tensor.fromInt64(name, [v.length], v)), name);
  const slice = (x: string, lo: number, hi: number) =>
    b.node('Slice', [x, i64(`lo${lo}_${x}`, [lo]), i64(`hi${hi}_${x}`, [hi]), i64(`ax_${lo}_${x}`, [1])], [1, hi - lo, 8, 8]);
  const x0 = b.convBnRelu(b.input('x', [1, 3, 8, 8]), 8, { k: 3 });
  let x = b.channelShuffle(b.concat([b.convBnRelu(x0, 10, { k: 1 }), b.convBnRelu(x0, 10, { k: 3 })]), 2);
  for (let k = 0; k < 3; k++) {
    const branch = b.convBnRelu(b.depthwise(b.convBnRelu(slice(x, 10, 20), 10, { k: 1 })), 10, { k: 1 });
    x = b.channelShuffle(b.concat([slice(x, 0, 10), branch]), 2);
  }
  b.output(b.conv(x, 4, { k: 1 }));
  const m = b.build();
  const ga = analyzeGroups(m);
  const halves = ga.groups.filter((g) => /Slice part/.test(g.label));
  t.ok(
    halves.filter((g) => g.prunable).length >= 2 && halves.some((g) => g.size === 1),
    `the chunks cut the shuffled positions, one block in two (${halves.map((g) => `${g.label} ${g.size}`).join('; ')})`,
  );
  t.ok(
    ga.groups.every((g) => g.prunable || g.reasons.every((r) => /graph (input|output)|a single channel|no weight layer/.test(r))),
    'only the interface and single channels (a block split by a chunk) stay whole',
  );
  const [s] = syntheticSamples(m, new Map([['x', [1, 3, 8, 8]]]), 1, 3);
  await checkPruneEqualsMask(t, m, s!);
});

t.test('ViT embedding stream: class token (Expand, Concat), positions, token 0 (Gather) prune exactly', async (t) => {
  // torchvision's ViT: patches (Conv, Reshape [N, C, HW], Transpose), the class token expanded to
  // the batch and concatenated before them, position embeddings added, residual blocks, x[:, 0]
  // to the head; here without LayerNorm so that pruning can be checked against masking
  const b = new ModelBuilder({ seed: 23 });
  const p = b.conv(b.input('x', [1, 3, 8, 8]), 8, { k: 4, stride: 4, pad: 0 });
  const tokens = b.transpose(b.reshape(p, [1, 8, 4]), [0, 2, 1]);
  const cls = b.node('Expand', [b.constant('cls', [1, 1, 8], randn(rng(5), 8)), b.int64('to', [1, 1, 8])], [1, 1, 8]);
  let h = b.binary('Add', b.concat([cls, tokens], 1), b.constant('pos', [1, 5, 8], randn(rng(6), 40)));
  for (let k = 0; k < 2; k++) h = b.binary('Add', h, b.linear(b.relu(b.linear(h, 16)), 8));
  b.graph.setInitializer(Tensor.fromInt64('token0', [], [0]));
  const first = b.node('Gather', [h, 'token0'], [1, 8], { axis: { type: 'int', value: 1 } });
  b.output(b.gemm(first, 4));
  const m = b.build();
  const stream = analyzeGroups(m).groups.find((g) => g.size === 8)!;
  t.ok(stream.prunable, `the embedding stream is prunable (${stream.reasons.join('; ')})`);
  t.ok(
    stream.actions.some((a) => a.node.opType === 'Expand' && a.role === 'param') &&
      stream.actions.some((a) => a.node.opType === 'Expand' && a.role === 'shape'),
    'the class token and its Expand shape follow the cut',
  );
  const [s] = syntheticSamples(m, new Map([['x', [1, 3, 8, 8]]]), 1, 3);
  await checkPruneEqualsMask(t, m, s!);
});
