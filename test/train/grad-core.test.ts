// buildGradients' core (reverse walk, accumulation over several consumers, broadcasting undone,
// refusal of ops without a rule) checked against finite differences on real onnxruntime runs.
import t from 'tap';
import { gradCheck, singleOp } from '../../devkit/gradcheck.js';
import { Graph } from '../../src/ir/graph.js';
import { Node } from '../../src/ir/node.js';
import { modelOf } from '../../src/ir/model.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';
import { Tensor } from '../../src/ir/tensor.js';

t.test('elementwise rules with broadcasting match finite differences in float64', async (t) => {
  for (const op of ['Add', 'Sub', 'Mul']) {
    const m = singleOp(op, [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [3, 1] },
    ]);
    const r = await gradCheck(m, { wrt: ['a', 'b'] });
    t.equal(r.dtype, 'float64', `${op} runs in float64`);
    t.ok(r.worst < 1e-6, `${op}: worst relative error ${r.worst.toExponential(2)}`);
    t.same(r.zero, [], `${op}: no all-zero gradient`);
  }
});

t.test('reductions and Relu match finite differences', async (t) => {
  const mean = singleOp(
    'ReduceMean',
    [{ name: 'x', shape: [2, 3, 5] }],
    { axes: { type: 'ints', value: [1, -1] }, keepdims: { type: 'int', value: 0 } },
    { opset: 13 },
  );
  t.ok((await gradCheck(mean, { wrt: ['x'] })).worst < 1e-6, 'ReduceMean over axes [1,-1], opset 13 (attribute)');
  const sum = singleOp('ReduceSum', [
    { name: 'x', shape: [2, 3, 5] },
    { name: 'axes', shape: [1], int64: [1] },
  ]);
  t.ok((await gradCheck(sum, { wrt: ['x'] })).worst < 1e-6, 'ReduceSum with axes as input, opset 17');
  const relu = singleOp('Relu', [{ name: 'x', shape: [4, 6] }]);
  const r = await gradCheck(relu, { wrt: ['x'] });
  t.ok(r.worst < 1e-6, `Relu: ${r.worst.toExponential(2)}`);
});

t.test('a value read by several nodes gets the sum of their gradients; weights become inputs', async (t) => {
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [2, 4] } });
  g.setInitializer(Tensor.fromFloat32('w', [4], [0.5, -1, 2, 0.25]));
  g.addNode(new Node({ opType: 'Mul', inputs: ['x', 'w'], outputs: ['a'] }));
  g.addNode(new Node({ opType: 'Relu', inputs: ['a'], outputs: ['b'] }));
  g.addNode(new Node({ opType: 'Add', inputs: ['a', 'b'], outputs: ['c'] }));
  g.addNode(new Node({ opType: 'Mul', inputs: ['c', 'a'], outputs: ['y'] }));
  g.outputs = [{ name: 'y', type: null }];
  const m = modelOf(g, { producer: 'test', opset: 17 });
  const r = await gradCheck(m, { wrt: ['w', 'x'] });
  t.ok(r.worst < 1e-6, `three paths through 'a': ${r.worst.toExponential(2)}`);
  const built = buildGradients(
    (() => {
      const c = modelOf(g.clone(), { producer: 'test', opset: 17 });
      c.graph.addNode(new Node({ opType: 'ReduceSum', inputs: ['y'], outputs: ['L'], attrs: { keepdims: { type: 'int', value: 0 } } }));
      return c;
    })(),
    { loss: 'L', wrt: ['w'] },
  );
  t.ok(
    built.model.graph.inputs.some((i) => i.name === 'w'),
    'the trained weight is a graph input',
  );
  t.notOk(built.model.graph.initializer('w'), 'and no longer an initializer');
  t.equal(built.model.graph.outputs[0]!.name, 'L', 'the loss is the first output');
  t.equal(built.model.graph.outputs[1]!.name, built.grads.get('w'), 'then the gradient');
});

t.test('an op without a gradient rule is refused, naming it', async (t) => {
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [2, 4] } });
  g.addNode(new Node({ opType: 'Erf', inputs: ['x'], outputs: ['e'] }));
  g.addNode(new Node({ opType: 'ReduceSum', inputs: ['e'], outputs: ['L'], attrs: { keepdims: { type: 'int', value: 0 } } }));
  g.outputs = [{ name: 'L', type: null }];
  t.throws(
    () => buildGradients(modelOf(g, { producer: 't', opset: 17 }), { loss: 'L', wrt: ['x'], rules: {} }),
    /ReduceSum has no gradient rule/,
  );
  t.throws(() => buildGradients(modelOf(g, { producer: 't', opset: 17 }), { loss: 'L', wrt: ['nope'] }), /neither a weight nor an input/);
});
