// edgefit quantize through the real CLI: a JSON report on success, one line and a non-zero exit
// on bad input, and no output file left behind when it fails.
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import { encodeNpy } from '../../src/data/npy.js';
import { ROOT, runCli } from '../../devkit/paths.js';
import { loadModel } from '../../src/onnx/index.js';

const MNIST = join(ROOT, 'models/mnist-cnn.onnx');
const dir = mkdtempSync(join(tmpdir(), 'edgefit-qcli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const cal = writeMnistLabelled(join(dir, 'cal'), { split: 'train', limit: 32 }).xPath;

function oneLineError(t: Test, r: { code: number; stderr: string }, re: RegExp): void {
  t.not(r.code, 0, 'non-zero exit');
  t.match(r.stderr, re);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

t.test('static quantization writes the model and a JSON report', async (t) => {
  const out = join(dir, 'int8.onnx');
  const r = await runCli(['quantize', MNIST, '-o', out, '--mode', 'static', '--calib', cal, '--method', 'percentile', '--json', '--force']);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, any>;
  t.equal(j.mode, 'static');
  t.equal(j.method, 'percentile');
  t.ok(j.sizes.after < j.sizes.before * 0.32);
  t.equal(
    j.layers.details.filter((l: { int8: boolean; kind: string }) => l.int8 && l.kind === 'weighted').length,
    5,
    'every conv and gemm int8',
  );
  t.ok(
    j.layers.details.some((l: { int8: boolean; kind: string }) => l.int8 && l.kind === 'passthrough'),
    'pooling/reshape between int8 layers runs on int8 data',
  );
  t.ok(j.fidelity.mean > 0.99);
  t.equal(j.fidelity.metric, 'top1', 'judged by its task (a classifier, auto-detected): label agreement');
  t.ok(j.runtimeOps.QLinearConv >= 3);
  t.ok(existsSync(out));
  t.equal(j.written, 'static', '--force writes int8 even where it is not faster');
  t.ok(j.latency.floatMs > 0 && j.latency.quantizedMs > 0, 'latency measured side by side');
  t.match(j.decision, /^(quantized|kept-float)$/);
  t.equal(j.weightRounding.method, 'adaround', 'adaround is the default weight rounding');
  t.ok(j.weightRounding.errorVsNearest < 1, `layer output error vs round-to-nearest ${j.weightRounding.errorVsNearest}`);

  // quantizing the output again is refused
  const again = await runCli(['quantize', out, '-o', join(dir, 'twice.onnx'), '--mode', 'static', '--calib', cal]);
  oneLineError(t, again, /already quantized \(it contains (QuantizeLinear|DequantizeLinear)\)/);
  t.notOk(existsSync(join(dir, 'twice.onnx')));
});

t.test('--weight-rounding nearest is what the report says it used', async (t) => {
  const r = await runCli([
    'quantize',
    MNIST,
    '-o',
    join(dir, 'near.onnx'),
    '--mode',
    'static',
    '--calib',
    cal,
    '--weight-rounding',
    'nearest',
    '--json',
    '--force',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.equal((JSON.parse(r.stdout) as { weightRounding: { method: string } }).weightRounding.method, 'nearest');
  const bad = await runCli(['quantize', MNIST, '-o', join(dir, 'x.onnx'), '--mode', 'static', '--calib', cal, '--weight-rounding', 'up']);
  t.not(bad.code, 0, 'an unknown rounding is refused');
});

t.test('--method mse and --equalize run and the report says so', async (t) => {
  const r = await runCli([
    'quantize',
    MNIST,
    '-o',
    join(dir, 'mse.onnx'),
    '--mode',
    'static',
    '--calib',
    cal,
    '--method',
    'mse',
    '--equalize',
    '--json',
    '--force',
  ]);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { method: string; equalized: { sites: number; widest: number } | null; fidelity: { mean: number } };
  t.equal(j.method, 'mse');
  t.ok(j.equalized && Number.isInteger(j.equalized.sites), `equalization reported: ${JSON.stringify(j.equalized)}`);
  t.ok(j.fidelity.mean > 0.99, `MNIST stays faithful: cosine ${j.fidelity.mean}`);
  const plain = await runCli([
    'quantize',
    MNIST,
    '-o',
    join(dir, 'plain.onnx'),
    '--mode',
    'static',
    '--calib',
    cal,
    '--weight-rounding',
    'nearest',
    '--json',
    '--force',
  ]);
  t.equal((JSON.parse(plain.stdout) as { equalized: unknown }).equalized, null, 'no equalization unless asked');
});

t.test('--mode weights: int8 weights read through Cast and Mul that onnxruntime folds at load, activations float', async (t) => {
  const out = join(dir, 'w8.onnx');
  const r = await runCli(['quantize', MNIST, '-o', out, '--mode', 'weights', '--calib', cal, '--json']);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    decision: string;
    written: string;
    sizes: { ratio: number };
    fidelity: { mean: number };
    runtimeOps: Record<string, number>;
    layers: { quantized: number };
  };
  t.equal(j.decision, 'size-only');
  t.equal(j.written, 'weights', 'size-only: written whatever the latency');
  t.ok(j.sizes.ratio < 0.3, `file ${j.sizes.ratio} of the float one`);
  t.ok(j.fidelity.mean > 0.999, `cosine ${j.fidelity.mean}`);
  t.ok(j.layers.quantized >= 4, `${j.layers.quantized} layers with int8 weights`);
  const ops = loadModel(out).graph.nodes.map((n) => n.opType);
  t.notOk(ops.includes('QuantizeLinear') || ops.includes('DequantizeLinear'), 'no QDQ: nothing is dequantized per run');
  t.ok(ops.filter((o) => o === 'Cast').length >= 4, 'the int8 weights are read through Cast');
  t.notOk(
    'Cast' in j.runtimeOps || 'DequantizeLinear' in j.runtimeOps,
    `onnxruntime folded the weights at load: runs ${Object.keys(j.runtimeOps).join(' ')}`,
  );
  oneLineError(
    t,
    await runCli(['quantize', MNIST, '-o', join(dir, 'w8b.onnx'), '--mode', 'weights']),
    /weights quantization needs calibration data/,
  );
});

t.test('without --force the file written follows the measured decision: float when int8 is not faster here', async (t) => {
  const out = join(dir, 'decided.onnx');
  const r = await runCli(['quantize', MNIST, '-o', out, '--mode', 'static', '--calib', cal, '--json']);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, any>;
  t.equal(j.decision, j.latency.ratio >= 1 ? 'kept-float' : 'quantized', `decision from the measured ratio ${j.latency.ratio}`);
  t.equal(j.written, j.decision === 'kept-float' ? 'float' : 'static');
  if (j.decision === 'kept-float') t.match(j.note, /not faster than float on this box/);
  const ops = new Set(loadModel(out).graph.nodes.map((n) => n.opType));
  t.equal(ops.has('QuantizeLinear') || ops.has('DequantizeLinear'), j.written === 'static', `the file on disk is ${j.written}`);
});

t.test('bad input: one line, non-zero exit, nothing written', async (t) => {
  const out = join(dir, 'bad.onnx');
  const wrong = join(dir, 'wrong.npy');
  writeFileSync(wrong, encodeNpy({ dtype: 'float32', shape: [4, 1, 14, 14], data: new Float32Array(4 * 196) }));
  oneLineError(
    t,
    await runCli(['quantize', MNIST, '-o', out, '--mode', 'static', '--calib', wrong]),
    /data of shape 4x1x14x14 does not fit input 'x'/,
  );
  const ints = join(dir, 'ints.npy');
  const hdr = Buffer.from(encodeNpy({ dtype: 'float32', shape: [1, 1, 28, 28], data: new Float32Array(784) }));
  writeFileSync(ints, Buffer.from(hdr.toString('latin1').replace("'<f4'", "'<i4'"), 'latin1'));
  oneLineError(
    t,
    await runCli(['quantize', MNIST, '-o', out, '--mode', 'static', '--calib', ints]),
    /data is int32 but the model input wants float32/,
  );
  oneLineError(t, await runCli(['quantize', MNIST, '-o', out, '--mode', 'static']), /static quantization needs calibration data/);
  oneLineError(
    t,
    await runCli(['quantize', MNIST, '-o', out, '--mode', 'dynamic', '--min-fidelity', '1.5']),
    /--min-fidelity must be in \(0, 1\]/,
  );
  oneLineError(t, await runCli(['quantize', join(dir, 'missing.onnx'), '-o', out, '--mode', 'fp16']), /model file not found/);
  oneLineError(
    t,
    await runCli(['quantize', MNIST, '-o', out, '--mode', 'dynamic', '--calib', cal, '--task', 'text-det']),
    /task text-det does not fit this model's outputs: .* \(--task\)/,
  );
  const fp16 = join(dir, 'fp16.onnx');
  t.equal((await runCli(['quantize', MNIST, '-o', fp16, '--mode', 'fp16'])).code, 0);
  oneLineError(t, await runCli(['quantize', fp16, '-o', out, '--mode', 'dynamic']), /is float16; edgefit quantizes float32 models/);
  t.notOk(existsSync(out), 'no output after failures');
});
