// The fitter's int8 flavour follows where a model's MACs are: static for conv nets (PP-OCR det,
// the MNIST CNN), dynamic for a MatMul-heavy transformer encoder.
import t from 'tap';
import { join } from 'node:path';
import { readModelBytes, parseModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { annotateShapes } from '../../src/ir/shapes.js';
import { analyzeCost } from '../../src/analyze/index.js';
import { int8Flavour, matmulShare } from '../../src/fit/precision.js';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';

function cost(path: string, shapes: Record<string, number[]>) {
  const m = normalize(parseModel(readModelBytes(path)));
  annotateShapes(m, { shapes: new Map(Object.entries(shapes)) });
  return analyzeCost(m);
}

t.test('conv nets get static int8, a transformer encoder dynamic', async (t) => {
  const det = cost(OCR_MODELS.det.file, { x: [...OCR_MODELS.det.shape] });
  const mnist = cost(join(ROOT, 'models/mnist-cnn.onnx'), { x: [1, 1, 28, 28] });
  const enc = cost(join(ROOT, 'test/fixtures/zoo/transformer-op13.onnx'), { x: [1, 16, 32] });
  t.ok(matmulShare(det) < 0.05, `det ${matmulShare(det).toFixed(3)}`);
  t.ok(matmulShare(mnist) > 0 && matmulShare(mnist) < 0.5, `mnist ${matmulShare(mnist).toFixed(3)} (its two Gemms)`);
  t.ok(matmulShare(enc) >= 0.5, `transformer ${matmulShare(enc).toFixed(3)}`);
  t.equal(int8Flavour(det), 'int8-static');
  t.equal(int8Flavour(mnist), 'int8-static');
  t.equal(int8Flavour(enc), 'int8-dynamic');
  t.equal(int8Flavour({ layers: [] }), 'int8-static', 'nothing known: static');
});
