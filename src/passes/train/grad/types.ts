// The gradient-rule contract: reverse-mode differentiation as a graph transform. Each op's rule
// emits ordinary ONNX nodes that compute the gradients of its inputs from the gradients of its
// outputs, so onnxruntime runs forward and backward as one graph, at native speed, with its
// threads (no training framework on the box). Rules live in tables by op (rules/*.ts), beside the
// pruners' table, and buildGradients (backward.ts) walks the graph in reverse calling them.
import type { DType } from '../../../ir/dtype.js';
import type { Node } from '../../../ir/node.js';
import type { Tensor } from '../../../ir/tensor.js';
import type { AttrValue } from '../../../ir/types.js';

/** What a rule may do: read forward values' static shapes and constants, and emit backward nodes. */
export interface GradEmitter {
  /** The model's default-domain opset (ReduceSum takes axes as an input from 13, Squeeze too, ...). */
  readonly opset: number;
  /**
   * The static shape of any value, forward or emitted (training graphs have fixed shapes: the
   * batch and crop are chosen before the graph is built). Throws naming the value when unknown.
   */
  shape(value: string): number[];
  /** Its element type. */
  dtype(value: string): DType;
  /** The constant behind a value (initializer or Constant node), for inputs that act as attributes. */
  constant(value: string): Tensor | undefined;
  /**
   * The forward node that computes a value, and the forward nodes that read one: for rules that
   * hold only for a pattern (a QuantizeLinear read only by DequantizeLinears of its step).
   */
  producer(value: string): Node | undefined;
  readers(value: string): readonly Node[];
  /**
   * Emit one node; returns its `outputs` fresh output names. Names are prefixed so backward values
   * never collide with forward ones. Attribute values: a number is an int, a number[] ints, a
   * string a string; floats must be given as an AttrValue (`floatAttr(0.1)`), since 1.0 and 1
   * are the same JS number.
   */
  emit(opType: string, inputs: readonly string[], attrs?: Record<string, AttrLike>, outputs?: number): string[];
  /** emit(...)[0]. */
  op(opType: string, inputs: readonly string[], attrs?: Record<string, AttrLike>): string;
  /** A float constant in `like`'s float dtype (float32 unless `like` is float64). */
  constFloat(values: readonly number[] | Float32Array, dims: readonly number[], like?: string): string;
  /** A 1-D (or scalar with dims []) int64 constant. */
  constInt64(values: readonly number[], dims?: readonly number[]): string;
  /** ReduceSum over `axes` (axes as attribute or input per opset); keepdims 1 unless told. */
  reduceSum(x: string, axes: readonly number[], keepdims?: boolean): string;
  /** Reshape to a static shape. */
  reshape(x: string, shape: readonly number[]): string;
  /**
   * The gradient of a value that was broadcast to the gradient's shape: sum over the broadcast
   * axes and reshape to `target` (numpy / ONNX multidirectional broadcasting undone).
   */
  unbroadcast(grad: string, target: readonly number[]): string;
}

/** An attribute as a rule writes it; see GradEmitter.emit. */
export type AttrLike = number | readonly number[] | string | AttrValue;

export interface GradRule {
  /**
   * Inputs through which gradients flow, by index. The others (shapes, indices, scales, axes)
   * never get one; buildGradients never asks for them.
   */
  readonly diff: readonly number[];
  /**
   * The gradients of `n`'s inputs, given its outputs' gradients (`dy[i]` undefined where no
   * gradient reaches output i). `need[i]` says whether input i needs one; return undefined for
   * the others (or anything: it is ignored). A returned gradient has exactly its input's shape.
   */
  readonly grad: (n: Node, dy: readonly (string | undefined)[], need: readonly boolean[], e: GradEmitter) => (string | undefined)[];
}

/** A table of rules by opType (default domain). */
export type GradRules = Readonly<Record<string, GradRule>>;
