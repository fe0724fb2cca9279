// Weights inside If/Loop/Scan bodies count (issue 17): silero-VAD-style models keep their network
// in If branches and reported 0 params. A tiny If whose branches hold an initializer and a
// Constant: the codec counts them, analyzeCost adds them, `edgefit inspect` reports them, and the
// model still runs in onnxruntime (both branches) after the round trip.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { Graph } from '../../src/ir/graph.js';
import { Tensor } from '../../src/ir/tensor.js';
import { modelOf, type Model } from '../../src/ir/model.js';
import type { PGraph } from '../../src/onnx/proto.js';
import { parseModel, serializeModel } from '../../src/onnx/index.js';
import { analyzeCost } from '../../src/analyze/cost.js';
import { runCli } from '../../devkit/paths.js';
import { testDir } from '../helpers/tmp.js';

const floatType = (dims: number[]) => ({ tensor_type: { elem_type: 1, shape: { dim: dims.map((d) => ({ dim_value: d })) } } });

/** A branch: y = x @ W (+ b from a Constant node in the else branch). */
function branch(name: string, w: number[], bias: number[] | null): PGraph {
  const nodes: PGraph['node'] = [
    { op_type: 'MatMul', input: ['x', `${name}_W`], output: [bias ? `${name}_xw` : `${name}_y`], name: `${name}_mm` },
  ];
  if (bias) {
    nodes.push({
      op_type: 'Constant',
      output: [`${name}_b`],
      name: `${name}_const`,
      attribute: [{ name: 'value', type: 4, t: { name: `${name}_b`, dims: [3], data_type: 1, float_data: bias } }],
    });
    nodes.push({ op_type: 'Add', input: [`${name}_xw`, `${name}_b`], output: [`${name}_y`], name: `${name}_add` });
  }
  return {
    name,
    node: nodes,
    initializer: [{ name: `${name}_W`, dims: [4, 3], data_type: 1, float_data: w }],
    output: [{ name: `${name}_y`, type: floatType([1, 3]) }],
  };
}

function ifModel(): Model {
  const g = new Graph();
  g.name = 'if-weights';
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [1, 4] } });
  g.outputs.push({ name: 'y', type: { dtype: 'float32', shape: [1, 3] } });
  g.setInitializer(Tensor.fromFloat32('zero', [], [0]));
  g.addNode({ name: 'sum', opType: 'ReduceSum', inputs: ['x'], outputs: ['s'], attrs: { keepdims: { type: 'int', value: 0 } } });
  g.addNode({ name: 'gt', opType: 'Greater', inputs: ['s', 'zero'], outputs: ['cond'] });
  const W1 = Array.from({ length: 12 }, (_, i) => i / 10),
    W2 = Array.from({ length: 12 }, (_, i) => -i / 10);
  g.addNode({
    name: 'if',
    opType: 'If',
    inputs: ['cond'],
    outputs: ['y'],
    attrs: {
      then_branch: { type: 'graph', value: { proto: branch('then', W1, null), outerRefs: ['x'] } },
      else_branch: { type: 'graph', value: { proto: branch('else', W2, [1, 2, 3]), outerRefs: ['x'] } },
    },
  });
  return modelOf(g, { producer: 'edgefit-test' });
}

t.test('If branches: their weights are params, the model runs', async (t) => {
  const bytes = serializeModel(ifModel());
  const m = parseModel(bytes);
  const cost = analyzeCost(m);
  // 1 outer scalar + 12 (then W) + 12 (else W) + 3 (else Constant bias)
  t.equal(cost.params, 28, 'outer and branch weights counted');
  t.equal(cost.layers.find((l) => l.op === 'If')?.params, 27, 'the If layer holds its branches’ weights');
  t.equal(cost.weightBytes, 28 * 4);
  const s = await ort.InferenceSession.create(bytes);
  const pos = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 1, 1, 1]), [1, 4]) });
  const neg = await s.run({ x: new ort.Tensor('float32', Float32Array.from([-1, -1, -1, -1]), [1, 4]) });
  t.same(
    Array.from(pos.y!.data as Float32Array).map((v) => +v.toFixed(4)),
    [1.8, 2.2, 2.6],
    'then branch: x @ W1',
  );
  t.same(
    Array.from(neg.y!.data as Float32Array).map((v) => +v.toFixed(4)),
    [2.8, 4.2, 5.6],
    'else branch: x @ W2 + b',
  );

  const dir = testDir('edgefit-if-');
  const file = join(dir, 'if.onnx');
  writeFileSync(file, bytes);
  const r = await runCli(['inspect', file, '--json']);
  t.equal(r.code, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).params, 28, 'inspect reports them');
});
