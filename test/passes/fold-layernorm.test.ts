// LayerNorm written out as ops (PyTorch's export below opset 17: ReduceMean, Sub, Pow, ReduceMean,
// Add eps, Sqrt, Div, Mul gamma, Add beta) becomes one LayerNormalization in the exact folds: the
// outputs stay equal in onnxruntime, and the opset-13 transformer then prunes as its opset-17
// export does (the written-out form normalises across channels through ops the pruner cannot
// follow, so it kept the residual stream whole).
import t from 'tap';
import { join } from 'node:path';
import { loadModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { runPass } from '../../src/passes/pass.js';
import { foldPass } from '../../src/passes/cleanup/fold.js';
import { cloneModel } from '../../src/ir/model.js';
import { prune } from '../../src/passes/prune/index.js';
import { syntheticSamples } from '../../src/data/model-inputs.js';
import { ROOT } from '../../devkit/paths.js';
import { outputs } from '../helpers/prune-check.js';

const zoo = (f: string) => join(ROOT, 'test/fixtures/zoo', f);
const shapes = new Map([['x', [1, 16, 32]]]);

t.test('transformer op13: written-out LayerNorms fuse, outputs unchanged', async (t) => {
  const base = normalize(loadModel(zoo('transformer-op13.onnx')));
  const ops = (m: typeof base) => m.graph.nodes.map((n) => n.opType);
  t.equal(ops(base).filter((o) => o === 'LayerNormalization').length, 0, 'the export writes LayerNorm out');
  const m = cloneModel(base);
  const r = runPass(foldPass, m, 'float').details;
  t.ok(r.layerNorm >= 2, `${r.layerNorm} LayerNorms fused`);
  t.equal(ops(m).filter((o) => o === 'LayerNormalization').length, r.layerNorm);
  t.equal(
    ops(m).filter((o) => o === 'Sqrt' || o === 'Pow').length,
    0,
    'no written-out LayerNorm left (a mean pooling over tokens may stay)',
  );
  const [x] = syntheticSamples(base, shapes, 1, 7);
  const [ref, got] = [await outputs(base, x!), await outputs(m, x!)];
  t.same(got.dims, ref.dims);
  let maxDiff = 0;
  for (let i = 0; i < ref.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref.data[i]! - got.data[i]!));
  t.ok(maxDiff < 1e-4, `max abs diff ${maxDiff}`);
});

t.test('transformer op13 prunes like its op17 export once fused', async (t) => {
  const run = async (file: string) => {
    const m = normalize(loadModel(zoo(file)));
    return prune(m, { structured: 0.3, importance: 'l1', recover: 'none', steps: 1, round: 1, shapes, samples: [], synthetic: true });
  };
  const [r13, r17] = [await run('transformer-op13.onnx'), await run('transformer-op17.onnx')];
  t.equal(
    r13.groups.skipped.length,
    r17.groups.skipped.length,
    `groups kept whole: ${r13.groups.skipped.length} at op13, ${r17.groups.skipped.length} at op17`,
  );
  t.equal(r13.groups.pruned.length, r17.groups.pruned.length, `groups pruned: ${r13.groups.pruned.length}`);
  t.ok(Math.abs(r13.macs.ratio! - r17.macs.ratio!) < 0.02, `MACs ratio ${r13.macs.ratio} vs ${r17.macs.ratio}`);
});
