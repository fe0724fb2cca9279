// The Conv, Gemm and MatMul gradient rules against finite differences (onnxruntime's Conv is
// float32 only: those checks run in float32 with a 1e-2 step, where 2e-3 relative error is the
// bound that float32 central differences of a sum of products can meet).
import t from 'tap';
import { gradCheck, singleOp } from '../../devkit/gradcheck.js';
import type { AttrValue } from '../../src/ir/types.js';

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const int = (value: number): AttrValue => ({ type: 'int', value });
const float = (value: number): AttrValue => ({ type: 'float', value });

t.test('Conv: input, weight and bias gradients over strides, pads, dilation and groups', async (t) => {
  const cases = [
    { name: '3x3 s1 p1', x: [2, 4, 7, 7], w: [6, 4, 3, 3], a: { pads: ints([1, 1, 1, 1]) } },
    {
      name: '3x3 s2 p1 (odd input: output_padding)',
      x: [1, 4, 9, 8],
      w: [5, 4, 3, 3],
      a: { strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) },
    },
    { name: '1x1 plain (patches are the input)', x: [2, 6, 5, 5], w: [3, 6, 1, 1], a: {} },
    { name: '1x1 stride 2', x: [1, 6, 6, 6], w: [3, 6, 1, 1], a: { strides: ints([2, 2]) } },
    { name: 'dilation 2, asymmetric pads', x: [1, 3, 9, 9], w: [4, 3, 3, 3], a: { dilations: ints([2, 2]), pads: ints([2, 1, 1, 2]) } },
    { name: 'grouped (G=2)', x: [1, 4, 6, 6], w: [6, 2, 3, 3], a: { group: int(2), pads: ints([1, 1, 1, 1]) } },
    { name: 'depthwise 3x3 s2', x: [2, 5, 8, 8], w: [5, 1, 3, 3], a: { group: int(5), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) } },
    // the depthwise weight gradient is one Conv with dy as its kernel: strides become dilations,
    // and a stride that leaves input rows unread makes taps past the kernel, sliced off
    { name: 'depthwise 5x5 s1 p2, batch 1', x: [1, 4, 7, 6], w: [4, 1, 5, 5], a: { group: int(4), pads: ints([2, 2, 2, 2]) } },
    {
      name: 'depthwise 5x5 s2 p2 (unread rows), asymmetric dilation',
      x: [2, 3, 10, 9],
      w: [3, 1, 5, 3],
      a: { group: int(3), strides: ints([2, 2]), pads: ints([2, 1, 2, 1]), dilations: ints([1, 2]) },
    },
    // more output channels than output positions, batch > 1: the weight gradient contracts the
    // batch with the positions in one product (linear.ts) instead of summing per-image products
    {
      name: '3x3 s2 p1 on a small map, batch 3',
      x: [3, 4, 4, 4],
      w: [20, 4, 3, 3],
      a: { strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) },
    },
    { name: '1x1 plain on a 2x2 map, batch 2', x: [2, 6, 2, 2], w: [8, 6, 1, 1], a: {} },
    { name: 'grouped (G=2) on a 2x2 map, batch 2', x: [2, 4, 2, 2], w: [12, 2, 3, 3], a: { group: int(2), pads: ints([1, 1, 1, 1]) } },
    {
      name: 'SAME_UPPER s2',
      x: [1, 3, 7, 7],
      w: [4, 3, 3, 3],
      a: { auto_pad: { type: 'string', value: 'SAME_UPPER' } as AttrValue, strides: ints([2, 2]) },
    },
  ];
  // PP-OCR cls is opset 9: Slice takes attributes and no steps there (kernel flips and strided
  // taps become Gathers), so the same cases run at opset 9 too
  for (const c of [...cases.map((c) => ({ ...c, opset: 17 })), ...cases.map((c) => ({ ...c, name: `${c.name}, opset 9`, opset: 9 }))]) {
    const m = singleOp(
      'Conv',
      [
        { name: 'x', shape: c.x },
        { name: 'w', shape: c.w, init: Array.from({ length: c.w.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 1.7) * 0.5) },
        { name: 'b', shape: [c.w[0]!], init: Array.from({ length: c.w[0]! }, (_, i) => i * 0.1) },
      ],
      { kernel_shape: ints(c.w.slice(2)), ...(c.a as Record<string, AttrValue>) },
      { opset: c.opset },
    );
    const r = await gradCheck(m, { wrt: ['x', 'w', 'b'], samples: 16 });
    t.equal(r.dtype, 'float32', `${c.name}: float32 (no float64 Conv kernel)`);
    t.ok(
      r.worst < 2e-3,
      `${c.name}: worst ${r.worst.toExponential(2)} (${r.values.map((v) => `${v.name} ${v.relErr.toExponential(1)}`).join(', ')})`,
    );
    t.same(r.zero, [], `${c.name}: no all-zero gradient`);
  }
});

t.test('Gemm: every transA/transB combination, alpha, beta and a broadcast C, in float64', async (t) => {
  for (const ta of [0, 1]) {
    for (const tb of [0, 1]) {
      const m = singleOp(
        'Gemm',
        [
          { name: 'a', shape: ta ? [5, 3] : [3, 5] },
          { name: 'b', shape: tb ? [4, 5] : [5, 4] },
          { name: 'c', shape: [4] },
        ],
        { transA: int(ta), transB: int(tb), alpha: float(0.7), beta: float(1.3) },
      );
      const r = await gradCheck(m, { wrt: ['a', 'b', 'c'] });
      t.equal(r.dtype, 'float64');
      t.ok(r.worst < 1e-6, `transA=${ta} transB=${tb}: ${r.worst.toExponential(2)}`);
    }
  }
});

t.test('MatMul: 2-D, batched with broadcasting, and 1-D operands', async (t) => {
  const cases: [string, number[], number[]][] = [
    ['2-D', [3, 5], [5, 4]],
    ['batched weight (3-D x 2-D)', [2, 3, 5], [5, 4]],
    ['broadcast batch', [2, 1, 3, 5], [3, 5, 4]],
    ['1-D left', [5], [2, 5, 4]],
    ['1-D right', [2, 3, 5], [5]],
    ['1-D both', [5], [5]],
  ];
  for (const [name, a, b] of cases) {
    const m = singleOp('MatMul', [
      { name: 'a', shape: a },
      { name: 'b', shape: b },
    ]);
    const r = await gradCheck(m, { wrt: ['a', 'b'] });
    t.ok(r.worst < 1e-6, `${name} (${r.dtype}): ${r.worst.toExponential(2)}`);
  }
});
