// The fake quantizers' gradient rules (qat-grads.ts): Div and Clip against finite differences,
// Round straight-through, and a whole activation fake quantizer whose step-size gradient is
// LSQ's closed form (issue 18).
import t from 'tap';
import { gradCheck, singleOp } from '../../devkit/gradcheck.js';
import { Graph } from '../../src/ir/graph.js';
import { Node } from '../../src/ir/node.js';
import { modelOf } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';
import { GRAD_RULES } from '../../src/passes/train/grad/rules/index.js';
import { QAT_GRADS } from '../../src/passes/quantize/qat-grads.js';
import { roundEven } from '../../src/passes/quantize/qat-export.js';
import { openSession } from '../../src/runtime/runner.js';
import * as ort from 'onnxruntime-node';

// as the trainer combines them: the shared table wins
const rules = { ...QAT_GRADS, ...GRAD_RULES };

t.test('Div (broadcast both ways) and Clip (bounds as inputs and as attributes) match finite differences', async (t) => {
  const div = singleOp('Div', [
    { name: 'a', shape: [2, 3, 4] },
    { name: 'b', shape: [3, 1] },
  ]);
  const b = Float32Array.from([1.5, -2, 0.75]);
  const r = await gradCheck(div, { wrt: ['a', 'b'], feeds: { b }, rules });
  t.equal(r.dtype, 'float64');
  t.ok(r.worst < 1e-6, `Div: ${r.worst.toExponential(2)}`);
  const clip = singleOp('Clip', [
    { name: 'x', shape: [5, 8] },
    { name: 'lo', shape: [], init: [-0.5] },
    { name: 'hi', shape: [], init: [0.7] },
  ]);
  const c = await gradCheck(clip, { wrt: ['x'], rules, samples: 40 });
  t.ok(c.worst < 1e-6, `Clip(x, -0.5, 0.7): ${c.worst.toExponential(2)}`);
  t.same(c.zero, [], 'not all zero');
  const clip10 = singleOp(
    'Clip',
    [{ name: 'x', shape: [5, 8] }],
    { min: { type: 'float', value: -0.3 }, max: { type: 'float', value: 0.4 } },
    { opset: 10 },
  );
  const c10 = await gradCheck(clip10, { wrt: ['x'], rules, samples: 40 });
  // onnxruntime has no float64 Clip-10 kernel: float32 finite differences, float32 tolerance
  t.ok(c10.worst < (c10.dtype === 'float64' ? 1e-6 : 1e-3), `Clip at opset 10 (attributes, ${c10.dtype}): ${c10.worst.toExponential(2)}`);
  const open = singleOp('Clip', [
    { name: 'x', shape: [5, 8] },
    { name: 'lo', shape: [], init: [0] },
  ]);
  t.ok((await gradCheck(open, { wrt: ['x'], rules, samples: 40 })).worst < 1e-6, 'Clip with only a lower bound (Relu6-less)');
});

t.test('an activation fake quantizer: x passes straight through inside the range, and d/ds is LSQ', async (t) => {
  const n = 64;
  const z = 10;
  const [qmin, qmax] = [0, 255];
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [n] } });
  g.inputs.push({ name: 'c', type: { dtype: 'float32', shape: [n] } });
  const s0 = 0.02;
  g.setInitializer(Tensor.scalarFloat('s', s0));
  g.setInitializer(Tensor.scalarFloat('z', z));
  g.setInitializer(Tensor.scalarFloat('lo', qmin));
  g.setInitializer(Tensor.scalarFloat('hi', qmax));
  const node = (op: string, ins: string[], out: string): void => void g.addNode(new Node({ opType: op, inputs: ins, outputs: [out] }));
  node('Div', ['x', 's'], 'd');
  node('Round', ['d'], 'r');
  node('Add', ['r', 'z'], 'a');
  node('Clip', ['a', 'lo', 'hi'], 'q');
  node('Sub', ['q', 'z'], 'u');
  node('Mul', ['u', 's'], 'y');
  node('Mul', ['y', 'c'], 'p');
  g.addNode(new Node({ opType: 'ReduceSum', inputs: ['p'], outputs: ['L'], attrs: { keepdims: { type: 'int', value: 0 } } }));
  g.outputs = [{ name: 'L', type: null }];
  const built = buildGradients(modelOf(g, { producer: 't', opset: 17 }), { loss: 'L', wrt: ['x', 's'], rules });
  // x spans below, inside and above the representable range [-0.2, 4.9]
  const x = Float32Array.from({ length: n }, (_, i) => -0.6 + (6 * i) / (n - 1));
  const c = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
  const sess = await openSession(built.model, { level: 'disabled' });
  const res = await sess.run({
    x: new ort.Tensor('float32', x, [n]),
    c: new ort.Tensor('float32', c, [n]),
    s: new ort.Tensor('float32', Float32Array.of(s0), []),
  });
  await sess.release();
  const gx = res[built.grads.get('x')!]!.data as Float32Array;
  const gs = (res[built.grads.get('s')!]!.data as Float32Array)[0]!;
  let want = 0;
  let inside = 0;
  for (let i = 0; i < n; i++) {
    const v = Math.fround(x[i]! / Math.fround(s0));
    const q = roundEven(v) + z;
    const inRange = q >= qmin && q <= qmax;
    if (inRange) inside++;
    // LSQ: d/ds [(clip(round(x/s)+z) - z) s] = round(x/s) - x/s inside, the bound's level outside
    want += c[i]! * (inRange ? roundEven(v) - v : (q < qmin ? qmin : qmax) - z);
    t.ok(Math.abs(gx[i]! - (inRange ? c[i]! : 0)) < 1e-6, `d/dx[${i}]`);
  }
  t.ok(inside > 10 && inside < n - 10, `${inside} of ${n} inside the range`);
  t.ok(Math.abs(gs - want) < 1e-4 * Math.max(1, Math.abs(want)), `d/ds ${gs.toFixed(5)} = LSQ ${want.toFixed(5)}`);
});
