// The elementwise, activation and normalisation gradient rules against central finite differences
// on onnxruntime runs (devkit/gradcheck.ts), with broadcasting where the op broadcasts. Checks run in
// float64 where onnxruntime has float64 kernels for the op (bound 1e-6). Erf (and exact Gelu),
// HardSigmoid, HardSwish, Elu, Softplus, Mean, InstanceNormalization and Clip before opset 12
// have float32 kernels only: checked with a 1e-2 step, where 5e-3 relative error is what float32
// central differences of a random projection meet (measured: 4e-5 at worst). Inputs of ops with
// kinks (Relu-like, Clip, HardSwish, Abs) are kept 0.1 away from the kinks so finite differences
// are valid. Round has no finite-difference check (its derivative is 0 almost everywhere): its
// straight-through rule is tested directly, and through a fake quantizer.
import t, { type Test } from 'tap';
import * as ort from 'onnxruntime-node';
import { gradCheck, singleOp, type GradCheckResult } from '../../devkit/gradcheck.js';
import { randn, rng } from '../../devkit/builder.js';
import { Graph } from '../../src/ir/graph.js';
import { modelOf, type Model } from '../../src/ir/model.js';
import { Node } from '../../src/ir/node.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { AttrValue } from '../../src/ir/types.js';
import { openSession } from '../../src/runtime/runner.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';
import { ACTIVATION_GRADS } from '../../src/passes/train/grad/rules/activations.js';
import { ELEMENTWISE_GRADS } from '../../src/passes/train/grad/rules/elementwise.js';

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const int = (value: number): AttrValue => ({ type: 'int', value });
const float = (value: number): AttrValue => ({ type: 'float', value });

const F64_BOUND = 1e-6;
const F32_BOUND = 5e-3;

/** Ops with a passing check; the last test asserts every rule in the tables is among them. */
const checked = new Set<string>();

let seed = 100;
/** N(0, std) values moved at least `margin` away from each of `kinks` (finite differences stay on one side). */
function values(shape: number[], o: { std?: number; kinks?: number[]; margin?: number; positive?: boolean } = {}): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = randn(rng(seed++), n, o.std ?? 1);
  const margin = o.margin ?? 0.1;
  for (let i = 0; i < n; i++) {
    if (o.positive) v[i] = 0.5 + Math.abs(v[i]!);
    for (const k of o.kinks ?? []) if (Math.abs(v[i]! - k) < margin) v[i] = k + (v[i]! >= k ? margin : -margin);
  }
  return v;
}

function report(r: GradCheckResult): string {
  return `${r.dtype}, worst ${r.worst.toExponential(2)} (${r.values.map((v) => `${v.name} ${v.relErr.toExponential(1)}`).join(', ')})`;
}

async function check(
  t: Test,
  label: string,
  op: string,
  m: Model,
  wrt: string[],
  feeds: Record<string, Float32Array> = {},
  want: 'float64' | 'float32' = 'float64',
): Promise<void> {
  const r = await gradCheck(m, { wrt, feeds });
  t.equal(r.dtype, want, `${label}: runs in ${want}`);
  const ok = r.worst < (r.dtype === 'float64' ? F64_BOUND : F32_BOUND);
  t.ok(ok, `${label}: ${report(r)}`);
  t.same(r.zero, [], `${label}: no all-zero gradient`);
  if (ok && r.dtype === want) checked.add(op);
}

/** A graph of nodes over float32 inputs, with the last node's outputs as model outputs. */
function graphOf(
  inputs: Record<string, number[]>,
  nodes: { op: string; inputs: string[]; out: string; attrs?: Record<string, AttrValue> }[],
  inits: Tensor[] = [],
  opset = 17,
): Model {
  const g = new Graph();
  for (const [name, shape] of Object.entries(inputs)) g.inputs.push({ name, type: { dtype: 'float32', shape } });
  for (const i of inits) g.setInitializer(i);
  for (const n of nodes) g.addNode(new Node({ opType: n.op, inputs: n.inputs, outputs: [n.out], attrs: n.attrs ?? {} }));
  g.outputs = [{ name: nodes[nodes.length - 1]!.out, type: null }];
  return modelOf(g, { producer: 'test', opset });
}

t.test('Div and Pow with broadcasting, in float64', async (t) => {
  const div = singleOp('Div', [
    { name: 'a', shape: [2, 3, 4] },
    { name: 'b', shape: [3, 1] },
  ]);
  await check(t, 'Div a[2,3,4] / b[3,1]', 'Div', div, ['a', 'b'], { b: values([3, 1], { positive: true }) });
  const cube = singleOp('Pow', [
    { name: 'a', shape: [2, 3, 4] },
    { name: 'p', shape: [], init: [3] },
  ]);
  await check(t, 'Pow a^3 (constant exponent)', 'Pow', cube, ['a']);
  const square = singleOp('Pow', [
    { name: 'a', shape: [2, 3, 4] },
    { name: 'p', shape: [1], init: [2] },
  ]);
  await check(t, 'Pow a^2 (the square: 2a, no Pow in the backward)', 'Pow', square, ['a']);
  const sq = graphOf(
    { a: [3] },
    [
      { op: 'Pow', inputs: ['a', 'two'], out: 'y' },
      { op: 'ReduceSum', inputs: ['y'], out: 'L', attrs: { keepdims: int(0) } },
    ],
    [Tensor.fromFloat32('two', [], [2])],
  );
  const sqNodes = buildGradients(sq, { loss: 'L', wrt: ['a'] }).model.graph.nodes;
  t.equal(sqNodes.filter((n) => n.opType === 'Pow').length, 1, 'a^2: the forward Pow is the only one');
  const root = singleOp('Pow', [
    { name: 'a', shape: [3, 4] },
    { name: 'p', shape: [4], init: [0.5, 1.5, 2, -1] },
  ]);
  await check(t, 'Pow with a per-column constant exponent', 'Pow', root, ['a'], { a: values([3, 4], { positive: true }) });
  const both = singleOp('Pow', [
    { name: 'a', shape: [2, 3, 4] },
    { name: 'p', shape: [4] },
  ]);
  await check(t, 'Pow with a trained, broadcast exponent', 'Pow', both, ['a', 'p'], { a: values([2, 3, 4], { positive: true }) });
});

t.test('unary math ops in float64', async (t) => {
  const shape = [3, 5];
  const cases: [string, Record<string, Float32Array>][] = [
    ['Sqrt', { x: values(shape, { positive: true }) }],
    ['Exp', {}],
    ['Log', { x: values(shape, { positive: true }) }],
    ['Reciprocal', { x: values(shape, { positive: true }) }],
    ['Abs', { x: values(shape, { kinks: [0] }) }],
    ['Sigmoid', {}],
    ['Tanh', {}],
  ];
  for (const [op, feeds] of cases) await check(t, op, op, singleOp(op, [{ name: 'x', shape }]), ['x'], feeds);
});

t.test('activations: Erf, HardSigmoid, HardSwish, Elu have float32 kernels only; LeakyRelu', async (t) => {
  const shape = [4, 6];
  await check(t, 'Erf', 'Erf', singleOp('Erf', [{ name: 'x', shape }]), ['x'], {}, 'float32');
  const hs = singleOp('HardSigmoid', [{ name: 'x', shape }], { alpha: float(0.3), beta: float(0.4) });
  // y = 0 at x = -4/3, 1 at x = 2
  await check(
    t,
    'HardSigmoid alpha 0.3 beta 0.4',
    'HardSigmoid',
    hs,
    ['x'],
    { x: values(shape, { std: 2, kinks: [-4 / 3, 2] }) },
    'float32',
  );
  const hw = singleOp('HardSwish', [{ name: 'x', shape }]);
  await check(t, 'HardSwish', 'HardSwish', hw, ['x'], { x: values(shape, { std: 3, kinks: [-3, 3] }) }, 'float32');
  const lr = singleOp('LeakyRelu', [{ name: 'x', shape }], { alpha: float(0.1) });
  await check(t, 'LeakyRelu alpha 0.1', 'LeakyRelu', lr, ['x'], { x: values(shape, { kinks: [0] }) });
  const elu = singleOp('Elu', [{ name: 'x', shape }], { alpha: float(0.7) });
  await check(t, 'Elu alpha 0.7', 'Elu', elu, ['x'], { x: values(shape, { kinks: [0] }) }, 'float32');
  const eluNeg = singleOp('Elu', [{ name: 'x', shape }], { alpha: float(-0.5) });
  await check(
    t,
    'Elu alpha -0.5 (the output is positive on both sides)',
    'Elu',
    eluNeg,
    ['x'],
    { x: values(shape, { kinks: [0] }) },
    'float32',
  );
});

t.test('PRelu, Gelu (opset 20, exact and tanh), Softplus; exact GELU written with Erf', async (t) => {
  const x = [2, 3, 4, 4];
  const prelu = singleOp('PRelu', [
    { name: 'x', shape: x },
    { name: 'slope', shape: [3, 1, 1], init: [0.25, -0.5, 1.5] },
  ]);
  await check(t, 'PRelu with a per-channel slope', 'PRelu', prelu, ['x', 'slope'], { x: values(x, { kinks: [0] }) });
  // the exact form's backward uses Erf, which onnxruntime runs in float32 only
  for (const [approximate, want] of [
    ['none', 'float32'],
    ['tanh', 'float64'],
  ] as const) {
    const gelu = singleOp('Gelu', [{ name: 'x', shape: [4, 6] }], { approximate: { type: 'string', value: approximate } }, { opset: 20 });
    await check(t, `Gelu approximate=${approximate}`, 'Gelu', gelu, ['x'], { x: values([4, 6], { std: 2 }) }, want);
  }
  const softplus = singleOp('Softplus', [{ name: 'x', shape: [4, 6] }]);
  await check(t, 'Softplus', 'Softplus', softplus, ['x'], { x: values([4, 6], { std: 3 }) }, 'float32');
  const gelu = graphOf(
    { x: [4, 6] },
    [
      { op: 'Div', inputs: ['x', 'sqrt2'], out: 'u' },
      { op: 'Erf', inputs: ['u'], out: 'erf' },
      { op: 'Add', inputs: ['erf', 'one'], out: 'p' },
      { op: 'Mul', inputs: ['x', 'p'], out: 'xp' },
      { op: 'Mul', inputs: ['xp', 'half'], out: 'y' },
    ],
    [Tensor.fromFloat32('sqrt2', [], [Math.SQRT2]), Tensor.fromFloat32('one', [], [1]), Tensor.fromFloat32('half', [], [0.5])],
  );
  await check(t, 'exact GELU as 0.5 x (1 + erf(x / sqrt 2))', 'Erf', gelu, ['x'], { x: values([4, 6], { std: 2 }) }, 'float32');
});

t.test('Clip: bounds as inputs (opset 11+), one bound, attributes (opset 10), Relu6', async (t) => {
  const shape = [3, 8];
  const inputs = singleOp(
    'Clip',
    [
      { name: 'x', shape },
      { name: 'lo', shape: [], init: [-0.5] },
      { name: 'hi', shape: [], init: [0.8] },
    ],
    {},
    { opset: 13 },
  );
  await check(t, 'Clip(x, -0.5, 0.8), opset 13', 'Clip', inputs, ['x'], { x: values(shape, { kinks: [-0.5, 0.8] }) });
  const upper = singleOp(
    'Clip',
    [
      { name: 'x', shape },
      { name: '', shape: [] },
      { name: 'hi', shape: [], init: [0.3] },
    ],
    {},
    { opset: 11 },
  );
  // onnxruntime's Clip has float64 kernels from opset 12
  await check(t, 'Clip(x, , 0.3), opset 11', 'Clip', upper, ['x'], { x: values(shape, { kinks: [0.3] }) }, 'float32');
  const attrs = singleOp('Clip', [{ name: 'x', shape }], { min: float(-0.2), max: float(0.6) }, { opset: 10 });
  await check(t, 'Clip min/max attributes, opset 10', 'Clip', attrs, ['x'], { x: values(shape, { kinks: [-0.2, 0.6] }) }, 'float32');
  const relu6 = singleOp(
    'Clip',
    [
      { name: 'x', shape },
      { name: 'lo', shape: [], init: [0] },
      { name: 'hi', shape: [], init: [6] },
    ],
    {},
    { opset: 13 },
  );
  await check(t, 'Relu6 = Clip(x, 0, 6)', 'Clip', relu6, ['x'], { x: values(shape, { std: 4, kinks: [0, 6] }) });
});

t.test('Max and Min: two and three inputs with broadcasting; ties give the gradient once', async (t) => {
  for (const op of ['Max', 'Min']) {
    const two = singleOp(op, [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [4] },
    ]);
    await check(t, `${op}(a[2,3,4], b[4])`, op, two, ['a', 'b']);
    const three = singleOp(op, [
      { name: 'a', shape: [3, 4] },
      { name: 'b', shape: [3, 1] },
      { name: 'c', shape: [3, 4] },
    ]);
    await check(t, `${op} of three`, op, three, ['a', 'b', 'c']);
    // a constant between two trained inputs still takes its share from the third
    const mid = singleOp(op, [
      { name: 'a', shape: [3, 4] },
      { name: 'c', shape: [4], init: [0.5, -0.5, 0, 1] },
      { name: 'b', shape: [3, 4] },
    ]);
    await check(t, `${op}(a, constant, b)`, op, mid, ['a', 'b']);
    const lone = graphOf(
      { x: [3, 4] },
      [
        { op, inputs: ['x', 'c'], out: 'y' },
        { op: 'ReduceSum', inputs: ['y'], out: 'L', attrs: { keepdims: int(0) } },
      ],
      [Tensor.fromFloat32('c', [], [0])],
    );
    const ops = buildGradients(lone, { loss: 'L', wrt: ['x'] }).model.graph.nodes.map((n) => n.opType);
    t.notOk(
      ops.some((o) => o === 'And' || o === 'Or' || o === 'Not'),
      `${op}(x, constant): no tie bookkeeping (${ops.join(' ')})`,
    );
    // Max(x, x) = x: the first input takes dy, so the two paths into x sum to exactly dy
    const tie = graphOf({ x: [2, 5] }, [{ op, inputs: ['x', 'x'], out: 'y' }]);
    await check(t, `${op}(x, x)`, op, tie, ['x']);
    // before opset 11 Equal has no float kernel: the rule compares with Less / Greater instead
    for (const opset of [9, 10]) {
      const old = singleOp(
        op,
        [
          { name: 'a', shape: [2, 3, 4] },
          { name: 'b', shape: [4] },
        ],
        {},
        { opset },
      );
      await check(t, `${op}(a, b), opset ${opset}`, op, old, ['a', 'b']);
      const oldTie = graphOf({ x: [2, 5] }, [{ op, inputs: ['x', 'x'], out: 'y' }], [], opset);
      await check(t, `${op}(x, x), opset ${opset}`, op, oldTie, ['x']);
    }
  }
});

t.test('Softmax and LogSoftmax: opset-13 axis and the older 2-D coercion', async (t) => {
  for (const op of ['Softmax', 'LogSoftmax']) {
    const x = [2, 3, 4];
    await check(t, `${op} default axis (-1), opset 13`, op, singleOp(op, [{ name: 'x', shape: x }], {}, { opset: 13 }), ['x']);
    await check(t, `${op} axis 1, opset 13`, op, singleOp(op, [{ name: 'x', shape: x }], { axis: int(1) }, { opset: 13 }), ['x']);
    // before 13, axis 1 of [2,3,4] normalises over the flattened 3*4
    await check(t, `${op} axis 1, opset 11 (2-D coercion)`, op, singleOp(op, [{ name: 'x', shape: x }], { axis: int(1) }, { opset: 11 }), [
      'x',
    ]);
    await check(t, `${op} default axis (1), opset 11`, op, singleOp(op, [{ name: 'x', shape: x }], {}, { opset: 11 }), ['x']);
  }
});

t.test('LayerNormalization (opset 17): gradients for X, Scale and B', async (t) => {
  const last = singleOp('LayerNormalization', [
    { name: 'x', shape: [2, 3, 4] },
    { name: 'scale', shape: [4], init: [0.5, 1, 1.5, -0.7] },
    { name: 'b', shape: [4], init: [0.1, 0, -0.2, 0.3] },
  ]);
  await check(t, 'LayerNormalization axis -1', 'LayerNormalization', last, ['x', 'scale', 'b']);
  const two = singleOp(
    'LayerNormalization',
    [
      { name: 'x', shape: [2, 3, 4] },
      { name: 'scale', shape: [3, 4], init: Array.from({ length: 12 }, (_, i) => 0.5 + 0.1 * i) },
    ],
    { axis: int(1), epsilon: float(1e-3) },
  );
  await check(t, 'LayerNormalization axis 1, epsilon 1e-3, no bias', 'LayerNormalization', two, ['x', 'scale']);
});

t.test('LayerNormalization trained for its bias only recomputes no statistics', async (t) => {
  const m = graphOf(
    { x: [2, 4] },
    [
      { op: 'LayerNormalization', inputs: ['x', 'scale', 'b'], out: 'y' },
      { op: 'ReduceSum', inputs: ['y'], out: 'L', attrs: { keepdims: int(0) } },
    ],
    [Tensor.fromFloat32('scale', [4], [1, 2, 3, 4]), Tensor.fromFloat32('b', [4], [0, 0, 0, 0])],
  );
  const nodes = buildGradients(m, { loss: 'L', wrt: ['b'] }).model.graph.nodes;
  t.notOk(
    nodes.some((n) => n.opType === 'Sqrt'),
    'no Sqrt in the backward',
  );
});

t.test('InstanceNormalization: gradients for input, scale and B', async (t) => {
  const m = singleOp(
    'InstanceNormalization',
    [
      { name: 'x', shape: [2, 3, 4, 5] },
      { name: 'scale', shape: [3], init: [0.5, -1.2, 2] },
      { name: 'b', shape: [3], init: [0.1, 0, -0.3] },
    ],
    { epsilon: float(1e-3) },
  );
  await check(t, 'InstanceNormalization [2,3,4,5]', 'InstanceNormalization', m, ['x', 'scale', 'b'], {}, 'float32');
});

t.test('LayerNormalization: a gradient reaching its Mean output is refused', async (t) => {
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [2, 4] } });
  g.setInitializer(Tensor.fromFloat32('scale', [4], [1, 1, 1, 1]));
  g.addNode(new Node({ opType: 'LayerNormalization', inputs: ['x', 'scale'], outputs: ['y', 'mean'] }));
  g.addNode(new Node({ opType: 'ReduceSum', inputs: ['mean'], outputs: ['L'], attrs: { keepdims: int(0) } }));
  // the shape rules type only output 0; the recorded type stands in for onnx's value_info
  g.valueTypes.set('mean', { dtype: 'float32', shape: [2, 1] });
  g.outputs = [{ name: 'L', type: null }];
  t.throws(() => buildGradients(modelOf(g, { producer: 't', opset: 17 }), { loss: 'L', wrt: ['x'] }), /Mean or InvStdDev output/);
});

t.test('ReduceMax: axes as attribute and input, all axes; ties share the gradient', async (t) => {
  const attr = singleOp('ReduceMax', [{ name: 'x', shape: [2, 3, 5] }], { axes: ints([1]), keepdims: int(0) }, { opset: 13 });
  await check(t, 'ReduceMax axes [1] keepdims 0, opset 13', 'ReduceMax', attr, ['x']);
  const input = singleOp(
    'ReduceMax',
    [
      { name: 'x', shape: [2, 3, 5] },
      { name: 'axes', shape: [2], int64: [0, -1] },
    ],
    {},
    { opset: 18 },
  );
  await check(t, 'ReduceMax axes input [0,-1], opset 18', 'ReduceMax', input, ['x']);
  const old = singleOp('ReduceMax', [{ name: 'x', shape: [2, 3, 5] }], { axes: ints([2]) }, { opset: 10 });
  await check(t, 'ReduceMax axes [2], opset 10', 'ReduceMax', old, ['x']);
  const noop = singleOp(
    'ReduceMax',
    [
      { name: 'x', shape: [2, 3] },
      { name: 'axes', shape: [0], int64: [] },
    ],
    { noop_with_empty_axes: int(1) },
    { opset: 18 },
  );
  await check(t, 'ReduceMax with no axes and noop_with_empty_axes: the identity', 'ReduceMax', noop, ['x']);
  await check(t, 'ReduceMax over all axes', 'ReduceMax', singleOp('ReduceMax', [{ name: 'x', shape: [3, 4] }], {}, { opset: 13 }), ['x']);
  // ReduceMax(Relu(x)) over an all-negative row: every element ties at 0 and gets an equal share
  const m = graphOf(
    { x: [2, 4] },
    [
      { op: 'Relu', inputs: ['x'], out: 'r' },
      { op: 'ReduceMax', inputs: ['r'], out: 'm', attrs: { axes: ints([1]), keepdims: int(0) } },
      { op: 'ReduceSum', inputs: ['m'], out: 'L', attrs: { keepdims: int(0) } },
    ],
    [],
    13,
  );
  const built = buildGradients(m, { loss: 'L', wrt: ['x'] });
  const s = await openSession(built.model, { threads: 1 });
  const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([-1, -2, -3, -4, 1, 3, 2, -1]), [2, 4]) });
  const dr = built.model.graph.nodes.find((n) => n.opType === 'ReduceMax')!;
  t.ok(dr, 'the forward ReduceMax is kept');
  // through Relu the ties at 0 get nothing (x < 0); the second row's max (3) gets all of it
  t.same(Array.from(out[built.grads.get('x')!]!.data as Float32Array), [0, 0, 0, 0, 0, 1, 0, 0]);
  const shares = graphOf(
    { x: [1, 4] },
    [
      { op: 'Max', inputs: ['x', 'zero'], out: 'r' },
      { op: 'ReduceMax', inputs: ['r'], out: 'm', attrs: { axes: ints([1]), keepdims: int(0) } },
      { op: 'ReduceSum', inputs: ['m'], out: 'L', attrs: { keepdims: int(0) } },
    ],
    [Tensor.fromFloat32('zero', [], [0])],
    13,
  );
  const b2 = buildGradients(shares, { loss: 'L', wrt: ['x'] });
  const s2 = await openSession(b2.model, { threads: 1 });
  const o2 = await s2.run({ x: new ort.Tensor('float32', Float32Array.from([-1, 0, -3, 0]), [1, 4]) });
  // Max(x, 0) ties with x where x = 0 (x takes it, being first); ReduceMax splits 1 over four zeros
  t.same(Array.from(o2[b2.grads.get('x')!]!.data as Float32Array), [0, 0.25, 0, 0.25]);
  await s.release();
  await s2.release();
});

t.test('Where, Dropout (inference) and Cast between float types pass the gradient on', async (t) => {
  const where = graphOf(
    { a: [2, 3, 4], b: [4] },
    [
      { op: 'Greater', inputs: ['c', 'zero'], out: 'cond' },
      { op: 'Where', inputs: ['cond', 'a', 'b'], out: 'y' },
    ],
    [Tensor.fromFloat32('c', [3, 4], values([3, 4])), Tensor.fromFloat32('zero', [], [0])],
  );
  await check(t, 'Where(constant cond[3,4], a[2,3,4], b[4])', 'Where', where, ['a', 'b']);
  const drop = singleOp(
    'Dropout',
    [
      { name: 'x', shape: [3, 4] },
      { name: 'ratio', shape: [], init: [0.3] },
    ],
    {},
    { opset: 13 },
  );
  await check(t, 'Dropout (inference), opset 13', 'Dropout', drop, ['x']);
  await check(
    t,
    'Dropout, opset 11',
    'Dropout',
    singleOp('Dropout', [{ name: 'x', shape: [3, 4] }], { ratio: float(0.2) }, { opset: 11 }),
    ['x'],
  );
  const cast = graphOf({ x: [3, 4] }, [
    { op: 'Cast', inputs: ['x'], out: 'd', attrs: { to: int(11) } },
    { op: 'Mul', inputs: ['d', 'd'], out: 'd2' },
    { op: 'Cast', inputs: ['d2'], out: 'y', attrs: { to: int(1) } },
  ]);
  await check(t, 'Cast float -> double -> float around a Mul', 'Cast', cast, ['x'], {}, 'float32');

  const toInt = graphOf({ x: [3, 4] }, [
    { op: 'Cast', inputs: ['x'], out: 'i', attrs: { to: int(7) } },
    { op: 'Cast', inputs: ['i'], out: 'f', attrs: { to: int(1) } },
    { op: 'ReduceSum', inputs: ['f'], out: 'L', attrs: { keepdims: int(0) } },
  ]);
  t.throws(() => buildGradients(toInt, { loss: 'L', wrt: ['x'] }), /Cast from int64 to float32 has no gradient/);
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [3] } }, { name: 'train', type: { dtype: 'bool', shape: [] } });
  g.addNode(new Node({ opType: 'Dropout', inputs: ['x', '', 'train'], outputs: ['y'] }));
  g.addNode(new Node({ opType: 'ReduceSum', inputs: ['y'], outputs: ['L'], attrs: { keepdims: int(0) } }));
  g.outputs = [{ name: 'L', type: null }];
  t.throws(() => buildGradients(modelOf(g, { producer: 't', opset: 13 }), { loss: 'L', wrt: ['x'] }), /only Dropout in inference form/);
});

t.test('Round: dy passes straight through; a fake quantizer gets LSQ gradients', async (t) => {
  const r = values([12]);
  const ste = graphOf(
    { x: [12] },
    [
      { op: 'Round', inputs: ['x'], out: 'q' },
      { op: 'Mul', inputs: ['q', 'r'], out: 'p' },
      { op: 'ReduceSum', inputs: ['p'], out: 'L', attrs: { keepdims: int(0) } },
    ],
    [Tensor.fromFloat32('r', [12], r)],
  );
  const built = buildGradients(ste, { loss: 'L', wrt: ['x'] });
  const s = await openSession(built.model, { threads: 1 });
  const out = await s.run({ x: new ort.Tensor('float32', values([12], { std: 3 }), [12]) });
  t.same(Array.from(out[built.grads.get('x')!]!.data as Float32Array), Array.from(r), 'dL/dx = dL/dRound');
  await s.release();

  // (Clip(Round(x / s) + z, qmin, qmax) - z) * s with s = 0.1, z = 3, [qmin, qmax] = [0, 15]:
  // x / s + z rounds into the range for x in [-0.35, 1.25)
  const sv = 0.1,
    z = 3,
    qmin = 0,
    qmax = 15;
  const fq = graphOf(
    { x: [16] },
    [
      { op: 'Div', inputs: ['x', 's'], out: 'u' },
      { op: 'Round', inputs: ['u'], out: 'ru' },
      { op: 'Add', inputs: ['ru', 'z'], out: 'q' },
      { op: 'Clip', inputs: ['q', 'qmin', 'qmax'], out: 'c' },
      { op: 'Sub', inputs: ['c', 'z'], out: 'd' },
      { op: 'Mul', inputs: ['d', 's'], out: 'y' },
      { op: 'Mul', inputs: ['y', 'r'], out: 'p' },
      { op: 'ReduceSum', inputs: ['p'], out: 'L', attrs: { keepdims: int(0) } },
    ],
    [
      Tensor.fromFloat32('s', [], [sv]),
      Tensor.fromFloat32('z', [], [z]),
      Tensor.fromFloat32('qmin', [], [qmin]),
      Tensor.fromFloat32('qmax', [], [qmax]),
      Tensor.fromFloat32('r', [16], values([16])),
    ],
  );
  const rr = fq.graph.initializer('r')!.toFloat32();
  // inside, on both bounds (rounded onto qmin / qmax: still inside), and outside on both sides
  const x = Float32Array.from([-1, -0.5, -0.33, -0.3, -0.12, 0, 0.04, 0.27, 0.5, 0.77, 1.0, 1.18, 1.21, 1.3, 2, 5]);
  const b = buildGradients(fq, { loss: 'L', wrt: ['x', 's'] });
  const s2 = await openSession(b.model, { threads: 1 });
  const o = await s2.run({ x: new ort.Tensor('float32', x, [16]), s: new ort.Tensor('float32', Float32Array.from([sv]), []) });
  const dx = o[b.grads.get('x')!]!.data as Float32Array;
  const ds = Number(o[b.grads.get('s')!]!.data[0]);
  let wantS = 0;
  x.forEach((xi, i) => {
    const u = Math.fround(xi / Math.fround(sv));
    const q = Math.round(u) + z;
    const inside = q >= qmin && q <= qmax;
    // (dy * s) / s: equal to dy up to float32 rounding
    t.ok(Math.abs(dx[i]! - (inside ? rr[i]! : 0)) < 1e-6, `x = ${xi}: dL/dx ${dx[i]} is ${inside ? 'dy (inside)' : '0 (clipped)'}`);
    // LSQ: round(x/s) - x/s inside, qmin - z or qmax - z outside
    wantS += rr[i]! * (inside ? Math.round(u) - u : (q < qmin ? qmin : qmax) - z);
  });
  t.ok(Math.abs(ds - wantS) < 1e-4 * Math.max(1, Math.abs(wantS)), `dL/ds ${ds} = LSQ's ${wantS}`);
  await s2.release();
  checked.add('Round');
});

t.test('a per-channel symmetric int8 fake quantizer: dx masked, ds per channel as LSQ', async (t) => {
  // weights [3, 8] with one scale per output channel ([3, 1]), z = 0, [qmin, qmax] = [-127, 127]
  const scales = [0.01, 0.02, 0.005];
  const w = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i * 2.3) * (i % 3 === 0 ? 2 : 1.2));
  const r = values([3, 8]);
  const m = graphOf(
    { w: [3, 8] },
    [
      { op: 'Div', inputs: ['w', 's'], out: 'u' },
      { op: 'Round', inputs: ['u'], out: 'q' },
      { op: 'Clip', inputs: ['q', 'qmin', 'qmax'], out: 'c' },
      { op: 'Mul', inputs: ['c', 's'], out: 'y' },
      { op: 'Mul', inputs: ['y', 'r'], out: 'p' },
      { op: 'ReduceSum', inputs: ['p'], out: 'L', attrs: { keepdims: int(0) } },
    ],
    [
      Tensor.fromFloat32('s', [3, 1], scales),
      Tensor.fromFloat32('qmin', [], [-127]),
      Tensor.fromFloat32('qmax', [], [127]),
      Tensor.fromFloat32('r', [3, 8], r),
    ],
  );
  const b = buildGradients(m, { loss: 'L', wrt: ['w', 's'] });
  const sess = await openSession(b.model, { threads: 1 });
  const o = await sess.run({
    w: new ort.Tensor('float32', w, [3, 8]),
    s: new ort.Tensor('float32', Float32Array.from(scales), [3, 1]),
  });
  const dw = o[b.grads.get('w')!]!.data as Float32Array;
  const ds = o[b.grads.get('s')!]!.data as Float32Array;
  let clipped = 0;
  for (let c = 0; c < 3; c++) {
    let want = 0;
    for (let k = 0; k < 8; k++) {
      const i = c * 8 + k;
      const u = Math.fround(w[i]! / Math.fround(scales[c]!));
      const q = Math.round(u);
      const inside = q >= -127 && q <= 127;
      if (!inside) clipped++;
      t.ok(Math.abs(dw[i]! - (inside ? r[i]! : 0)) < 1e-5 * Math.max(1, Math.abs(r[i]!)), `w[${c},${k}] ${inside ? 'inside' : 'clipped'}`);
      want += r[i]! * (inside ? q - u : Math.sign(q) * 127);
    }
    t.ok(Math.abs(ds[c]! - want) < 1e-3 * Math.max(1, Math.abs(want)), `channel ${c}: dL/ds ${ds[c]} = LSQ's ${want}`);
  }
  t.ok(clipped > 0 && clipped < 24, `both clipped and unclipped weights (${clipped} clipped)`);
  await sess.release();
});

t.test('Add, Sub, Mul, Sum, Mean with broadcasting; Neg, Relu, ReduceSum, ReduceMean', async (t) => {
  for (const op of ['Add', 'Sub', 'Mul', 'Sum', 'Mean']) {
    const m = singleOp(op, [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [3, 1] },
    ]);
    // onnxruntime's Mean is float32 only
    await check(t, `${op} with broadcasting`, op, m, ['a', 'b'], {}, op === 'Mean' ? 'float32' : 'float64');
  }
  await check(t, 'Neg', 'Neg', singleOp('Neg', [{ name: 'x', shape: [3, 4] }]), ['x']);
  await check(t, 'Relu', 'Relu', singleOp('Relu', [{ name: 'x', shape: [3, 4] }]), ['x'], { x: values([3, 4], { kinks: [0] }) });
  for (const op of ['ReduceSum', 'ReduceMean']) {
    await check(t, `${op}, opset 11`, op, singleOp(op, [{ name: 'x', shape: [2, 3, 5] }], { axes: ints([2]) }, { opset: 11 }), ['x']);
  }
});

t.test('rules whose derivative is a function of the output do not read the input', async (t) => {
  // a backward node that reads x keeps x alive until the backward pass reaches it
  const lean: [string, Record<string, AttrValue>][] = [
    ['Sigmoid', {}],
    ['Tanh', {}],
    ['Exp', {}],
    ['Sqrt', {}],
    ['Reciprocal', {}],
    ['Relu', {}],
    ['Elu', {}],
    ['HardSigmoid', {}],
    ['LeakyRelu', { alpha: float(0.1) }],
    ['Softmax', {}],
    ['LogSoftmax', {}],
  ];
  for (const [op, attrs] of lean) {
    const m = graphOf({ x: [3, 4] }, [
      { op, inputs: ['x'], out: 'y', attrs },
      { op: 'ReduceSum', inputs: ['y'], out: 'L', attrs: { keepdims: int(0) } },
    ]);
    const built = buildGradients(m, { loss: 'L', wrt: ['x'] });
    const readers = built.model.graph.nodes.filter((n) => n.inputs.includes('x')).map((n) => n.opType);
    t.same(readers, [op], `${op}: only the forward node reads x`);
  }
});

t.test('a tiny transformer MLP block (LayerNorm, MatMul, Gelu, residual, Softmax) in float64', async (t) => {
  const next = rng(7);
  const w = (name: string, dims: number[], std: number): Tensor => Tensor.fromFloat32(name, dims, randn(next, dims[0]! * dims[1]!, std));
  const m = graphOf(
    { x: [2, 5, 8] },
    [
      { op: 'LayerNormalization', inputs: ['x', 'scale', 'bias'], out: 'n' },
      { op: 'MatMul', inputs: ['n', 'w1'], out: 'h' },
      { op: 'Gelu', inputs: ['h'], out: 'g', attrs: { approximate: { type: 'string', value: 'tanh' } } },
      { op: 'MatMul', inputs: ['g', 'w2'], out: 'o' },
      { op: 'Add', inputs: ['o', 'x'], out: 'r' },
      { op: 'Softmax', inputs: ['r'], out: 'y' },
    ],
    [
      Tensor.fromFloat32('scale', [8], randn(next, 8, 0.5)),
      Tensor.fromFloat32('bias', [8], randn(next, 8, 0.1)),
      w('w1', [8, 16], 0.35),
      w('w2', [16, 8], 0.25),
    ],
    20,
  );
  const r = await gradCheck(m, { wrt: ['x', 'scale', 'bias', 'w1', 'w2'] });
  t.equal(r.dtype, 'float64');
  t.ok(r.worst < F64_BOUND, `MLP block: ${report(r)}`);
  t.same(r.zero, []);
});

t.test('an opset-9 block as PP-OCRv4 rec exports it: LayerNorm decomposed, Softmax, Paddle hard-swish', async (t) => {
  // rec's encoder at opset 9: LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div, Softmax over the last of 3
  // axes (the 2-D coercion), and hard-swish as x * Clip(x + 3, 0, 6) / 6 with Clip's attributes
  const next = rng(11);
  const m = graphOf(
    { x: [2, 5, 8] },
    [
      { op: 'ReduceMean', inputs: ['x'], out: 'mu', attrs: { axes: ints([-1]) } },
      { op: 'Sub', inputs: ['x', 'mu'], out: 'd' },
      { op: 'Pow', inputs: ['d', 'two'], out: 'd2' },
      { op: 'ReduceMean', inputs: ['d2'], out: 'var', attrs: { axes: ints([-1]) } },
      { op: 'Add', inputs: ['var', 'eps'], out: 've' },
      { op: 'Sqrt', inputs: ['ve'], out: 'sd' },
      { op: 'Div', inputs: ['d', 'sd'], out: 'xh' },
      { op: 'Mul', inputs: ['xh', 'scale'], out: 'xs' },
      { op: 'Add', inputs: ['xs', 'bias'], out: 'ln' },
      { op: 'MatMul', inputs: ['ln', 'w'], out: 'h' },
      { op: 'Softmax', inputs: ['h'], out: 'p', attrs: { axis: int(2) } },
      { op: 'Add', inputs: ['h', 'three'], out: 'h3' },
      { op: 'Clip', inputs: ['h3'], out: 'c', attrs: { min: float(0), max: float(6) } },
      { op: 'Mul', inputs: ['h', 'c'], out: 'hc' },
      { op: 'Div', inputs: ['hc', 'six'], out: 'hs' },
      { op: 'Mul', inputs: ['hs', 'p'], out: 'y' },
    ],
    [
      Tensor.fromFloat32('two', [], [2]),
      Tensor.fromFloat32('eps', [], [1e-5]),
      Tensor.fromFloat32('three', [], [3]),
      Tensor.fromFloat32('six', [], [6]),
      Tensor.fromFloat32('scale', [8], randn(next, 8, 0.5)),
      Tensor.fromFloat32('bias', [8], randn(next, 8, 0.1)),
      Tensor.fromFloat32('w', [8, 6], randn(next, 48, 1.5)),
    ],
    9,
  );
  // Clip before opset 12 is float32 only. Each weight moves ten of h's values, and a 1e-2 step
  // carried some across Clip's kinks at h = -3 and 3 (error 4e-2, shrinking with the step: 6e-3
  // at 3e-3, 7e-4 at 1e-3), so the step here is 1e-3
  const r = await gradCheck(m, { wrt: ['x', 'scale', 'bias', 'w'], samples: 16, eps: 1e-3 });
  t.equal(r.dtype, 'float32');
  t.ok(r.worst < F32_BOUND, `rec-style block: ${report(r)}`);
  t.same(r.zero, []);
});

t.test('every rule in the elementwise and activation tables has a passing check', async (t) => {
  for (const [family, table] of [
    ['elementwise', ELEMENTWISE_GRADS],
    ['activations', ACTIVATION_GRADS],
  ] as const) {
    const missing = Object.keys(table).filter((op) => !checked.has(op));
    t.same(missing, [], `${family}: ${Object.keys(table).length} rules, all checked`);
  }
});
