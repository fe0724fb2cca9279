// The weight layers' gradient rules against central finite differences, over the configurations
// real models use: BatchNormalization (inference form) and ConvTranspose, and Conv, Gemm and
// MatMul beyond grad-conv.test.ts's cases. onnxruntime's Conv and ConvTranspose kernels are
// float32 only, so those checks run in float32 with a 1e-2 step, where a relative error of 2e-3
// is what central differences of a float32 sum of products can meet; everything with float64
// kernels is checked in float64 to 1e-6.
import t, { type Test } from 'tap';
import { gradCheck, singleOp } from '../../devkit/gradcheck.js';
import type { AttrValue } from '../../src/ir/types.js';
import { buildGradients } from '../../src/passes/train/grad/backward.js';
import { Graph } from '../../src/ir/graph.js';
import { Node } from '../../src/ir/node.js';
import { modelOf } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const int = (value: number): AttrValue => ({ type: 'int', value });
const float = (value: number): AttrValue => ({ type: 'float', value });
const str = (value: string): AttrValue => ({ type: 'string', value });
const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1);
const wave = (n: number, f = 1.7, amp = 0.5): number[] => Array.from({ length: n }, (_, i) => Math.sin(i * f + 0.3) * amp);
const F32_TOL = 2e-3;

const detail = (r: Awaited<ReturnType<typeof gradCheck>>): string =>
  `worst ${r.worst.toExponential(2)} (${r.values.map((v) => `${v.name} ${v.relErr.toExponential(1)}`).join(', ')})`;

t.test('BatchNormalization (inference form): gradients of X, scale and B at opsets 9, 14 and 15, in float64', async (t) => {
  const cases: [string, number[], number][] = [
    ['NCHW opset 9', [2, 4, 3, 5], 9],
    ['NCHW opset 14', [3, 4, 2, 2], 14],
    ['NCL (1-D) opset 15', [2, 6, 7], 15],
    ['NC (after a Gemm) opset 15', [5, 3], 15],
  ];
  for (const [name, x, opset] of cases) {
    const c = x[1]!;
    const m = singleOp(
      'BatchNormalization',
      [
        { name: 'x', shape: x },
        { name: 'scale', shape: [c], init: wave(c, 0.9, 0.8).map((v) => v + 0.3) },
        { name: 'B', shape: [c], init: wave(c, 2.1, 0.2) },
        { name: 'mean', shape: [c], init: wave(c, 1.3, 0.4) },
        { name: 'var', shape: [c], init: wave(c, 0.7, 0.3).map((v) => v + 0.6) },
      ],
      { epsilon: float(1e-3) },
      { opset },
    );
    const r = await gradCheck(m, { wrt: ['x', 'scale', 'B'] });
    t.equal(r.dtype, 'float64', `${name}: float64`);
    t.ok(r.worst < 1e-6, `${name}: ${detail(r)}`);
    t.same(r.zero, [], `${name}: no all-zero gradient`);
  }
});

t.test('BatchNormalization in training mode is refused, naming the node', async (t) => {
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [2, 3, 4] } });
  for (const p of ['s', 'b', 'm', 'v']) g.setInitializer(Tensor.fromFloat32(p, [3], [1, 1, 1]));
  g.addNode(
    new Node({
      opType: 'BatchNormalization',
      name: 'bn0',
      inputs: ['x', 's', 'b', 'm', 'v'],
      outputs: ['y', 'rm', 'rv'],
      attrs: { training_mode: int(1) },
    }),
  );
  g.addNode(new Node({ opType: 'ReduceSum', inputs: ['y'], outputs: ['L'], attrs: { keepdims: int(0) } }));
  g.outputs = [{ name: 'L', type: null }];
  t.throws(() => buildGradients(modelOf(g, { producer: 't', opset: 15 }), { loss: 'L', wrt: ['s'] }), /bn0.*training mode/);
});

interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  a: Record<string, AttrValue>;
  bias?: boolean;
}

async function convCheck(t: Test, op: 'Conv' | 'ConvTranspose', c: ConvCase): Promise<void> {
  const bias = c.bias ?? true;
  const outC = op === 'Conv' ? c.w[0]! : c.w[1]! * ((c.a.group?.value as number | undefined) ?? 1);
  const m = singleOp(
    op,
    [
      { name: 'x', shape: c.x },
      { name: 'w', shape: c.w, init: wave(numel(c.w)) },
      ...(bias ? [{ name: 'b', shape: [outC], init: wave(outC, 0.4, 0.3) }] : []),
    ],
    { kernel_shape: ints(c.w.slice(2)), ...c.a },
  );
  const wrt = bias ? ['x', 'w', 'b'] : ['x', 'w'];
  const r = await gradCheck(m, { wrt, samples: 16 });
  t.equal(r.dtype, 'float32', `${op} ${c.name}: float32 (no float64 kernel)`);
  t.ok(r.worst < F32_TOL, `${op} ${c.name}: ${detail(r)}`);
  t.same(r.zero, [], `${op} ${c.name}: no all-zero gradient`);
}

t.test('ConvTranspose: input, weight and bias gradients over strides, pads, dilation, groups, output_padding and auto_pad', async (t) => {
  const cases: ConvCase[] = [
    { name: '2x2 s2 (the det head upsampler)', x: [2, 4, 5, 6], w: [4, 3, 2, 2], a: { strides: ints([2, 2]) } },
    { name: '3x3 s1 p1', x: [1, 3, 6, 6], w: [3, 5, 3, 3], a: { pads: ints([1, 1, 1, 1]) } },
    {
      name: '3x3 s2 p1 output_padding 1',
      x: [1, 3, 4, 5],
      w: [3, 2, 3, 3],
      a: { strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), output_padding: ints([1, 1]) },
    },
    { name: 'dilation 2, asymmetric pads', x: [1, 2, 5, 5], w: [2, 3, 3, 3], a: { dilations: ints([2, 2]), pads: ints([2, 1, 0, 1]) } },
    { name: 'grouped (G=2) s2', x: [1, 4, 4, 4], w: [4, 3, 3, 3], a: { group: int(2), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) } },
    {
      name: 'depthwise 4x4 s2 p1',
      x: [2, 5, 4, 4],
      w: [5, 1, 4, 4],
      a: { group: int(5), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) },
    },
    { name: '1x1 (patches are dy itself)', x: [2, 6, 3, 3], w: [6, 4, 1, 1], a: {} },
    { name: 'SAME_UPPER s2', x: [1, 3, 4, 5], w: [3, 2, 3, 3], a: { auto_pad: str('SAME_UPPER'), strides: ints([2, 2]) } },
    { name: 'SAME_LOWER s2', x: [1, 3, 4, 5], w: [3, 2, 3, 3], a: { auto_pad: str('SAME_LOWER'), strides: ints([2, 2]) } },
    { name: '1-D s2 p1', x: [2, 3, 7], w: [3, 4, 3], a: { strides: ints([2]), pads: ints([1, 1]) } },
    { name: 'no bias', x: [1, 2, 3, 3], w: [2, 2, 3, 3], a: { strides: ints([2, 2]) }, bias: false },
    {
      name: 'depthwise 5x5 s2 p2 (taps)',
      x: [1, 3, 4, 4],
      w: [3, 1, 5, 5],
      a: { group: int(3), strides: ints([2, 2]), pads: ints([2, 2, 2, 2]) },
    },
  ];
  for (const c of cases) await convCheck(t, 'ConvTranspose', c);
});

t.test('Conv: configurations beyond grad-conv.test.ts (asymmetric pads, 1-D, 3-D, SAME_LOWER, VALID, no bias)', async (t) => {
  const cases: ConvCase[] = [
    { name: 'asymmetric pads s2', x: [1, 3, 8, 7], w: [4, 3, 3, 3], a: { strides: ints([2, 2]), pads: ints([0, 1, 2, 0]) } },
    {
      name: 'rectangular kernel 1x3, strides 2x1',
      x: [2, 3, 6, 6],
      w: [4, 3, 1, 3],
      a: { strides: ints([2, 1]), pads: ints([0, 1, 0, 1]) },
    },
    { name: '1-D k3 s2 p1', x: [2, 4, 11], w: [5, 4, 3], a: { strides: ints([2]), pads: ints([1, 1]) } },
    { name: '1-D depthwise dilation 2', x: [1, 4, 12], w: [4, 1, 3], a: { group: int(4), dilations: ints([2]), pads: ints([2, 2]) } },
    { name: '3-D 2x2x2 s2', x: [1, 2, 4, 4, 4], w: [3, 2, 2, 2, 2], a: { strides: ints([2, 2, 2]) } },
    { name: 'SAME_LOWER s2 (odd total)', x: [1, 3, 8, 8], w: [4, 3, 2, 2], a: { auto_pad: str('SAME_LOWER'), strides: ints([2, 2]) } },
    { name: 'VALID', x: [1, 3, 6, 5], w: [2, 3, 3, 3], a: { auto_pad: str('VALID') } },
    {
      name: 'grouped G=3, stride 2, dilation 2',
      x: [1, 6, 9, 9],
      w: [9, 2, 3, 3],
      a: { group: int(3), strides: ints([2, 2]), dilations: ints([2, 2]) },
    },
    { name: 'no bias', x: [2, 3, 5, 5], w: [4, 3, 3, 3], a: { pads: ints([1, 1, 1, 1]) }, bias: false },
    // depthwise above 3x3: the weight gradient tap by tap (strided slices), the input gradient a Conv at stride 1
    { name: 'depthwise 5x5 p2 (taps)', x: [2, 4, 7, 7], w: [4, 1, 5, 5], a: { group: int(4), pads: ints([2, 2, 2, 2]) } },
    {
      name: 'depthwise 5x5 s2 asymmetric pads (taps)',
      x: [1, 3, 9, 8],
      w: [3, 1, 5, 5],
      a: { group: int(3), strides: ints([2, 2]), pads: ints([2, 1, 1, 2]) },
    },
    {
      name: 'depthwise 5x5 dilation 2 (taps)',
      x: [1, 2, 11, 11],
      w: [2, 1, 5, 5],
      a: { group: int(2), dilations: ints([2, 2]), pads: ints([4, 4, 4, 4]) },
    },
    { name: '1-D depthwise k7 s2 (taps)', x: [2, 3, 15], w: [3, 1, 7], a: { group: int(3), strides: ints([2]), pads: ints([3, 3]) } },
    {
      name: 'stride 1, pads beyond the kernel (ConvTranspose input gradient)',
      x: [1, 2, 4, 4],
      w: [3, 2, 3, 3],
      a: { pads: ints([2, 3, 1, 2]) },
    },
  ];
  for (const c of cases) await convCheck(t, 'Conv', c);
});

t.test('Gemm: C broadcast from a scalar, a row, a column and none; beta 0; float64', async (t) => {
  const cs: [string, number[] | null][] = [
    ['scalar C', []],
    ['C [1,4]', [1, 4]],
    ['C [3,1]', [3, 1]],
    ['C [3,4]', [3, 4]],
    ['no C', null],
  ];
  for (const [name, c] of cs) {
    for (const [ta, tb] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const m = singleOp(
        'Gemm',
        [{ name: 'a', shape: ta ? [5, 3] : [3, 5] }, { name: 'b', shape: tb ? [4, 5] : [5, 4] }, ...(c ? [{ name: 'c', shape: c }] : [])],
        { transA: int(ta), transB: int(tb), alpha: float(-0.6), beta: float(c && name === 'C [3,4]' ? 0 : 2.5) },
      );
      const r = await gradCheck(m, { wrt: c ? ['a', 'b', 'c'] : ['a', 'b'] });
      t.equal(r.dtype, 'float64');
      // beta 0: C's gradient is exactly zero, which finite differences agree with
      t.ok(r.worst < 1e-6, `${name} transA=${ta} transB=${tb}: ${detail(r)}`);
    }
  }
});

t.test('MatMul: 4-D batched, broadcast on both sides, 1-D against N-D', async (t) => {
  const cases: [string, number[], number[]][] = [
    ['4-D both', [2, 3, 4, 5], [2, 3, 5, 2]],
    ['broadcast both sides', [2, 1, 3, 5], [1, 4, 5, 2]],
    ['weight with a unit batch dim', [4, 3, 5], [1, 5, 2]],
    ['2-D left against 3-D right', [3, 5], [4, 5, 2]],
    ['1-D left against 4-D right', [5], [2, 3, 5, 4]],
    ['4-D left against 1-D right', [2, 3, 4, 5], [5]],
    ['unit matrix dims', [1, 5], [5, 1]],
  ];
  for (const [name, a, b] of cases) {
    const m = singleOp('MatMul', [
      { name: 'a', shape: a },
      { name: 'b', shape: b },
    ]);
    const r = await gradCheck(m, { wrt: ['a', 'b'] });
    t.equal(r.dtype, 'float64', `${name}: float64`);
    t.ok(r.worst < 1e-6, `${name}: ${detail(r)}`);
  }
});

t.test('the fast paths are the ones emitted: a Conv input gradient at stride 1, one Conv for a depthwise weight gradient', async (t) => {
  const backwardOps = (w: number[], a: Record<string, AttrValue>): string[] => {
    const g = new Graph();
    g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [1, 4, 8, 8] } });
    g.setInitializer(Tensor.fromFloat32('w', w, wave(numel(w))));
    g.addNode(new Node({ opType: 'Conv', inputs: ['x', 'w'], outputs: ['y'], attrs: { kernel_shape: ints(w.slice(2)), ...a } }));
    g.addNode(new Node({ opType: 'ReduceSum', inputs: ['y'], outputs: ['L'], attrs: { keepdims: int(0) } }));
    g.outputs = [{ name: 'L', type: null }];
    const built = buildGradients(modelOf(g, { producer: 't', opset: 17 }), { loss: 'L', wrt: ['x', 'w'] });
    return built.model.graph.nodes.filter((n) => n.name.startsWith('grad/')).map((n) => n.opType);
  };
  const s1 = backwardOps([6, 4, 3, 3], { pads: ints([1, 1, 1, 1]) });
  t.notOk(s1.includes('ConvTranspose'), '3x3 stride 1: no ConvTranspose');
  t.ok(backwardOps([6, 4, 3, 3], { pads: ints([1, 1, 1, 1]), strides: ints([2, 2]) }).includes('ConvTranspose'), 'stride 2: ConvTranspose');
  for (const k of [3, 5]) {
    const dw = backwardOps([4, 1, k, k], { pads: ints([k >> 1, k >> 1, k >> 1, k >> 1]), group: int(4) });
    t.notOk(dw.includes('MatMul'), `depthwise ${k}x${k}: no patches MatMul`);
    // one Conv for the input gradient, one for the weight's; the only Slice flips the kernel
    t.equal(dw.filter((op) => op === 'Conv').length, 2, `depthwise ${k}x${k}: two Convs`);
    t.equal(dw.filter((op) => op === 'Slice').length, 1, `depthwise ${k}x${k}: no Slice per tap`);
  }
});
