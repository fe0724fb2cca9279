// Tiny ONNX models for the micro-benchmark, built in memory with the project's IR and codec
// (no files, nothing downloaded): fp32 MatMul vs MatMulInteger, fp32 Conv vs QLinearConv.
import { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { serializeModel } from '../onnx/index.js';

/** Deterministic pseudo-random fill: kernel speed does not depend on values, but all-zero data may take shortcuts. */
function fill(n: number, seed: number, f: (u: number) => number): number[] {
  const out = new Array<number>(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = f(s / 2 ** 32);
  }
  return out;
}

export const randomFloats = (n: number, seed: number): Float32Array => Float32Array.from(fill(n, seed, (u) => u * 2 - 1));
export const randomInt8 = (n: number, seed: number): Int8Array => Int8Array.from(fill(n, seed, (u) => Math.floor(u * 255) - 127));
export const randomUint8 = (n: number, seed: number): Uint8Array => Uint8Array.from(fill(n, seed, (u) => Math.floor(u * 256)));

function wrap(graph: Graph, opset = 13): Uint8Array {
  const m: Model = {
    irVersion: 8,
    opsets: new Map([['', opset]]),
    producerName: 'edgefit-bench',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    docString: '',
    metadata: new Map(),
    graph,
    extra: undefined,
  };
  return serializeModel(m);
}

export type Act = 'u8' | 's8';
const actDtype = (a: Act): 'uint8' | 'int8' => (a === 'u8' ? 'uint8' : 'int8');
/** A zero point tensor of the activation type (128 for u8 keeps the range symmetric around it). */
function actZero(name: string, a: Act): Tensor {
  return a === 'u8' ? Tensor.fromUint8(name, [], Uint8Array.of(128)) : Tensor.fromInt8(name, [], Int8Array.of(0));
}

/** Y[m,n] = A[m,k] x B[k,n], B a constant. */
export function gemmFp32(m: number, k: number, n: number): Uint8Array {
  const g = new Graph();
  g.name = 'gemm_fp32';
  g.inputs = [{ name: 'A', type: { dtype: 'float32', shape: [m, k] } }];
  g.outputs = [{ name: 'Y', type: { dtype: 'float32', shape: [m, n] } }];
  g.setInitializer(Tensor.fromFloat32('B', [k, n], randomFloats(k * n, 1)));
  g.addNode({ opType: 'MatMul', inputs: ['A', 'B'], outputs: ['Y'] });
  return wrap(g);
}

/** Y[m,n] int32 = (A - a0)[m,k] x (B - b0)[k,n]: the integer core of a dynamically quantized MatMul. */
export function gemmInt8(m: number, k: number, n: number, act: Act): Uint8Array {
  const g = new Graph();
  g.name = 'gemm_int8';
  g.inputs = [{ name: 'A', type: { dtype: actDtype(act), shape: [m, k] } }];
  g.outputs = [{ name: 'Y', type: { dtype: 'int32', shape: [m, n] } }];
  g.setInitializer(Tensor.fromInt8('B', [k, n], randomInt8(k * n, 1)));
  g.setInitializer(actZero('a_zp', act));
  g.setInitializer(Tensor.fromInt8('b_zp', [], Int8Array.of(0)));
  g.addNode({ opType: 'MatMulInteger', inputs: ['A', 'B', 'a_zp', 'b_zp'], outputs: ['Y'] });
  return wrap(g);
}

export interface ConvShape {
  c: number;
  h: number;
  w: number;
  k: number;
  r: number;
}

/** 'same'-padded r x r convolution, c -> k channels on an h x w map, batch 1. */
export function convFp32(s: ConvShape): Uint8Array {
  const g = new Graph();
  g.name = 'conv_fp32';
  g.inputs = [{ name: 'X', type: { dtype: 'float32', shape: [1, s.c, s.h, s.w] } }];
  g.outputs = [{ name: 'Y', type: { dtype: 'float32', shape: [1, s.k, s.h, s.w] } }];
  g.setInitializer(
    Tensor.fromFloat32(
      'W',
      [s.k, s.c, s.r, s.r],
      randomFloats(s.k * s.c * s.r * s.r, 2).map((v) => v * 0.05),
    ),
  );
  g.setInitializer(Tensor.fromFloat32('Bias', [s.k], randomFloats(s.k, 3)));
  const p = (s.r - 1) >> 1;
  g.addNode({
    opType: 'Conv',
    inputs: ['X', 'W', 'Bias'],
    outputs: ['Y'],
    attrs: { kernel_shape: { type: 'ints', value: [s.r, s.r] }, pads: { type: 'ints', value: [p, p, p, p] } },
  });
  return wrap(g);
}

/** The same convolution as QLinearConv: int8 activations in and out, per-channel s8 weights, int32 bias. */
export function convInt8(s: ConvShape, act: Act): Uint8Array {
  const g = new Graph();
  g.name = 'conv_int8';
  const dt = actDtype(act);
  g.inputs = [{ name: 'X', type: { dtype: dt, shape: [1, s.c, s.h, s.w] } }];
  g.outputs = [{ name: 'Y', type: { dtype: dt, shape: [1, s.k, s.h, s.w] } }];
  g.setInitializer(Tensor.scalarFloat('x_scale', 1 / 64));
  g.setInitializer(actZero('x_zp', act));
  g.setInitializer(Tensor.fromInt8('W', [s.k, s.c, s.r, s.r], randomInt8(s.k * s.c * s.r * s.r, 2)));
  g.setInitializer(Tensor.fromFloat32('w_scale', [s.k], new Float32Array(s.k).fill(0.05 / 127)));
  g.setInitializer(Tensor.fromInt8('w_zp', [s.k], new Int8Array(s.k)));
  g.setInitializer(Tensor.scalarFloat('y_scale', 1 / 16));
  g.setInitializer(actZero('y_zp', act));
  g.setInitializer(Tensor.fromInt32('Bias', [s.k], new Int32Array(s.k)));
  const p = (s.r - 1) >> 1;
  g.addNode({
    opType: 'QLinearConv',
    inputs: ['X', 'x_scale', 'x_zp', 'W', 'w_scale', 'w_zp', 'y_scale', 'y_zp', 'Bias'],
    outputs: ['Y'],
    attrs: { kernel_shape: { type: 'ints', value: [s.r, s.r] }, pads: { type: 'ints', value: [p, p, p, p] } },
  });
  return wrap(g);
}
