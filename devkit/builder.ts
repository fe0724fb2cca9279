// A small fixture builder over the IR: tests and benchmarks build models of every pattern
// edgefit must understand (residual, concat, depthwise, SE, channel shuffle, MLP, transformer
// encoder) with seeded random weights, instead of committing opaque .onnx blobs. Shapes are
// tracked while building so weight sizes follow from the input, as in a real network.
import { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import type { AttrValue } from '../src/ir/types.js';
import { rng } from '../src/util/rng.js';

export { rng };

/** Standard normal samples (Box-Muller) from a seeded uniform source. */
export function randn(next: () => number, n: number, std = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(next(), 1e-12);
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const int = (value: number): AttrValue => ({ type: 'int', value });
const float = (value: number): AttrValue => ({ type: 'float', value });

export interface ConvOpts {
  k?: number;
  stride?: number;
  pad?: number;
  group?: number;
  bias?: boolean;
}

export class ModelBuilder {
  readonly graph = new Graph();
  private readonly shapes = new Map<string, number[]>();
  private readonly next: () => number;
  private n = 0;
  constructor(readonly opts: { seed?: number; opset?: number } = {}) {
    this.next = rng(opts.seed ?? 1);
  }

  shape(v: string): number[] {
    const s = this.shapes.get(v);
    if (!s) throw new Error(`builder: unknown value ${v}`);
    return s;
  }
  channels(v: string): number {
    return this.shape(v)[1]!;
  }

  private name(base: string): string {
    return `${base}_${this.n++}`;
  }

  /** A float initializer with seeded N(0, std) values. */
  weight(base: string, dims: number[], std: number): string {
    const name = this.name(base);
    const size = dims.reduce((a, b) => a * b, 1);
    this.graph.setInitializer(Tensor.fromFloat32(name, dims, randn(this.next, size, std)));
    this.shapes.set(name, dims);
    return name;
  }
  constant(base: string, dims: number[], values: number[] | Float32Array): string {
    const name = this.name(base);
    this.graph.setInitializer(Tensor.fromFloat32(name, dims, values));
    this.shapes.set(name, dims);
    return name;
  }
  int64(base: string, values: number[]): string {
    const name = this.name(base);
    this.graph.setInitializer(Tensor.fromInt64(name, [values.length], values));
    return name;
  }

  node(opType: string, inputs: string[], shape: number[], attrs: Record<string, AttrValue> = {}, outputs = 1): string {
    const outs = Array.from({ length: outputs }, () => this.name(opType.toLowerCase()));
    this.graph.addNode({ name: this.name(`n_${opType}`), opType, inputs, outputs: outs, attrs });
    for (const o of outs) this.shapes.set(o, shape);
    return outs[0]!;
  }

  input(name: string, shape: number[]): string {
    this.graph.inputs.push({ name, type: { dtype: 'float32', shape } });
    this.shapes.set(name, shape);
    return name;
  }
  output(v: string): void {
    this.graph.outputs.push({ name: v, type: { dtype: 'float32', shape: this.shape(v) } });
  }

  // ---- layers ----
  conv(x: string, out: number, o: ConvOpts = {}): string {
    const [n, c, h, w] = this.shape(x) as [number, number, number, number];
    const k = o.k ?? 1,
      s = o.stride ?? 1,
      p = o.pad ?? (k - 1) / 2,
      g = o.group ?? 1;
    const wt = this.weight('w', [out, c / g, k, k], Math.sqrt(2 / ((c / g) * k * k)));
    const inputs = [x, wt];
    if (o.bias ?? true) inputs.push(this.weight('b', [out], 0.05));
    const oh = Math.floor((h + 2 * p - k) / s) + 1,
      ow = Math.floor((w + 2 * p - k) / s) + 1;
    return this.node('Conv', inputs, [n, out, oh, ow], {
      kernel_shape: ints([k, k]),
      strides: ints([s, s]),
      pads: ints([p, p, p, p]),
      group: int(g),
      dilations: ints([1, 1]),
    });
  }
  depthwise(x: string, k = 3, stride = 1): string {
    return this.conv(x, this.channels(x), { k, stride, group: this.channels(x) });
  }
  convTranspose(x: string, out: number, k = 2, stride = 2): string {
    const [n, c, h, w] = this.shape(x) as [number, number, number, number];
    const wt = this.weight('wt', [c, out, k, k], Math.sqrt(1 / (c * k * k)));
    const b = this.weight('b', [out], 0.05);
    return this.node('ConvTranspose', [x, wt, b], [n, out, (h - 1) * stride + k, (w - 1) * stride + k], {
      kernel_shape: ints([k, k]),
      strides: ints([stride, stride]),
    });
  }
  bn(x: string): string {
    const c = this.channels(x);
    const scale = this.constant(
      'bn_s',
      [c],
      Array.from({ length: c }, () => 0.5 + this.next()),
    );
    const bias = this.weight('bn_b', [c], 0.1);
    const mean = this.weight('bn_m', [c], 0.1);
    const v = this.constant(
      'bn_v',
      [c],
      Array.from({ length: c }, () => 0.5 + this.next()),
    );
    return this.node('BatchNormalization', [x, scale, bias, mean, v], this.shape(x), { epsilon: float(1e-5) });
  }
  unary(op: 'Relu' | 'Sigmoid' | 'HardSigmoid' | 'HardSwish' | 'Tanh' | 'Erf' | 'Identity', x: string): string {
    return this.node(op, [x], this.shape(x));
  }
  relu(x: string): string {
    return this.unary('Relu', x);
  }
  binary(op: 'Add' | 'Mul' | 'Sub' | 'Div', a: string, b: string): string {
    const sa = this.shape(a),
      sb = this.shape(b);
    const r = Math.max(sa.length, sb.length);
    const shape = Array.from({ length: r }, (_, i) => Math.max(sa[i - r + sa.length] ?? 1, sb[i - r + sb.length] ?? 1));
    return this.node(op, [a, b], shape);
  }
  scalarOp(op: 'Add' | 'Mul' | 'Sub' | 'Div', a: string, v: number): string {
    return this.node(op, [a, this.constant('s', [], [v])], this.shape(a));
  }
  clip(x: string, lo: number, hi: number): string {
    return this.node('Clip', [x, this.constant('lo', [], [lo]), this.constant('hi', [], [hi])], this.shape(x));
  }
  /** HardSwish written out as paddle2onnx does: x * clip(x + 3, 0, 6) / 6. */
  hardSwishExpanded(x: string): string {
    return this.scalarOp('Div', this.binary('Mul', x, this.clip(this.scalarOp('Add', x, 3), 0, 6)), 6);
  }
  concat(xs: string[], axis = 1): string {
    const s = [...this.shape(xs[0]!)];
    s[axis] = xs.reduce((a, x) => a + this.shape(x)[axis]!, 0);
    return this.node('Concat', xs, s, { axis: int(axis) });
  }
  gap(x: string): string {
    const [n, c] = this.shape(x) as [number, number];
    return this.node('GlobalAveragePool', [x], [n, c, 1, 1]);
  }
  maxPool(x: string, k = 2): string {
    const [n, c, h, w] = this.shape(x) as [number, number, number, number];
    return this.node('MaxPool', [x], [n, c, Math.floor(h / k), Math.floor(w / k)], { kernel_shape: ints([k, k]), strides: ints([k, k]) });
  }
  resize2x(x: string): string {
    const [n, c, h, w] = this.shape(x) as [number, number, number, number];
    return this.node('Resize', [x, '', this.constant('scales', [4], [1, 1, 2, 2])], [n, c, 2 * h, 2 * w], {
      mode: { type: 'string', value: 'nearest' },
    });
  }
  flatten(x: string): string {
    const s = this.shape(x);
    return this.node('Flatten', [x], [s[0]!, s.slice(1).reduce((a, b) => a * b, 1)], { axis: int(1) });
  }
  gemm(x: string, out: number): string {
    const [n, k] = this.shape(x) as [number, number];
    const w = this.weight('fc_w', [out, k], Math.sqrt(2 / k));
    const b = this.weight('fc_b', [out], 0.05);
    return this.node('Gemm', [x, w, b], [n, out], { transB: int(1) });
  }
  /** MatMul with a constant [K, N] weight, plus a bias Add: the form exporters give Linear on 3-D tensors. */
  linear(x: string, out: number): string {
    const s = this.shape(x);
    const k = s[s.length - 1]!;
    const w = this.weight('mm_w', [k, out], Math.sqrt(1 / k));
    const y = this.node('MatMul', [x, w], [...s.slice(0, -1), out]);
    return this.binary('Add', y, this.weight('mm_b', [out], 0.02));
  }
  layerNorm(x: string): string {
    const s = this.shape(x);
    const c = s[s.length - 1]!;
    const scale = this.constant(
      'ln_s',
      [c],
      Array.from({ length: c }, () => 0.8 + 0.4 * this.next()),
    );
    return this.node('LayerNormalization', [x, scale, this.weight('ln_b', [c], 0.02)], s, { axis: int(-1), epsilon: float(1e-5) });
  }
  /** GELU as exported from PyTorch: 0.5 * x * (1 + erf(x / sqrt 2)). */
  gelu(x: string): string {
    const e = this.unary('Erf', this.scalarOp('Div', x, Math.SQRT2));
    return this.scalarOp('Mul', this.binary('Mul', x, this.scalarOp('Add', e, 1)), 0.5);
  }
  reshape(x: string, shape: number[]): string {
    return this.node('Reshape', [x, this.int64('shape', shape)], shape);
  }
  transpose(x: string, perm: number[]): string {
    const s = this.shape(x);
    return this.node(
      'Transpose',
      [x],
      perm.map((p) => s[p]!),
      { perm: ints(perm) },
    );
  }
  softmax(x: string, axis = -1): string {
    return this.node('Softmax', [x], this.shape(x), { axis: int(axis) });
  }
  matmul(a: string, b: string): string {
    const sa = this.shape(a),
      sb = this.shape(b);
    return this.node('MatMul', [a, b], [...sa.slice(0, -1), sb[sb.length - 1]!]);
  }

  // ---- blocks ----
  convBnRelu(x: string, out: number, o: ConvOpts = {}): string {
    return this.relu(this.bn(this.conv(x, out, { ...o, bias: false })));
  }
  /** Squeeze-and-excitation: GlobalAveragePool -> Conv -> Relu -> Conv -> gate -> Mul. */
  se(x: string, reduction = 4, gate: 'Sigmoid' | 'HardSigmoid' = 'HardSigmoid'): string {
    const c = this.channels(x);
    const s = this.relu(this.conv(this.gap(x), Math.max(1, Math.floor(c / reduction))));
    return this.binary('Mul', x, this.unary(gate, this.conv(s, c)));
  }
  /** ShuffleNet channel shuffle: Reshape to groups, swap, Reshape back. */
  channelShuffle(x: string, groups: number): string {
    const [n, c, h, w] = this.shape(x) as [number, number, number, number];
    const r = this.reshape(x, [n, groups, c / groups, h, w]);
    const t = this.transpose(r, [0, 2, 1, 3, 4]);
    return this.reshape(t, [n, c, h, w]);
  }
  /** Multi-head self-attention on [B, T, C] with separate Q/K/V projections. */
  attention(x: string, heads: number): string {
    const [b, t, c] = this.shape(x) as [number, number, number];
    const d = c / heads;
    const split = (v: string) => this.transpose(this.reshape(v, [b, t, heads, d]), [0, 2, 1, 3]);
    const q = split(this.linear(x, c)),
      k = split(this.linear(x, c)),
      v = split(this.linear(x, c));
    const kt = this.transpose(k, [0, 1, 3, 2]);
    const att = this.softmax(this.scalarOp('Mul', this.matmul(q, kt), 1 / Math.sqrt(d)));
    const o = this.reshape(this.transpose(this.matmul(att, v), [0, 2, 1, 3]), [b, t, c]);
    return this.linear(o, c);
  }
  /** Pre-norm transformer encoder block: x + attn(ln(x)); x + mlp(ln(x)). */
  encoderBlock(x: string, heads: number, mlpRatio = 4): string {
    const c = this.shape(x)[2]!;
    const a = this.binary('Add', x, this.attention(this.layerNorm(x), heads));
    const m = this.linear(this.gelu(this.linear(this.layerNorm(a), c * mlpRatio)), c);
    return this.binary('Add', a, m);
  }

  build(): Model {
    this.graph.name = 'fixture';
    return {
      irVersion: 8,
      opsets: new Map([['', this.opts.opset ?? 17]]),
      producerName: 'edgefit-test-builder',
      producerVersion: '1',
      domain: '',
      modelVersion: 1,
      docString: '',
      metadata: new Map(),
      graph: this.graph,
      extra: undefined,
    };
  }
}

// ---- fixtures of every pattern (small enough for unit tests: ms per run) ----
export const FIXTURES = {
  residual(seed = 1): Model {
    const b = new ModelBuilder({ seed });
    let x = b.convBnRelu(b.input('x', [1, 3, 32, 32]), 16, { k: 3 });
    for (let i = 0; i < 2; i++) {
      const y = b.bn(b.conv(b.convBnRelu(x, 24, { k: 3 }), 16, { k: 3, bias: false }));
      x = b.relu(b.binary('Add', x, y));
    }
    b.output(b.gemm(b.flatten(b.gap(x)), 10));
    return b.build();
  },
  concat(seed = 2): Model {
    const b = new ModelBuilder({ seed });
    const x = b.convBnRelu(b.input('x', [1, 3, 32, 32]), 16, { k: 3 });
    const a = b.convBnRelu(x, 12, { k: 1 });
    const c = b.convBnRelu(b.maxPool(x, 1), 20, { k: 3 });
    const up = b.resize2x(b.convBnRelu(b.maxPool(x), 8, { k: 3 }));
    const cat = b.concat([a, c, up]);
    b.output(b.conv(b.relu(b.bn(cat)), 4, { k: 3 }));
    return b.build();
  },
  depthwise(seed = 3): Model {
    const b = new ModelBuilder({ seed });
    let x = b.convBnRelu(b.input('x', [1, 3, 32, 32]), 16, { k: 3, stride: 2 });
    for (const c of [32, 48]) {
      x = b.hardSwishExpanded(b.bn(b.depthwise(x, 3)));
      x = b.hardSwishExpanded(b.bn(b.conv(x, c, { bias: false })));
    }
    b.output(b.gemm(b.flatten(b.gap(x)), 10));
    return b.build();
  },
  se(seed = 4): Model {
    const b = new ModelBuilder({ seed });
    let x = b.convBnRelu(b.input('x', [1, 3, 32, 32]), 24, { k: 3 });
    x = b.se(b.relu(b.depthwise(x)), 4, 'HardSigmoid');
    x = b.se(b.convBnRelu(x, 32, { k: 1 }), 4, 'Sigmoid');
    x = b.convTranspose(x, 8);
    b.output(b.unary('Sigmoid', b.conv(x, 1, { k: 1 })));
    return b.build();
  },
  shuffle(seed = 5): Model {
    const b = new ModelBuilder({ seed });
    let x = b.convBnRelu(b.input('x', [1, 3, 32, 32]), 24, { k: 3 });
    x = b.channelShuffle(b.convBnRelu(x, 24, { k: 1, group: 3 }), 3);
    x = b.bn(b.depthwise(x));
    x = b.convBnRelu(x, 32, { k: 1 });
    b.output(b.gemm(b.flatten(b.gap(x)), 10));
    return b.build();
  },
  mlp(seed = 6): Model {
    const b = new ModelBuilder({ seed });
    let x = b.flatten(b.input('x', [1, 1, 8, 8]));
    x = b.relu(b.gemm(x, 64));
    x = b.relu(b.gemm(x, 48));
    b.output(b.gemm(x, 10));
    return b.build();
  },
  /** Conv feature map flattened straight into a Gemm (channel -> block of features). */
  convFlatten(seed = 7): Model {
    const b = new ModelBuilder({ seed });
    let x = b.maxPool(b.convBnRelu(b.input('x', [1, 1, 16, 16]), 8, { k: 3 }));
    x = b.maxPool(b.convBnRelu(x, 16, { k: 3 }));
    b.output(b.gemm(b.relu(b.gemm(b.flatten(x), 32)), 10));
    return b.build();
  },
  transformer(seed = 8): Model {
    const b = new ModelBuilder({ seed });
    let x = b.linear(b.input('x', [1, 16, 24]), 32);
    x = b.encoderBlock(x, 4);
    x = b.encoderBlock(x, 4);
    b.output(b.linear(b.layerNorm(x), 8));
    return b.build();
  },
} as const;

export type FixtureName = keyof typeof FIXTURES;

/** The input shape of a fixture's first input (fixtures have static shapes). */
export function fixtureInputShape(m: Model): number[] {
  return (m.graph.inputs[0]!.type!.shape as number[]).slice();
}

// ---- grouped Conv, channel shuffle and whole-group fixtures (issue 4's structural patterns) ----

/** ShuffleNet(v1)-like unit with `mid` shuffled channels: grouped 1x1 (G=3) -> shuffle -> depthwise -> grouped 1x1 (G=3) + residual. */
function shuffleV1Unit(seed: number, mid: number): Model {
  const b = new ModelBuilder({ seed });
  const x = b.convBnRelu(b.input('x', [1, 3, 24, 24]), 24, { k: 3 });
  let y = b.channelShuffle(b.convBnRelu(x, mid, { k: 1, group: 3 }), 3);
  y = b.bn(b.depthwise(y));
  y = b.bn(b.conv(y, 24, { k: 1, group: 3, bias: false }));
  const z = b.convBnRelu(b.relu(b.binary('Add', x, y)), 32, { k: 1 });
  b.output(b.gemm(b.flatten(b.gap(z)), 10));
  return b.build();
}

export const GROUPED_FIXTURES = {
  /**
   * ResNeXt-like: stem, then blocks 1x1 -> grouped 3x3 (G=4) -> 1x1 + residual; head GAP -> Gemm.
   * The grouped 3x3 sits between private 1x1 chains: it loses whole groups (G shrinks).
   */
  resnext(seed = 21): Model {
    const b = new ModelBuilder({ seed });
    let x = b.convBnRelu(b.input('x', [1, 3, 24, 24]), 32, { k: 3 });
    for (let i = 0; i < 2; i++) {
      const y = b.convBnRelu(x, 64, { k: 1 });
      // block 0: Conv+BN as exported before folding; block 1: a folded Conv with bias
      const g = i === 0 ? b.convBnRelu(y, 64, { k: 3, group: 4 }) : b.relu(b.conv(y, 64, { k: 3, group: 4 }));
      x = b.relu(b.binary('Add', x, b.bn(b.conv(g, 32, { k: 1, bias: false }))));
    }
    b.output(b.gemm(b.flatten(b.gap(x)), 10));
    return b.build();
  },
  /**
   * The same ResNeXt-like blocks, but each block's reduce 1x1 (before its ReLU) also feeds a 1x1
   * projection added to the block's output: the grouped 3x3's input is not private to it, so it
   * keeps its G and cuts within its groups (whole groups go only between private 1x1 chains, ops.ts).
   */
  resnextShared(seed = 21): Model {
    const b = new ModelBuilder({ seed });
    let x = b.convBnRelu(b.input('x', [1, 3, 24, 24]), 32, { k: 3 });
    for (let i = 0; i < 2; i++) {
      const r = b.bn(b.conv(x, 64, { k: 1, bias: false }));
      const y = b.relu(r);
      const g = i === 0 ? b.convBnRelu(y, 64, { k: 3, group: 4 }) : b.relu(b.conv(y, 64, { k: 3, group: 4 }));
      const main = b.binary('Add', x, b.bn(b.conv(g, 32, { k: 1, bias: false })));
      x = b.relu(b.binary('Add', main, b.conv(r, 32, { k: 1 })));
    }
    b.output(b.gemm(b.flatten(b.gap(x)), 10));
    return b.build();
  },
  /**
   * ShuffleNet(v1)-like unit: grouped 1x1 (G=3) -> shuffle -> depthwise 3x3 -> grouped 1x1 (G=3) +
   * residual, then a 1x1 head. 12 shuffled channels read in groups of 4 by the second grouped
   * Conv: its groups cut across the shuffle's blocks of 3 (as in ShuffleNet v1's real widths).
   */
  shufflenet(seed = 22): Model {
    return shuffleV1Unit(seed, 12);
  },
  /** The same unit with 36 shuffled channels: the second grouped Conv's groups of 12 hold whole blocks of 3. */
  shufflenetAligned(seed = 25): Model {
    return shuffleV1Unit(seed, 36);
  },
  /** ShuffleNet(v2)-like merge: two branches concatenated, shuffled in 2 groups, then a 1x1 and a head. */
  shufflenetV2(seed = 26): Model {
    const b = new ModelBuilder({ seed });
    const x = b.convBnRelu(b.input('x', [1, 3, 24, 24]), 16, { k: 3 });
    const left = b.bn(b.conv(b.bn(b.depthwise(x)), 12, { k: 1, bias: false }));
    const right = b.convBnRelu(b.bn(b.depthwise(b.convBnRelu(x, 12, { k: 1 }))), 12, { k: 1 });
    const y = b.channelShuffle(b.concat([b.relu(left), right]), 2);
    const z = b.convBnRelu(y, 32, { k: 1 });
    b.output(b.gemm(b.flatten(b.gap(z)), 10));
    return b.build();
  },
  /**
   * ShuffleNet(v2)-like stride-1 unit after a merge: concat -> shuffle(2) -> Split in halves; one
   * half passes, the other goes through 1x1 -> depthwise -> 1x1; concat -> shuffle(2) -> head.
   */
  shufflenetV2Split(seed = 29): Model {
    const b = new ModelBuilder({ seed });
    const x = b.convBnRelu(b.input('x', [1, 3, 16, 16]), 16, { k: 3 });
    const y = b.channelShuffle(b.concat([b.convBnRelu(x, 12, { k: 1 }), b.convBnRelu(b.bn(b.depthwise(x)), 12, { k: 1 })]), 2);
    const half = b.node('Split', [y, b.int64('split', [12, 12])], [1, 12, 16, 16], { axis: { type: 'int', value: 1 } }, 2);
    const other = b.graph.producer(half)!.outputs[1]!;
    const branch = b.convBnRelu(b.bn(b.depthwise(b.convBnRelu(other, 12, { k: 1 }))), 12, { k: 1 });
    const z = b.channelShuffle(b.concat([half, branch]), 2);
    b.output(b.gemm(b.flatten(b.gap(b.convBnRelu(z, 32, { k: 1 }))), 10));
    return b.build();
  },
  /** A residual Add of a concatenation and one Conv's output: that Conv's channels follow the parts'. */
  concatAdd(seed = 30): Model {
    const b = new ModelBuilder({ seed });
    const x = b.convBnRelu(b.input('x', [1, 3, 16, 16]), 16, { k: 3 });
    const cat = b.concat([b.convBnRelu(x, 8, { k: 3 }), b.convBnRelu(x, 12, { k: 1 })]);
    const y = b.relu(b.binary('Add', cat, b.bn(b.conv(x, 20, { k: 1, bias: false }))));
    b.output(b.gemm(b.flatten(b.gap(b.convBnRelu(y, 16, { k: 1 }))), 10));
    return b.build();
  },
  /** Depthwise with a channel multiplier (group = Cin = 8, Cout = 24: three outputs per input channel). */
  multiplier(seed = 23): Model {
    const b = new ModelBuilder({ seed });
    const x = b.convBnRelu(b.input('x', [1, 3, 16, 16]), 8, { k: 3 });
    const y = b.relu(b.bn(b.conv(x, 24, { k: 3, group: 8 })));
    b.output(b.conv(y, 6, { k: 1 }));
    return b.build();
  },
  /** A grouped Conv with one output channel per group (G=6, 2 inputs each) between a stem and a 1x1. */
  onePerGroup(seed = 27): Model {
    const b = new ModelBuilder({ seed });
    const x = b.convBnRelu(b.input('x', [1, 3, 16, 16]), 12, { k: 3 });
    const y = b.relu(b.bn(b.conv(x, 6, { k: 3, group: 6 })));
    const z = b.convBnRelu(y, 16, { k: 1 });
    b.output(b.gemm(b.flatten(b.gap(z)), 10));
    return b.build();
  },
  /** Two grouped Convs (G=2 and G=3) read the same 24-channel stem and are added: every cut is in lcm(2,3) = 6 equal runs. */
  coupled(seed = 24): Model {
    const b = new ModelBuilder({ seed });
    const x = b.convBnRelu(b.input('x', [1, 3, 16, 16]), 24, { k: 3 });
    const y = b.relu(b.binary('Add', b.bn(b.conv(x, 12, { k: 3, group: 2 })), b.bn(b.conv(x, 12, { k: 1, group: 3, bias: false }))));
    b.output(b.conv(y, 6, { k: 1 }));
    return b.build();
  },
  /** A grouped 3x3 (G=4, runs of 8) reading concat(8, 8, 16): every part starts and ends on a group boundary. */
  groupedConcat(seed = 28): Model {
    const b = new ModelBuilder({ seed });
    const x = b.convBnRelu(b.input('x', [1, 3, 16, 16]), 16, { k: 3 });
    const cat = b.concat([b.convBnRelu(x, 8, { k: 1 }), b.convBnRelu(x, 8, { k: 3 }), b.convBnRelu(x, 16, { k: 1 })]);
    const y = b.convBnRelu(cat, 32, { k: 3, group: 4 });
    b.output(b.gemm(b.flatten(b.gap(b.convBnRelu(y, 16, { k: 1 }))), 10));
    return b.build();
  },
} as const;
