// Task metrics through the real evaluator on real models and real data (issue 16), each with a
// known answer: a model against itself scores exactly 1, a model that outputs nothing scores 0
// (a det whose map is driven to ~0, a rec that reads only blanks), and a static int8 model,
// calibrated on other images than it is judged on, lands in between. cls and MNIST are judged by
// label agreement, MNIST's accuracy against labels still reported beside it.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareModels, evaluateModel, Evaluator } from '../../src/evaluate/index.js';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { Tensor } from '../../src/ir/tensor.js';
import { normalize } from '../../src/passes/normalize.js';
import type { Model } from '../../src/ir/model.js';
import { quantizeModel } from '../../src/fit/quantize/plan.js';
import * as ort from 'onnxruntime-node';
import { openSession, toFeeds } from '../../src/runtime/runner.js';
import { readNpy } from '../../src/data/npy.js';
import { argmax } from '../../src/fidelity/index.js';
import type { InputSet } from '../../src/data/inputs.js';
import { loadCalib } from '../../devkit/calib.js';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';

const ev = new Evaluator();
const dir = mkdtempSync(join(tmpdir(), 'edgefit-tasks-'));
t.teardown(() => {
  ev.close();
  rmSync(dir, { recursive: true, force: true });
});

const subset = (s: InputSet, from: number, to: number): InputSet => ({ ...s, samples: s.samples.slice(from, to) });

/** The model with the constant added just before its output head's activation set by `edit`. */
function withHeadBias(file: string, head: string, edit: (v: Float32Array) => void): Uint8Array {
  // (normalize makes the exporter's Constant nodes initializers)
  const m: Model = normalize(loadModel(file));
  const act = m.graph.nodes.find((n) => n.opType === head && m.graph.isGraphOutput(n.outputs[0]!))!;
  const add = m.graph.producer(act.inputs[0]!)!;
  const bias = add.inputs.map((i) => m.graph.initializer(i)).find((x) => x !== undefined)!;
  const v = Float32Array.from(bias.toFloat32());
  edit(v);
  m.graph.setInitializer(Tensor.fromFloat32(bias.name, bias.dims, v));
  return serializeModel(m);
}

async function int8(file: string, calib: InputSet): Promise<Uint8Array> {
  const r = await quantizeModel(loadModel(file), { mode: 'static', data: calib.samples.map(toFeeds), weightRounding: 'nearest' });
  return r.bytes;
}

t.test('text-det: box F1 on the PP-OCR det over real page images', async (t) => {
  const det = OCR_MODELS.det;
  const all = loadCalib(join(ROOT, 'test/fixtures/ocr/det'), [...det.shape], 8);
  const judge = subset(all, 4, 8);
  const self = await compareModels({ model: det.file, reference: det.file, data: judge, threads: 2 }, ev);
  t.same([self.task, self.taskAuto, self.metric, self.value], ['text-det', true, 'boxF1', 1], 'itself: auto-detected, box F1 exactly 1');
  t.ok(self.taskFigures!.refBoxes! >= 4, `the reference finds ${self.taskFigures!.refBoxes} text boxes on 4 images`);

  // the DB head's last bias driven far negative: the map is ~0, no box is found
  const dead = withHeadBias(det.file, 'Sigmoid', (v) => v.fill(-1000));
  const none = await compareModels({ model: dead, reference: det.file, data: judge, threads: 2 }, ev);
  t.same([none.value, none.taskFigures!.recall, none.taskFigures!.boxes], [0, 0, 0], 'a map without text scores 0');

  // static int8 calibrated on two of the other images
  const q = await int8(det.file, subset(all, 0, 2));
  const r = await compareModels({ model: q, reference: det.file, data: judge, threads: 2, task: 'text-det' }, ev);
  t.equal(r.taskAuto, false);
  t.ok(r.value > 0.3 && r.value < 1, `int8: box F1 ${r.value.toFixed(3)} (cosine ${r.cosine.toFixed(3)})`);
  const f = r.taskFigures!;
  t.ok(Math.abs(f.value - (2 * f.precision! * f.recall!) / (f.precision! + f.recall!)) < 1e-12, 'F1 is the harmonic mean of P and R');
  // asked for by name, the raw figure is the headline and the task's figures stay beside it
  const cos = await compareModels({ model: q, reference: det.file, data: judge, threads: 2, fidelityMetric: 'cosine' }, ev);
  t.same([cos.metric, cos.value, cos.task, cos.taskFigures!.value], ['cosine', Math.max(0, r.cosine), 'text-det', r.value]);
});

t.test('ctc: text agreement of the PP-OCR rec over real text lines', async (t) => {
  const rec = OCR_MODELS.rec;
  const all = loadCalib(join(ROOT, 'test/fixtures/ocr/rec'), [...rec.shape], 16);
  const judge = subset(all, 8, 16);
  const self = await compareModels({ model: rec.file, reference: rec.file, data: judge, threads: 2 }, ev);
  t.same([self.task, self.metric, self.value, self.taskFigures!.cer, self.taskFigures!.lineExact], ['ctc', 'textAgreement', 1, 0, 1]);

  // the blank class's bias raised far above the others: every step decodes to blank, no text
  const blank = withHeadBias(rec.file, 'Softmax', (v) => (v[0] = 1000));
  const none = await compareModels({ model: blank, reference: rec.file, data: judge, threads: 2 }, ev);
  t.same([none.value, none.taskFigures!.cer, none.taskFigures!.lineExact], [0, 1, 0], 'all blank: text agreement 0');
  t.ok(none.top1Agreement! > 0.3, `yet per-step argmax agrees on ${none.top1Agreement!.toFixed(2)} of steps (mostly blanks)`);

  const q = await int8(rec.file, subset(all, 0, 8));
  const r = await compareModels({ model: q, reference: rec.file, data: judge, threads: 2 }, ev);
  t.ok(r.value > 0.2 && r.value < 1, `int8: text agreement ${r.value.toFixed(3)}, per-step agreement ${r.top1Agreement!.toFixed(3)}`);
  t.ok(r.taskFigures!.cer! > 0 && r.taskFigures!.lineExact! < 1);
});

t.test('classify: label agreement on the PP-OCR cls and MNIST; accuracy with labels beside it', async (t) => {
  const cls = OCR_MODELS.cls;
  const crops = join(ROOT, 'test/fixtures/ocr/cls');
  const self = await evaluateModel(
    { model: cls.file, reference: cls.file, data: crops, shapes: new Map([['x', [...cls.shape]]]), runs: 2, baseline: false },
    ev,
  );
  t.same([self.fidelity!.task, self.fidelity!.metric, self.fidelity!.value], ['classify', 'top1', 1]);
  t.equal(self.fidelity!.taskFigures!.top5, undefined, 'two classes: no top-5');
  t.ok(self.accuracy!.value >= 0.8, `labels still give accuracy ${self.accuracy!.value}`);
  // the classifier's head pinned to class 0: it agrees only where the original says 0
  const flipped = withHeadBias(cls.file, 'Softmax', (v) => {
    v[0] = 1000;
    v[1] = -1000;
  });
  const r = await evaluateModel(
    { model: flipped, reference: cls.file, data: crops, shapes: new Map([['x', [...cls.shape]]]), runs: 2, baseline: false },
    ev,
  );
  // (the crops are upright and rotated alike, and the original reads both kinds)
  t.ok(r.fidelity!.value < 1 && r.fidelity!.value > 0, `always class 0: agrees on ${r.fidelity!.value.toFixed(3)} of ${r.samples} crops`);

  writeMnistLabelled(join(dir, 'mnist'), { split: 'test', limit: 200 });
  const mnist = join(ROOT, 'models/mnist-cnn.onnx');
  const m = await evaluateModel({ model: mnist, reference: mnist, data: join(dir, 'mnist'), runs: 2, baseline: false }, ev);
  t.same([m.fidelity!.task, m.fidelity!.metric, m.fidelity!.value, m.fidelity!.taskFigures!.top5], ['classify', 'top1', 1, 1]);
  t.ok(m.accuracy!.value > 0.9, `MNIST accuracy ${m.accuracy!.value}`);
  // the last Gemm's bias for class 3 raised far above the rest: the model always says 3, so it
  // agrees exactly where the original says 3 (counted here from the original's own outputs)
  const g: Model = loadModel(mnist);
  const head = g.graph.nodes.find((n) => n.opType === 'Gemm' && g.graph.isGraphOutput(n.outputs[0]!))!;
  const b = g.graph.initializer(head.inputs[2]!)!;
  const bias = Float32Array.from(b.toFloat32());
  bias[3] = 1e4;
  g.graph.setInitializer(Tensor.fromFloat32(b.name, b.dims, bias));
  const three = await evaluateModel({ model: serializeModel(g), reference: mnist, data: join(dir, 'mnist'), runs: 2, baseline: false }, ev);
  const x = readNpy(join(dir, 'mnist', 'x.npy'));
  const s = await openSession(mnist);
  const n = x.shape[0]!;
  const logits = (await s.run({ x: new ort.Tensor('float32', x.data as Float32Array, [n, 1, 28, 28]) }))[s.outputNames[0]!]!
    .data as Float32Array;
  await s.release();
  let says3 = 0;
  for (let i = 0; i < n; i++) if (argmax(logits, i * 10, 10) === 3) says3++;
  t.ok(says3 > 0 && says3 < n);
  t.equal(three.fidelity!.value, says3 / n, `always 3: agrees on the ${says3} of ${n} digits the original calls 3`);
  t.ok(three.accuracy!.value < 0.2, `and its accuracy against the labels is ${three.accuracy!.value}`);
});
