// The shape/layout, pool, Resize and Pad gradient rules against central finite differences in
// onnxruntime, at the opsets where the ops' parameters moved from attributes to inputs (11, 13,
// 17). Float64 where onnxruntime has the op's float64 kernel (bound 1e-6: the rules only move and
// sum values); else float32 with a 1e-2 step, bound 2e-3 (the Conv tests' float32 bound).
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { gradCheck, singleOp } from '../../devkit/gradcheck.js';
import { ROOT } from '../../devkit/paths.js';
import { Graph } from '../../src/ir/graph.js';
import { modelOf } from '../../src/ir/model.js';
import { Node } from '../../src/ir/node.js';
import { loadModel } from '../../src/onnx/index.js';
import { sliceIndices } from '../../src/passes/train/grad/rules/layout.js';
import { foldShapesPass } from '../../src/passes/cleanup/fold-shapes.js';
import { normalize } from '../../src/passes/normalize.js';
import { runPass } from '../../src/passes/pass.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { AttrValue } from '../../src/ir/types.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';
import { openSession } from '../../src/runtime/runner.js';
import * as ort from 'onnxruntime-node';

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const int = (value: number): AttrValue => ({ type: 'int', value });
const str = (value: string): AttrValue => ({ type: 'string', value });

type Inputs = Parameters<typeof singleOp>[1];
type Attrs = Parameters<typeof singleOp>[2];

/** Check one op's gradient w.r.t. 'x' (and any other listed); returns the check's summary line. */
async function check(
  t: Test,
  name: string,
  op: string,
  inputs: Inputs,
  attrs: Attrs = {},
  o: { opset?: number; outputs?: number; wrt?: string[]; dtype?: 'float32' | 'float64' } = {},
): Promise<void> {
  const m = singleOp(op, inputs, attrs, { opset: o.opset ?? 17, outputs: o.outputs });
  const r = await gradCheck(m, { wrt: o.wrt ?? ['x'], samples: 32, ...(o.dtype ? { dtype: o.dtype } : {}) });
  const bound = r.dtype === 'float64' ? 1e-6 : 2e-3;
  t.ok(r.worst < bound, `${name} (opset ${o.opset ?? 17}, ${r.dtype}): worst ${r.worst.toExponential(2)}`);
  t.same(r.zero, [], `${name}: no all-zero gradient`);
}

t.test('views: Reshape (0 and -1), Flatten, Squeeze, Unsqueeze at opsets 11/13/17', async (t) => {
  for (const opset of [11, 13, 17]) {
    await check(
      t,
      'Reshape [0,-1,2]',
      'Reshape',
      [
        { name: 'x', shape: [2, 3, 4] },
        { name: 's', shape: [3], int64: [0, -1, 2] },
      ],
      {},
      { opset },
    );
    await check(t, 'Flatten axis 2', 'Flatten', [{ name: 'x', shape: [2, 3, 4, 2] }], { axis: int(2) }, { opset });
    const axesIn = opset >= 13;
    await check(
      t,
      'Squeeze axes [1,-1]',
      'Squeeze',
      [{ name: 'x', shape: [2, 1, 3, 1] }, ...(axesIn ? [{ name: 'a', shape: [2], int64: [1, -1] }] : [])],
      axesIn ? {} : { axes: ints([1, -1]) },
      { opset },
    );
    await check(
      t,
      'Unsqueeze axes [0,3]',
      'Unsqueeze',
      [{ name: 'x', shape: [2, 3] }, ...(axesIn ? [{ name: 'a', shape: [2], int64: [0, 3] }] : [])],
      axesIn ? {} : { axes: ints([0, 3]) },
      { opset },
    );
  }
});

t.test('Transpose (inverse perm), Expand (unbroadcast) and Tile (copies summed)', async (t) => {
  await check(t, 'Tile [2,1,3]', 'Tile', [
    { name: 'x', shape: [2, 3, 2] },
    { name: 'r', shape: [3], int64: [2, 1, 3] },
  ]);
  await check(t, 'Transpose [2,0,3,1]', 'Transpose', [{ name: 'x', shape: [2, 3, 4, 5] }], { perm: ints([2, 0, 3, 1]) });
  await check(t, 'Transpose default (reverse)', 'Transpose', [{ name: 'x', shape: [2, 3, 4] }]);
  await check(t, 'Expand [3,1] -> [2,3,4]', 'Expand', [
    { name: 'x', shape: [3, 1] },
    { name: 's', shape: [3], int64: [2, 3, 4] },
  ]);
});

t.test('Concat and Split, split sizes as attribute (11), input (13) and equal (17)', async (t) => {
  for (const opset of [11, 13, 17]) {
    await check(
      t,
      'Concat axis -2 of three',
      'Concat',
      [
        { name: 'x', shape: [2, 3, 4] },
        { name: 'b', shape: [2, 1, 4] },
        { name: 'c', shape: [2, 2, 4] },
      ],
      { axis: int(-2) },
      { opset, wrt: ['x', 'c'] },
    );
  }
  await check(
    t,
    'Split attr [1,3,2]',
    'Split',
    [{ name: 'x', shape: [2, 6, 3] }],
    { axis: int(1), split: ints([1, 3, 2]) },
    { opset: 11, outputs: 3 },
  );
  await check(
    t,
    'Split input [4,2]',
    'Split',
    [
      { name: 'x', shape: [2, 6] },
      { name: 's', shape: [2], int64: [4, 2] },
    ],
    { axis: int(-1) },
    { opset: 13, outputs: 2 },
  );
  await check(t, 'Split equal in 3', 'Split', [{ name: 'x', shape: [6, 2] }], {}, { opset: 17, outputs: 3 });
});

t.test('a Split output nobody reads gets zeros, not a missing gradient', async (t) => {
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [2, 6] } });
  g.addNode(new Node({ opType: 'Split', inputs: ['x'], outputs: ['a', 'b'], attrs: { axis: int(1) } }));
  g.outputs = [{ name: 'b', type: null }];
  const r = await gradCheck(modelOf(g, { producer: 't', opset: 17 }), { wrt: ['x'], samples: 12 });
  t.ok(r.worst < 1e-6, `one unread output: ${r.worst.toExponential(2)}`);
});

t.test('Slice: negative starts, clamped ends, steps 2 and -1/-2, several axes', async (t) => {
  const cases: [string, number[], number[], number[], number[] | undefined, number[] | undefined][] = [
    ['step 1, two axes', [4, 7], [1, -5], [3, 100], [0, 1], undefined],
    ['step 2', [9, 3], [1], [8], [0], [2]],
    ['step 3, end past the last taken', [2, 10], [0], [10], [1], [3]],
    ['step -1 (reverse)', [6, 2], [-1], [-100], [0], [-1]],
    ['step -2 from the middle', [3, 9], [7], [0], [1], [-2]],
  ];
  for (const opset of [11, 13, 17]) {
    for (const [name, shape, starts, ends, axes, steps] of cases) {
      const inputs: Inputs[number][] = [
        { name: 'x', shape },
        { name: 's', shape: [starts.length], int64: starts },
        { name: 'e', shape: [ends.length], int64: ends },
      ];
      if (axes) inputs.push({ name: 'a', shape: [axes.length], int64: axes });
      if (steps) inputs.push({ name: 'p', shape: [steps.length], int64: steps });
      await check(t, `Slice ${name}`, 'Slice', inputs, {}, { opset });
    }
  }
});

t.test('Slice (opset 9) and Pad (opset 10) with their parameters as attributes', async (t) => {
  await check(
    t,
    'Slice attrs',
    'Slice',
    [{ name: 'x', shape: [4, 7] }],
    { starts: ints([1, -5]), ends: ints([3, 100]), axes: ints([0, 1]) },
    { opset: 9 },
  );
  await check(
    t,
    'Pad attrs, reflect',
    'Pad',
    [{ name: 'x', shape: [1, 2, 5, 4] }],
    { pads: ints([0, 0, 2, 1, 0, 0, 3, 2]), mode: str('reflect') },
    { opset: 10 },
  );
  await check(t, 'Pad attrs, constant', 'Pad', [{ name: 'x', shape: [2, 3] }], { pads: ints([1, 0, 0, 2]) }, { opset: 10 });
});

t.test('Pad: constant (positive and negative pads), reflect, edge', async (t) => {
  for (const opset of [11, 13, 17]) {
    await check(
      t,
      'constant',
      'Pad',
      [
        { name: 'x', shape: [2, 3, 4] },
        { name: 'p', shape: [6], int64: [0, 1, 2, 1, 0, 3] },
      ],
      {},
      { opset },
    );
    await check(
      t,
      'constant, cropping',
      'Pad',
      [
        { name: 'x', shape: [2, 5, 4] },
        { name: 'p', shape: [6], int64: [0, -1, 2, 1, -2, 0] },
      ],
      {},
      { opset },
    );
    for (const mode of ['reflect', 'edge']) {
      await check(
        t,
        mode,
        'Pad',
        [
          { name: 'x', shape: [1, 2, 5, 4] },
          { name: 'p', shape: [8], int64: [0, 0, 2, 1, 0, 0, 3, 2] },
        ],
        { mode: str(mode) },
        { opset },
      );
    }
  }
});

t.test('Gather with constant indices (repeats sum, negative indices, 2-D indices)', async (t) => {
  await check(t, 'axis 0', 'Gather', [
    { name: 'x', shape: [5, 3] },
    { name: 'i', shape: [4], int64: [0, 2, 2, -1] },
  ]);
  await check(
    t,
    'axis 1, 2-D indices',
    'Gather',
    [
      { name: 'x', shape: [2, 4, 3] },
      { name: 'i', shape: [2, 2], int64: [3, 0, 3, 1] },
    ],
    { axis: int(1) },
  );
  await check(
    t,
    'last axis, scalar index',
    'Gather',
    [
      { name: 'x', shape: [2, 3, 4] },
      { name: 'i', shape: [], int64: [2] },
    ],
    { axis: int(-1) },
  );
});

t.test('Gather with indices computed at run time (an embedding lookup): in-graph one-hot', async (t) => {
  // indices from a runtime input z: floor(clip(2z, -9, 8.9)) covers every row of 9, negatives too
  for (const [name, xs, axis] of [
    ['axis 0 (embedding table)', [9, 4], 0],
    ['last axis', [3, 9], 1],
    ['middle axis', [2, 9, 3], 1],
  ] as [string, number[], number][]) {
    const g = new Graph();
    g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: xs } });
    g.inputs.push({ name: 'z', type: { dtype: 'float32', shape: [2, 5] } });
    g.setInitializer(Tensor.fromFloat32('two', [], [2]));
    g.setInitializer(Tensor.fromFloat32('lo', [], [-9]));
    g.setInitializer(Tensor.fromFloat32('hi', [], [8.9]));
    g.addNode(new Node({ opType: 'Mul', inputs: ['z', 'two'], outputs: ['z2'] }));
    g.addNode(new Node({ opType: 'Clip', inputs: ['z2', 'lo', 'hi'], outputs: ['zc'] }));
    g.addNode(new Node({ opType: 'Floor', inputs: ['zc'], outputs: ['zf'] }));
    g.addNode(new Node({ opType: 'Cast', inputs: ['zf'], outputs: ['i'], attrs: { to: int(7) } }));
    g.addNode(new Node({ opType: 'Gather', inputs: ['x', 'i'], outputs: ['y'], attrs: { axis: int(axis) } }));
    g.outputs = [{ name: 'y', type: null }];
    const r = await gradCheck(modelOf(g, { producer: 't', opset: 13 }), { wrt: ['x'], samples: 40 });
    t.ok(r.worst < 1e-6, `${name} (${r.dtype}): ${r.worst.toExponential(2)}`);
    t.same(r.zero, [], `${name}: no all-zero gradient`);
  }
});

t.test('DepthToSpace (DCR, CRD) and SpaceToDepth', async (t) => {
  await check(t, 'DepthToSpace DCR', 'DepthToSpace', [{ name: 'x', shape: [2, 8, 2, 3] }], { blocksize: int(2) });
  await check(t, 'DepthToSpace CRD', 'DepthToSpace', [{ name: 'x', shape: [1, 8, 3, 2] }], { blocksize: int(2), mode: str('CRD') });
  await check(t, 'SpaceToDepth', 'SpaceToDepth', [{ name: 'x', shape: [2, 2, 4, 6] }], { blocksize: int(2) });
});

t.test('global pools', async (t) => {
  await check(t, 'GlobalAveragePool', 'GlobalAveragePool', [{ name: 'x', shape: [2, 3, 4, 5] }]);
  await check(t, 'GlobalMaxPool', 'GlobalMaxPool', [{ name: 'x', shape: [2, 3, 4, 5] }]);
});

t.test('AveragePool: pads with count_include_pad both ways, strides, ceil_mode, dilations (opset 19), 1-D', async (t) => {
  const cases: [string, number[], Attrs, number?][] = [
    ['2x2 s2', [1, 3, 6, 6], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }],
    ['3x3 s1 p1 exclude pad', [2, 2, 5, 5], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }],
    [
      '3x3 s2 p1 include pad',
      [1, 2, 7, 6],
      { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), count_include_pad: int(1) },
    ],
    [
      '3x2 s2 asymmetric pads, ceil',
      [1, 2, 7, 7],
      { kernel_shape: ints([3, 2]), strides: ints([2, 2]), pads: ints([0, 1, 1, 0]), ceil_mode: int(1) },
    ],
    [
      '3x3 s2 ceil include pad',
      [1, 1, 6, 6],
      { kernel_shape: ints([3, 3]), strides: ints([2, 2]), ceil_mode: int(1), count_include_pad: int(1) },
    ],
    ['SAME_UPPER 3x3 s2', [1, 2, 7, 7], { kernel_shape: ints([3, 3]), strides: ints([2, 2]), auto_pad: str('SAME_UPPER') }],
    ['1-D k3 s2', [2, 3, 9], { kernel_shape: ints([3]), strides: ints([2]) }],
    ['2x2 s2 on odd sizes (rows no window reads)', [1, 2, 7, 5], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }],
    ['3x3 dilation 2 p2 exclude pad', [1, 2, 9, 8], { kernel_shape: ints([3, 3]), dilations: ints([2, 2]), pads: ints([2, 2, 2, 2]) }, 19],
    [
      '3x2 dilation 2 s2 p1 include pad',
      [1, 2, 9, 8],
      { kernel_shape: ints([3, 2]), dilations: ints([2, 2]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), count_include_pad: int(1) },
      19,
    ],
  ];
  for (const [name, shape, attrs, opset] of cases)
    await check(t, `AveragePool ${name}`, 'AveragePool', [{ name: 'x', shape }], attrs, { opset });
});

t.test('MaxPool: disjoint and overlapping windows, with and without the Indices output', async (t) => {
  await check(
    t,
    'MaxPool 2x2 s2',
    'MaxPool',
    [{ name: 'x', shape: [2, 3, 6, 6] }],
    { kernel_shape: ints([2, 2]), strides: ints([2, 2]) },
    { opset: 11 },
  );
  // windows that tile the input take the mask route (no second MaxPool, no scatter); on odd sizes
  // the rows and columns no window reads get zeros; ReLU-like ties share the gradient
  await check(t, 'MaxPool 2x2 s2 on odd sizes', 'MaxPool', [{ name: 'x', shape: [2, 3, 7, 5] }], {
    kernel_shape: ints([2, 2]),
    strides: ints([2, 2]),
  });
  // below opset 11 Equal takes no floats: the mask is 'not below the max' (PP-OCR cls is opset 10)
  await check(
    t,
    'MaxPool 2x2 s2 at opset 10',
    'MaxPool',
    [{ name: 'x', shape: [1, 2, 6, 4] }],
    { kernel_shape: ints([2, 2]), strides: ints([2, 2]) },
    { opset: 10 },
  );
  await check(t, 'GlobalMaxPool at opset 10', 'GlobalMaxPool', [{ name: 'x', shape: [2, 3, 4, 5] }], {}, { opset: 10 });
  {
    const m = singleOp('MaxPool', [{ name: 'x', shape: [1, 2, 6, 6] }], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) });
    m.graph.addNode(new Node({ opType: 'ReduceSum', inputs: ['y0'], outputs: ['L'], attrs: { keepdims: int(0) } }));
    m.graph.outputs = [{ name: 'L', type: null }];
    const built = buildGradients(m, { loss: 'L', wrt: ['x'] });
    t.equal(built.model.graph.nodes.filter((n) => n.opType === 'MaxPool').length, 1, 'tiling windows: no second MaxPool for indices');
    t.notOk(
      built.model.graph.nodes.some((n) => n.opType === 'ScatterElements'),
      'and no scatter',
    );
    const s = await openSession(built.model, { threads: 1 });
    const x = new Float32Array(72); // all zeros: every window a four-way tie
    const out = await s.run({ x: new ort.Tensor('float32', x, [1, 2, 6, 6]) });
    const g = out[built.grads.get('x')!]!.data as Float32Array;
    t.ok(
      g.every((v) => Math.abs(v - 0.25) < 1e-7),
      'a four-way tie shares dy = 1 as 0.25 each (the gradients still sum to dy)',
    );
    await s.release();
  }
  await check(t, 'MaxPool 3x3 s2 p1 (overlap)', 'MaxPool', [{ name: 'x', shape: [2, 2, 7, 7] }], {
    kernel_shape: ints([3, 3]),
    strides: ints([2, 2]),
    pads: ints([1, 1, 1, 1]),
  });
  // a forward MaxPool whose Indices another node reads: the rule reuses them, no second MaxPool
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [1, 2, 5, 5] } });
  g.addNode(new Node({ opType: 'MaxPool', inputs: ['x'], outputs: ['y', 'i'], attrs: { kernel_shape: ints([3, 3]) } }));
  g.addNode(new Node({ opType: 'Cast', inputs: ['i'], outputs: ['fi'], attrs: { to: int(1) } }));
  g.outputs = [{ name: 'y', type: null }];
  const r = await gradCheck(modelOf(g, { producer: 't', opset: 17 }), { wrt: ['x'], samples: 32 });
  t.ok(r.worst < 1e-6, `MaxPool 3x3 s1, Indices already an output (${r.dtype}): ${r.worst.toExponential(2)}`);
  g.addNode(new Node({ opType: 'ReduceSum', inputs: ['y'], outputs: ['L'], attrs: { keepdims: int(0) } }));
  const built = buildGradients(modelOf(g, { producer: 't', opset: 17 }), { loss: 'L', wrt: ['x'] });
  t.equal(built.model.graph.nodes.filter((n) => n.opType === 'MaxPool').length, 1, 'the forward Indices are reused');
  // the scattered gradient feeds Relu's rule, whose constants must take its float64 type
  const chain = new Graph();
  chain.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [1, 2, 6, 6] } });
  chain.addNode(new Node({ opType: 'Relu', inputs: ['x'], outputs: ['r'] }));
  chain.addNode(
    new Node({ opType: 'MaxPool', inputs: ['r'], outputs: ['y'], attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]) } }),
  );
  chain.outputs = [{ name: 'y', type: null }];
  const rc = await gradCheck(modelOf(chain, { producer: 't', opset: 17 }), { wrt: ['x'] });
  t.equal(rc.dtype, 'float64', 'Relu after a scattered MaxPool gradient still runs in float64');
  t.ok(rc.worst < 1e-6, `Relu -> MaxPool: ${rc.worst.toExponential(2)}`);
  // below opset 16 (no ScatterElements reduction) overlapping windows take the window-tap route
  const below16: [string, number, Attrs, number[]?][] = [
    ['3x3 s2 p1 (shufflenet)', 13, { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) }],
    ['3x2 s1 asymmetric pads', 11, { kernel_shape: ints([3, 2]), pads: ints([0, 1, 2, 0]) }],
    ['3x3 s2 ceil_mode', 13, { kernel_shape: ints([3, 3]), strides: ints([2, 2]), ceil_mode: int(1) }],
    ['3x3 s2 on odd sizes (rows no window reads)', 13, { kernel_shape: ints([3, 3]), strides: ints([2, 2]) }, [1, 2, 8, 6]],
    ['2x2 s1 dilation 2', 13, { kernel_shape: ints([2, 2]), dilations: ints([2, 2]) }],
    ['1-D k3 s1', 11, { kernel_shape: ints([3]) }, [2, 3, 9]],
  ];
  for (const [name, opset, attrs, shape] of below16) {
    await check(t, `MaxPool ${name}`, 'MaxPool', [{ name: 'x', shape: shape ?? [2, 3, 7, 8] }], attrs, { opset });
  }
});

t.test('Resize nearest: PP-OCR det upsampling (asymmetric, floor, 2x), half_pixel, sizes, downscale', async (t) => {
  const roiScales = (s: number[]): Inputs => [
    { name: 'roi', shape: [0], init: [] },
    { name: 'sc', shape: [s.length], init: s },
  ];
  for (const opset of [11, 13, 17]) {
    await check(
      t,
      'nearest asymmetric floor 2x',
      'Resize',
      [{ name: 'x', shape: [1, 2, 3, 4] }, ...roiScales([1, 1, 2, 2])],
      { mode: str('nearest'), coordinate_transformation_mode: str('asymmetric'), nearest_mode: str('floor') },
      { opset, dtype: 'float32' },
    );
    await check(
      t,
      'nearest half_pixel 3x (default rounding)',
      'Resize',
      [{ name: 'x', shape: [1, 1, 3, 4] }, ...roiScales([1, 1, 3, 3])],
      { mode: str('nearest') },
      { opset, dtype: 'float32' },
    );
  }
  await check(
    t,
    'nearest by sizes 5->8, 4->3',
    'Resize',
    [
      { name: 'x', shape: [1, 2, 5, 4] },
      { name: 'roi', shape: [0], init: [] },
      { name: '', shape: [] },
      { name: 'sz', shape: [4], int64: [1, 2, 8, 3] },
    ],
    { mode: str('nearest') },
    { opset: 13, dtype: 'float32' },
  );
  await check(
    t,
    'nearest 0.5x',
    'Resize',
    [{ name: 'x', shape: [1, 2, 6, 6] }, ...roiScales([1, 1, 0.5, 0.5])],
    { mode: str('nearest') },
    { opset: 13, dtype: 'float32' },
  );
});

t.test('Resize linear: half_pixel, align_corners, asymmetric, pytorch_half_pixel, up and down', async (t) => {
  const input = (shape: number[], s: number[]): Inputs => [
    { name: 'x', shape },
    { name: 'roi', shape: [0], init: [] },
    { name: 'sc', shape: [s.length], init: s },
  ];
  for (const coord of ['half_pixel', 'align_corners', 'asymmetric', 'pytorch_half_pixel']) {
    for (const opset of [11, 13, 17]) {
      await check(
        t,
        `linear ${coord} 2x`,
        'Resize',
        input([1, 2, 4, 3], [1, 1, 2, 2]),
        { mode: str('linear'), coordinate_transformation_mode: str(coord) },
        { opset, dtype: 'float32' },
      );
    }
    await check(
      t,
      `linear ${coord} 1.5x / 0.5x`,
      'Resize',
      input([1, 1, 4, 6], [1, 1, 1.5, 0.5]),
      { mode: str('linear'), coordinate_transformation_mode: str(coord) },
      { opset: 13, dtype: 'float32' },
    );
  }
  await check(
    t,
    'Upsample (opset 8, scales attribute) linear 2x3',
    'Upsample',
    [{ name: 'x', shape: [1, 2, 3, 3] }],
    { mode: str('linear'), scales: { type: 'floats', value: [1, 1, 2, 3] } },
    { opset: 8, dtype: 'float32' },
  );
  await check(
    t,
    'Upsample (opset 9) nearest 2x',
    'Upsample',
    [
      { name: 'x', shape: [1, 2, 3, 3] },
      { name: 'sc', shape: [4], init: [1, 1, 2, 2] },
    ],
    { mode: str('nearest') },
    { opset: 9, dtype: 'float32' },
  );
  await check(
    t,
    'Resize (opset 10) linear 2x',
    'Resize',
    [
      { name: 'x', shape: [1, 2, 3, 3] },
      { name: 'sc', shape: [4], init: [1, 1, 2, 2] },
    ],
    { mode: str('linear') },
    { opset: 10, dtype: 'float32' },
  );
});

t.test('whole model: ShuffleNetV2 (channel split by Slice, Concat, shuffle by Reshape/Transpose) at opsets 13 and 17', async (t) => {
  // the exported graph computes its Slice bounds from Shape chains: fold-shapes makes them constants
  // at the training shape first, as training does. Its gradients w.r.t. the input are ~1e-5, which
  // float32 central differences can only resolve with a large step, and a large step is exact only
  // on a linear model: so Relu becomes Identity and MaxPool AveragePool here (both are checked on
  // their own above), and what is checked is every layout rule inside a real exported graph.
  for (const opset of [13, 17]) {
    const m = normalize(loadModel(join(ROOT, `test/fixtures/zoo/shufflenetv2-op${opset}.onnx`)));
    const shapes = new Map([['x', [2, 3, 64, 64]]]);
    runPass(foldShapesPass, m, { shapes });
    for (const n of m.graph.nodes) {
      if (n.opType === 'Relu') n.opType = 'Identity';
      if (n.opType === 'MaxPool') n.opType = 'AveragePool';
    }
    m.graph.touch();
    const ops = new Set(m.graph.nodes.map((n) => n.opType));
    t.ok(
      ['Slice', 'Concat', 'Reshape', 'Transpose', 'ReduceMean'].every((op) => ops.has(op)),
      `opset ${opset}: the layout ops are there`,
    );
    const ws = [...m.graph.initializers()].filter((w) => w.dims.length === 4).map((w) => w.name);
    const wrt = ['x', ws[0]!, ws[Math.floor(ws.length / 2)]!, ws[ws.length - 1]!];
    const r = await gradCheck(m, { wrt, shapes, samples: 12, eps: 10 });
    t.ok(
      r.worst < 2e-3,
      `opset ${opset} (${r.dtype}): worst ${r.worst.toExponential(2)} (${r.values.map((v) => `${v.name} ${v.relErr.toExponential(1)}`).join(', ')})`,
    );
    t.same(r.zero, [], `opset ${opset}: no all-zero gradient`);
  }
});

t.test('sliceIndices follows numpy: negatives, clamping, reversal', async (t) => {
  t.same(sliceIndices(5, 0, 5, 2), [0, 2, 4]);
  t.same(sliceIndices(5, -1, -Number.MAX_SAFE_INTEGER, -1), [4, 3, 2, 1, 0], 'a full reversal');
  t.same(sliceIndices(5, 4, -6, -1), [4, 3, 2, 1, 0], 'reverseAxis form');
  t.same(sliceIndices(5, 1, 100, 1), [1, 2, 3, 4], 'end clamped');
  t.same(sliceIndices(5, 3, 1, 1), [], 'empty');
});
