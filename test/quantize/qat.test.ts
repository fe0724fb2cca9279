// Quantization-aware training, the graph half (issue 18): the fake-quant float model built from
// the static QDQ model computes what the static model computes (so training it trains the int8
// model), and export turns it back into the same QDQ form, running on int8 kernels.
import t from 'tap';
import { loadModel, parseModel, serializeModel } from '../../src/onnx/index.js';
import { quantizeWithPlan } from '../../src/passes/quantize/index.js';
import { fakeQuantize, LATENT_REACH, qatTrainables } from '../../src/passes/quantize/qat.js';
import { exportQdq, roundEven } from '../../src/passes/quantize/qat-export.js';
import { quantizeQat } from '../../src/passes/quantize/qat-train.js';
import { CROP_BATCH } from '../../src/passes/train/crops.js';
import { ModelBuilder } from '../../devkit/builder.js';
import { Tensor } from '../../src/ir/tensor.js';
import { runtimeOps } from '../../src/runtime/runner.js';
import { loadInputSet } from '../../src/data/inputs.js';
import { modelInputs, openSession, toFeeds, type Feeds } from '../../src/runtime/runner.js';
import { cosine } from '../../src/fidelity/metrics.js';
import { OCR_FIT_SETS, OCR_MODELS } from '../../devkit/paths.js';

const cls = loadModel(OCR_MODELS.cls.file);
const calib = loadInputSet(OCR_FIT_SETS.cls.calibrate, modelInputs(cls), { limit: 8 }).samples.map(toFeeds);
const judge = loadInputSet(OCR_FIT_SETS.cls.judge, modelInputs(cls), { limit: 8 }).samples.map(toFeeds);

async function outputs(bytes: Uint8Array, feeds: Feeds[], level: 'disabled' | 'all'): Promise<Float32Array[]> {
  const s = await openSession(bytes, { level, threads: 2 });
  const out: Float32Array[] = [];
  for (const f of feeds) out.push(Float32Array.from((await s.run(f))[s.outputNames[0]!]!.data as Float32Array));
  await s.release();
  return out;
}
const maxAbs = (a: Float32Array[], b: Float32Array[]): number =>
  a.reduce((m, x, i) => x.reduce((mm, v, j) => Math.max(mm, Math.abs(v - b[i]![j]!)), m), 0);

t.test('cls: the fake-quant float model computes the static QDQ model on held-out images', async (t) => {
  const st = await quantizeWithPlan(cls, { mode: 'static', data: calib });
  const float = parseModel(st.floatBytes);
  const fq = fakeQuantize(st.model, { reduceRange: st.report.platform.reduceRange, floatWeights: (n) => float.graph.initializer(n) });
  // latent weights sit between their int8 value and the float weight, never across a rounding boundary
  const latent = fq.weights.flatMap((w) => [...fq.model.graph.initializer(w.weight)!.toFloat32()]);
  const off = latent.map((v) => Math.abs(v - Math.round(v)));
  t.ok(Math.max(...off) <= LATENT_REACH + 1e-4, `offsets within ${LATENT_REACH} (float32): ${Math.max(...off)}`);
  t.ok(off.filter((v) => v > 0.1).length > latent.length / 10, 'most latent weights placed off their integer');
  // every activation quantizer is one QuantizeLinear -> DequantizeLinear pair on its trainable step;
  // the constants of Add/Mul (HardSwish's 3 and 1/6) stay int8 behind their DequantizeLinear: fixed, not trained
  const g = fq.model.graph;
  const quants = g.nodes.filter((n) => n.opType === 'QuantizeLinear');
  t.equal(quants.length, fq.activations.length, 'one QuantizeLinear per activation quantizer');
  t.ok(
    fq.activations.every((a) => {
      const dq = g.producer(a.output)!;
      const q = g.producer(dq.inputs[0]!)!;
      return dq.opType === 'DequantizeLinear' && q.opType === 'QuantizeLinear' && q.inputs[0] === a.input && q.inputs[1] === a.step;
    }),
    'each reads its input and its step, and its DequantizeLinear writes its output',
  );
  t.ok(
    g.nodes
      .filter((n) => n.opType === 'DequantizeLinear' && g.producer(n.inputs[0]!)?.opType !== 'QuantizeLinear')
      .every((n) => g.constant(n.inputs[0]!)),
    'every other DequantizeLinear reads a constant',
  );
  t.equal(
    fq.activations.length,
    st.model.graph.nodes.filter((n) => n.opType === 'QuantizeLinear').length,
    'one fake quantizer per activation quantized',
  );
  t.equal(fq.weights.length, st.report.layers.details.filter((l) => l.int8 && l.kind === 'weighted').length, 'one per int8 weight');
  t.ok(fq.biases.length > 0, `${fq.biases.length} biases float while training`);
  const bytes = serializeModel(fq.model);
  const fake = await outputs(bytes, judge, 'disabled');
  // the static model run op by op (QuantizeLinear, DequantizeLinear, float Conv): the same arithmetic
  const exact = await outputs(st.bytes, judge, 'disabled');
  const d = maxAbs(fake, exact);
  t.ok(d < 1e-4, `fake-quant vs static QDQ unfused: max |diff| ${d.toExponential(2)}`);
  // and on onnxruntime's int8 kernels (requantization rounds in its own order)
  const int8 = await outputs(st.bytes, judge, 'all');
  const cos = Math.min(...fake.map((f, i) => cosine(f, int8[i]!)));
  const dk = maxAbs(fake, int8);
  t.ok(cos > 0.999, `fake-quant vs static int8 kernels: min cosine ${cos.toFixed(6)}, max |diff| ${dk.toExponential(2)}`);
  // and it is not the float model: quantization is really simulated
  const floatOut = await outputs(st.floatBytes, judge, 'disabled');
  t.ok(maxAbs(fake, floatOut) > 10 * d, `differs from float (${maxAbs(fake, floatOut).toExponential(2)})`);
  t.ok(
    parseModel(bytes).graph.nodes.some((n) => n.opType === 'Round'),
    'Round in the written model',
  );
});

t.test('roundEven rounds halves to even, as ONNX Round and QuantizeLinear do', async (t) => {
  t.same([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.6, -2.6, 3].map(roundEven), [-2, -2, -0, 0, 2, 2, 3, -3, 3]);
});

t.test(
  'cls: export gives back the static QDQ form; after a (simulated) training step it computes the fake-quant model on int8 kernels',
  async (t) => {
    const st = await quantizeWithPlan(cls, { mode: 'static', data: calib });
    const fq = fakeQuantize(st.model, { reduceRange: st.report.platform.reduceRange });
    const staticOps = await runtimeOps(st.bytes);
    // untrained: the same int8 weights, scales and int32 biases as the static model
    const same = serializeModel(exportQdq(fq));
    const d0 = maxAbs(await outputs(same, judge, 'all'), await outputs(st.bytes, judge, 'all'));
    t.equal(d0, 0, 'untrained export runs exactly as the static model');
    t.same(await runtimeOps(same), staticOps, 'with the same runtime ops');
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    const trained = new Map<string, Tensor>();
    // what training does: every weight, bias and trainable step size moved
    const steps = new Set(qatTrainables(fq, { scales: true }).filter((n) => !qatTrainables(fq, { scales: false }).includes(n)));
    for (const name of qatTrainables(fq, { scales: true })) {
      const v = fq.model.graph.initializer(name)!;
      const k = steps.has(name) ? 0.1 : 0.05;
      trained.set(
        name,
        Tensor.fromFloat32(
          name,
          v.dims,
          Float32Array.from(v.toFloat32(), (x) => x * (1 + k * rnd())),
        ),
      );
    }
    const fqTrained = fakeQuantizeWith(fq, trained);
    const fake = await outputs(serializeModel(fqTrained), judge, 'disabled');
    const exported = serializeModel(exportQdq(fq, trained));
    const dq = maxAbs(fake, await outputs(exported, judge, 'disabled'));
    t.ok(dq < 1e-3, `exported QDQ (unfused) vs trained fake-quant: max |diff| ${dq.toExponential(2)} `);
    t.ok(maxAbs(fake, await outputs(st.bytes, judge, 'disabled')) > 10 * dq, 'the training step changed the model');
    const int8 = await outputs(exported, judge, 'all');
    const cos = Math.min(...fake.map((f, i) => cosine(f, int8[i]!)));
    t.ok(cos > 0.999, `exported on int8 kernels vs fake-quant: min cosine ${cos.toFixed(6)}`);
    const ops = await runtimeOps(exported);
    t.same(ops, staticOps, `same runtime ops as static int8: ${JSON.stringify(ops)}`);
    t.ok((ops.QLinearConv ?? 0) > 0, 'QLinearConv kernels');
  },
);

t.test(
  'cls: with biasUnits output, biases are trained in units of their output step, so a learning rate moves them as it moves weights',
  async (t) => {
    const st = await quantizeWithPlan(cls, { mode: 'static', data: calib });
    const fq = fakeQuantize(st.model, { reduceRange: st.report.platform.reduceRange, biasUnits: 'output' });
    const g = fq.model.graph;
    const plain = fakeQuantize(st.model, { reduceRange: st.report.platform.reduceRange });
    t.ok(
      plain.biases.every((b) =>
        plain.model.graph
          .initializer(b.unit)!
          .toFloat32()
          .every((v) => v === 1),
      ),
      'by default (int32 units) every unit is 1',
    );
    const units = fq.biases.map((b) => g.initializer(b.unit)!.toFloat32());
    t.ok(
      units.every((u) => u.every((v) => v >= 1)),
      'every unit >= 1 (never finer than the int32 step)',
    );
    const big = units.reduce((a, u) => a + u.filter((v) => v > 10).length, 0);
    // an int32 step (s_in x s_w) is far below an output step: in those units a bias could not move
    t.ok(big > units.reduce((a, u) => a + u.length, 0) / 2, `most channels' unit > 10 int32 steps (${big})`);
    // one latent unit on channel 0 of the first bias moves its exported int32 value by its unit
    const b = fq.biases.find((x, i) => units[i]![0]! > 10)!;
    const u = g.initializer(b.unit)!.toFloat32()[0]!;
    const v = g.initializer(b.value)!;
    const moved = Float32Array.from(v.toFloat32());
    moved[0]! += 1;
    const int32Of = (m: ReturnType<typeof exportQdq>): number => {
      const reader = m.graph.producer(b.reader)!;
      const dq = m.graph.producer(reader.inputs[2]!)!;
      return m.graph.initializer(dq.inputs[0]!)!.toNumbers()[0]!;
    };
    const before = int32Of(exportQdq(fq));
    const after = int32Of(exportQdq(fq, new Map([[b.value, Tensor.fromFloat32(b.value, v.dims, moved)]])));
    t.ok(Math.abs(after - before - u) <= 1, `int32 bias moved ${after - before} for a unit of ${u.toFixed(1)}`);
    // a bias beyond int32 saturates, as the static path stores it, instead of wrapping to the other sign
    moved[0] = 1e12;
    const huge = int32Of(exportQdq(fq, new Map([[b.value, Tensor.fromFloat32(b.value, v.dims, moved)]])));
    // (read back through float32, as toNumbers does: 2^31 - 1 reads 2^31; wrapped it would read -2^31)
    t.ok(huge >= 2147483647, `saturated at the int32 maximum (${huge})`);
  },
);

/** The fake-quant model with trained values in place of its initializers. */
function fakeQuantizeWith(fq: ReturnType<typeof fakeQuantize>, trained: Map<string, Tensor>): ReturnType<typeof fakeQuantize>['model'] {
  const m = parseModel(serializeModel(fq.model));
  for (const t of trained.values()) m.graph.setInitializer(t);
  return m;
}

t.test(
  "cls: exportWith turns each evaluation's trained values into the int8 model: the start's is static int8, the kept step's is the result",
  async (t) => {
    const rows = loadInputSet(OCR_FIT_SETS.cls.calibrate, modelInputs(cls), { limit: 8 }).samples;
    const seen: { step: number; values: Map<string, Float32Array> }[] = [];
    const r = await quantizeQat(cls, {
      samples: rows,
      minutes: 1,
      maxSteps: 4,
      batch: 2,
      threads: 2,
      lr: 3e-2,
      onEvaluation: (e) => seen.push({ step: e.step, values: new Map([...e.weights].map(([k, v]) => [k, Float32Array.from(v)])) }),
    });
    t.ok(seen.length >= 2 && seen[0]!.step === 0, `${seen.length} evaluations, the first the start`);
    // every int8/int32 initializer (quantized weights, biases, zero points) of a QDQ model, as a
    // sorted list of their values (the export names them its own way)
    const ints = (bytes: Uint8Array): string[] =>
      [...parseModel(bytes).graph.initializers()]
        .filter((x) => x.dtype === 'int8' || x.dtype === 'uint8' || x.dtype === 'int32')
        .map((x) => x.toNumbers().join(','))
        .sort();
    const start = ints(serializeModel(r.exportWith(seen[0]!.values)));
    t.ok(start.length > 10, `${start.length} integer initializers`);
    t.same(start, ints(r.staticBytes), "the start's values export to static int8 exactly");
    const kept = seen.find((s) => s.step === r.report.training.bestStep)!;
    t.same(ints(serializeModel(r.exportWith(kept.values))), ints(r.bytes), "the kept step's values export to the result");
    if (r.report.training.improved)
      t.notSame(ints(serializeModel(r.exportWith(seen[seen.length - 1]!.values))), start, 'trained values export to other integers');
  },
);

t.test(
  'QAT on large images trains on the default crops (QAT_CROP_SCALE of a side, CROP_BATCH rows) unless the caller augments',
  async (t) => {
    // a tiny fully convolutional map model (det's form: image in, Sigmoid map out) with free H, W
    const b = new ModelBuilder({ seed: 7 });
    const x = b.input('x', [1, 3, 320, 320]);
    b.output(b.node('Sigmoid', [b.conv(b.relu(b.conv(x, 8, { k: 3 })), 1, { k: 3 })], [1, 1, 320, 320]));
    const m = b.build();
    m.graph.inputs[0]!.type!.shape = [1, 3, 'h', 'w'];
    m.graph.outputs[0]!.type!.shape = [1, 1, 'h', 'w'];
    // real pages at 320x320 (det's calibration images)
    const rows = loadInputSet(OCR_FIT_SETS.det.calibrate, modelInputs(m), { limit: 6, shapes: new Map([['x', [1, 3, 320, 320]]]) }).samples;
    const r = await quantizeQat(m, { samples: rows, minutes: 1, maxSteps: 2, threads: 2 });
    t.same(r.report.crop, [96, 96], '0.3 of 320 in whole 32-pixel cells');
    t.equal(r.report.training.batch, CROP_BATCH, 'a batch of crops per step');
    t.equal(r.report.training.steps, 2);
    // the caller's augmentation replaces the default: whole images, the trainer's batch
    const seen: number[][] = [];
    const own = await quantizeQat(m, {
      samples: rows,
      minutes: 1,
      maxSteps: 1,
      threads: 2,
      augment: (s) => (seen.push([...s.x!.shape]), s),
    });
    t.equal(own.report.crop, undefined, 'no default crop reported');
    t.ok(seen.length > 0 && seen.every((s) => s[2] === 320 && s[3] === 320), `the caller's rows: ${JSON.stringify(seen[0])}`);
  },
);

t.test('QAT follows a static start that leaves the input float: its export has no quantizer on it and one int8 conv fewer', async (t) => {
  const b = new ModelBuilder({ seed: 11 });
  const x = b.input('x', [1, 3, 64, 64]);
  b.output(b.node('Sigmoid', [b.conv(b.relu(b.conv(x, 8, { k: 3 })), 1, { k: 3 })], [1, 1, 64, 64]));
  const m = b.build();
  const rows = loadInputSet(OCR_FIT_SETS.det.calibrate, modelInputs(m), { limit: 4, shapes: new Map([['x', [1, 3, 64, 64]]]) }).samples;
  const quantizesX = (bytes: Uint8Array): boolean =>
    parseModel(bytes).graph.nodes.some((n) => n.opType === 'QuantizeLinear' && n.inputs[0] === 'x');
  const all = await quantizeQat(m, { samples: rows, minutes: 1, maxSteps: 1, threads: 2 });
  t.ok(quantizesX(all.bytes), 'by default the input is quantized');
  const kept = await quantizeQat(m, { samples: rows, minutes: 1, maxSteps: 1, threads: 2, floatTensors: ['x'] });
  t.notOk(quantizesX(kept.bytes), 'left float, the export has no quantizer on it');
  t.same(kept.report.quantize.floatTensors, ['x'], 'the report names it float');
  t.equal(
    kept.report.quantize.runtimeOps.QLinearConv,
    1,
    `the exported model runs one int8 conv: ${JSON.stringify(kept.report.quantize.runtimeOps)}`,
  );
  t.equal(kept.report.training.steps, 1);
});

t.test("QAT matches the maps a detector's head reads besides its output, and exports the model's own outputs only", async (t) => {
  // det's form in small: two scales, the coarse one upsampled, concatenated for a map head
  const b = new ModelBuilder({ seed: 13 });
  const x = b.input('x', [1, 3, 64, 64]);
  const fine = b.relu(b.conv(x, 8, { k: 3 }));
  const coarse = b.relu(b.conv(fine, 8, { k: 3, stride: 2 }));
  const cat = b.concat([fine, b.resize2x(coarse)]);
  b.output(b.node('Sigmoid', [b.conv(b.relu(b.conv(cat, 4, { k: 3 })), 1, { k: 1 })], [1, 1, 64, 64]));
  const m = b.build();
  const rows = loadInputSet(OCR_FIT_SETS.det.calibrate, modelInputs(m), { limit: 4, shapes: new Map([['x', [1, 3, 64, 64]]]) }).samples;
  const r = await quantizeQat(m, { samples: rows, minutes: 1, maxSteps: 2, threads: 2 });
  t.same(
    r.report.features.map((f) => f.tensor).sort(),
    [fine, coarse].sort(),
    'both scales the head reads, the coarse one before its Resize',
  );
  t.ok(
    r.report.features.every((f) => Number.isFinite(f.weight) && f.weight > 0 && f.cosine >= 0.5),
    `int8 moves them (a finite weight is a non-zero start error), each weighted: ${JSON.stringify(r.report.features)}`,
  );
  t.equal(r.report.training.steps, 2);
  t.same(
    r.model.graph.outputs.map((o) => o.name),
    m.graph.outputs.map((o) => o.name),
    'the exported model has the original outputs only',
  );
  const off = await quantizeQat(m, { samples: rows, minutes: 1, maxSteps: 1, threads: 2, features: false });
  t.same(off.report.features, [], 'features: false, the outputs alone');
});
