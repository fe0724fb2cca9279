// The fake quantizers' gradients with the shared rule table: a whole activation fake quantizer,
// zero point and all, spelt in float ops (Round straight-through, Clip's in-range mask, Div) and as
// onnxruntime's QuantizeLinear -> DequantizeLinear pair (QAT's form, rules/quantize.ts). Both give
// LSQ's closed form for the step and pass the input's gradient inside the range only (issue 18).
// The pair's rules refuse any other use of the two ops.
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

type Spelling = 'float ops' | 'pair';

/** sum(c * fq(x)) over x spanning below, inside and above the range; gradients for x and s. */
async function fakeQuantGrads(spelling: Spelling, zpType: 'uint8' | 'int8', z: number, s0: number) {
  const n = 64;
  const [qmin, qmax] = zpType === 'uint8' ? [0, 255] : [-128, 127];
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [n] } });
  g.inputs.push({ name: 'c', type: { dtype: 'float32', shape: [n] } });
  g.setInitializer(Tensor.scalarFloat('s', s0));
  const node = (op: string, ins: string[], out: string): void => void g.addNode(new Node({ opType: op, inputs: ins, outputs: [out] }));
  if (spelling === 'float ops') {
    g.setInitializer(Tensor.scalarFloat('z', z));
    g.setInitializer(Tensor.scalarFloat('lo', qmin));
    g.setInitializer(Tensor.scalarFloat('hi', qmax));
    node('Div', ['x', 's'], 'd');
    node('Round', ['d'], 'r');
    node('Add', ['r', 'z'], 'a');
    node('Clip', ['a', 'lo', 'hi'], 'q');
    node('Sub', ['q', 'z'], 'u');
    node('Mul', ['u', 's'], 'y');
  } else {
    g.setInitializer(
      zpType === 'uint8'
        ? Tensor.fromUint8('zp', [], Uint8Array.of(z))
        : new Tensor({ name: 'zp', dtype: 'int8', dims: [], bytes: Uint8Array.of(z & 255) }),
    );
    node('QuantizeLinear', ['x', 's', 'zp'], 'q');
    node('DequantizeLinear', ['q', 's', 'zp'], 'y');
  }
  node('Mul', ['y', 'c'], 'p');
  g.addNode(new Node({ opType: 'ReduceSum', inputs: ['p'], outputs: ['L'], attrs: { keepdims: { type: 'int', value: 0 } } }));
  g.outputs = [{ name: 'L', type: null }];
  const built = buildGradients(modelOf(g, { producer: 't', opset: 17 }), { loss: 'L', wrt: ['x', 's'], rules: GRAD_RULES });
  const lo = (qmin - z) * s0;
  const hi = (qmax - z) * s0;
  const x = Float32Array.from({ length: n }, (_, i) => lo - 0.1 * (hi - lo) + (1.2 * (hi - lo) * i) / (n - 1));
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
  // LSQ: d/ds [(clip(round(x/s)+z) - z) s] = round(x/s) - x/s inside, the bound's level outside
  let want = 0;
  const inRange: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const v = Math.fround(x[i]! / Math.fround(s0));
    const q = roundEven(v) + z;
    inRange.push(q >= qmin && q <= qmax);
    want += c[i]! * (inRange[i] ? roundEven(v) - v : (q < qmin ? qmin : qmax) - z);
  }
  return { gx, gs, want, inRange, c, ops: built.model.graph.nodes.map((nd) => nd.opType) };
}

for (const [spelling, zpType, z, s0] of [
  ['float ops', 'uint8', 10, 0.02],
  ['pair', 'uint8', 10, 0.02],
  ['pair', 'int8', -3, 0.05],
] as const) {
  t.test(
    `an activation fake quantizer (${spelling}, ${zpType}): x passes straight through inside the range, and d/ds is LSQ`,
    async (t) => {
      const r = await fakeQuantGrads(spelling, zpType, z, s0);
      r.inRange.forEach((inside, i) => t.ok(Math.abs(r.gx[i]! - (inside ? r.c[i]! : 0)) < 1e-6, `d/dx[${i}]`));
      const inside = r.inRange.filter(Boolean).length;
      t.ok(inside > 10 && inside < r.inRange.length - 10, `${inside} of ${r.inRange.length} inside the range`);
      t.ok(Math.abs(r.gs - r.want) < 1e-4 * Math.max(1, Math.abs(r.want)), `d/ds ${r.gs.toFixed(5)} = LSQ ${r.want.toFixed(5)}`);
      if (spelling === 'pair') t.notOk(r.ops.includes('Round'), 'the pair stays two ops, and its backward has no Round');
    },
  );
}

t.test('the pair rules refuse QuantizeLinear and DequantizeLinear used otherwise, naming the node', async (t) => {
  const build = (readQ: boolean, otherStep: boolean) => {
    const g = new Graph();
    g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [4] } });
    g.setInitializer(Tensor.scalarFloat('s', 0.1));
    g.setInitializer(Tensor.scalarFloat('s2', 0.2));
    g.setInitializer(Tensor.fromUint8('zp', [], Uint8Array.of(0)));
    g.addNode(new Node({ opType: 'QuantizeLinear', name: 'quant', inputs: ['x', 's', 'zp'], outputs: ['q'] }));
    g.addNode(new Node({ opType: 'DequantizeLinear', name: 'dequant', inputs: ['q', otherStep ? 's2' : 's', 'zp'], outputs: ['y'] }));
    // the integer read beside the pair (an output the loss does not depend on)
    if (readQ) g.addNode(new Node({ opType: 'Cast', inputs: ['q'], outputs: ['qf'], attrs: { to: { type: 'int', value: 1 } } }));
    g.addNode(new Node({ opType: 'ReduceSum', inputs: ['y'], outputs: ['L'], attrs: { keepdims: { type: 'int', value: 0 } } }));
    g.outputs = [{ name: 'L', type: null }, ...(readQ ? [{ name: 'qf', type: null }] : [])];
    return () => buildGradients(modelOf(g, { producer: 't', opset: 17 }), { loss: 'L', wrt: ['x'], rules: GRAD_RULES });
  };
  t.throws(build(false, true), /dequant.*does not dequantize a QuantizeLinear of the same step/);
  t.throws(build(true, false), /quant.*its output is read by something else/);
  t.doesNotThrow(build(false, false), 'the pair itself builds');
});
