// The fake quantizers' gradients with the shared rule table (Round straight-through, Clip's
// in-range mask, Div): a whole activation fake quantizer, zero point and all, whose step-size
// gradient is LSQ's closed form and whose input gradient passes inside the range only (issue 18).
import t from 'tap';
import { Graph } from '../../src/ir/graph.js';
import { Node } from '../../src/ir/node.js';
import { modelOf } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';
import { GRAD_RULES } from '../../src/passes/train/grad/rules/index.js';
import { roundEven } from '../../src/passes/quantize/qat-export.js';
import { openSession } from '../../src/runtime/runner.js';
import * as ort from 'onnxruntime-node';

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
  const built = buildGradients(modelOf(g, { producer: 't', opset: 17 }), { loss: 'L', wrt: ['x', 's'], rules: GRAD_RULES });
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
