// Whole-model probes of the latency tables on the real cls model: each probe is a uniformly
// pruned copy that the tables see as cut (predicted ratio in (0, 1)) and that was really timed
// beside the model (a positive measured ratio); the tables gain the points and nothing else.
// No timed assertion: the measured ratios themselves depend on the box.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OCR_MODELS } from '../../devkit/paths.js';
import { buildLatencyTables } from '../../src/analyze/latency/index.js';
import { probeTables, PROBE_RATIOS } from '../../src/evaluate/latency-probes.js';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { prepareForPruning } from '../../src/passes/prune/index.js';

t.test('cls: probes are cut copies timed beside the model, and the model is untouched', async (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'edgefit-probes-'));
  t.teardown(() => rmSync(cache, { recursive: true, force: true }));
  const shapes = new Map([['x', [1, 3, 48, 192]]]);
  const m = normalize(loadModel(OCR_MODELS.cls.file));
  prepareForPruning(m, shapes);
  const tables = await buildLatencyTables(m, { shapes, threads: 1, cacheDir: cache });
  const before = serializeModel(m);
  const probed = await probeTables(m, tables, { shapes, threads: 1, runs: 3 });
  t.same(serializeModel(m), before, 'the model is not changed');
  t.equal(tables.probes, undefined, 'the given tables are not changed');
  t.equal(probed.probes!.length, PROBE_RATIOS.length, 'one point per probe ratio');
  for (const p of probed.probes!) {
    t.ok(p.predicted > 0 && p.predicted < 1, `predicted ${p.predicted.toFixed(3)} is a cut`);
    t.ok(p.measured > 0 && Number.isFinite(p.measured), `measured ${p.measured.toFixed(3)}`);
  }
  const [a, b] = probed.probes!;
  t.ok(b!.predicted < a!.predicted, 'the deeper cut is predicted faster');
  t.same(probed.layers, tables.layers, 'layers as measured');
});
