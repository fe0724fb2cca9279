// PyTorch exports of common architectures (scripts/export-zoo.py, opsets 13 and 17): the codec,
// shape inference and analysis must hold on them as on the PP-OCR models.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { loadModel, parseModel, serializeModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { inferShapes } from '../../src/ir/shapes.js';
import { analyzeModel } from '../../src/analyze/index.js';
import { ROOT } from '../../devkit/paths.js';

interface Entry {
  name: string;
  file: string;
  opset?: number;
  inputs: { name: string; shape: number[]; dtype: string }[];
}
const dir = join(ROOT, 'test/fixtures/zoo');
const manifestPath = join(dir, 'manifest.json');

if (!existsSync(manifestPath)) {
  t.fail('test/fixtures/zoo/manifest.json is missing (scripts/export-zoo.py makes it)');
} else {
  const raw = JSON.parse(readFileSync(manifestPath, 'utf8')) as Entry[] | { models: Entry[] };
  const entries = Array.isArray(raw) ? raw : raw.models;
  t.ok(entries.length >= 8, `${entries.length} zoo models`);
  for (const e of entries) {
    t.test(`${e.name}: shapes match onnxruntime, analysis complete`, async (t) => {
      const file = join(dir, e.file.replace(/^.*\//, ''));
      const shapes = new Map(e.inputs.map((i) => [i.name, i.shape]));
      const model = normalize(loadModel(file));
      const r = inferShapes(model, { shapes });
      const probe = parseModel(serializeModel(model));
      const names = probe.graph.nodes.flatMap((n) => n.outputs).filter((o) => o && !probe.graph.isGraphOutput(o));
      for (const v of names) probe.graph.outputs.push({ name: v, type: null });
      const s = await ort.InferenceSession.create(serializeModel(probe), { graphOptimizationLevel: 'disabled' as const });
      const feeds: Record<string, ort.Tensor> = {};
      for (const i of e.inputs) {
        const n = i.shape.reduce((a, b) => a * b, 1);
        feeds[i.name] =
          i.dtype === 'int64'
            ? new ort.Tensor('int64', new BigInt64Array(n).fill(1n), i.shape)
            : new ort.Tensor('float32', new Float32Array(n).fill(0.25), i.shape);
      }
      const out = await s.run(feeds);
      const wrong: string[] = [];
      for (const v of Object.keys(out)) {
        const ours = r.types.get(v)?.shape;
        if (ours && JSON.stringify(ours) !== JSON.stringify(out[v]!.dims) && !r.unresolved.includes(v))
          wrong.push(`${v}: ${JSON.stringify(ours)} vs ${JSON.stringify(out[v]!.dims)}`);
      }
      t.same(wrong, [], 'no statically inferred shape contradicts onnxruntime');
      await s.release();
      const a = await analyzeModel(normalize(loadModel(file)), shapes);
      t.same(a.issues, []);
      t.ok(a.params > 0);
      t.not(a.macs, null, `MACs known (${a.unresolved.join('; ')})`);
      t.not(a.peakActivationBytes, null);
    });
  }
}
