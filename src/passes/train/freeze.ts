// Which of a student's weights distillation leaves frozen: the stem, the layers an image model runs
// before its first map at 1/FREEZE_STRIDE (16) of the input's side; PP-OCRv4 det's first 12 of 66
// layers (its 160x160, 80x80 and 40x40 maps). Fine-tuning frameworks freeze early layers by default
// too (detectron2's FREEZE_AT=2: the stem and first stage), for reasons that hold on the box more:
// - cost: the stem's maps are the largest, so their backward (input gradients through them, their
//   weights' gradients) is the dearest part of a step. det's step against one inference of the
//   same batch (scripts/bench-train-step.ts --cases det1,det4 --nchwc depthwise, one run): 5.6x /
//   5.7x training every layer, 4.3x / 4.1x with 8 layers frozen (stride 8), 3.9x / 3.7x with 12;
// - gain: the stem's filters are generic edges and blobs, which pruning leaves nearly whole and lsq
//   has refit. det pruned to 0.5x and distilled 12 minutes from the same prune (bench-distill.ts):
//   every layer 1,763 steps, judge box F1 0.9769, mask IoU 0.9391; stride 8 2,153 steps, 0.9769,
//   0.9380; stride 16 2,169 steps, 0.9884, 0.9361 (held-out loss 0.0122, 0.0115, 0.0115).
// QAT trains every layer: each layer's weights must absorb their own rounding, and det QAT with its
// stem frozen (stride 8) kept box F1 0.9733 where every layer trained kept 0.9853 (bench-qat.ts).
// A model with no map that small, with a stem of more than a quarter of its trained layers at 16
// and at 8 (MNIST's three convs all come before its pooled 3x3 map; rec narrows its height late),
// or with no image input, freezes nothing. A frozen weight stays an initializer, so its layers run
// as in inference (constant weights, onnxruntime's fused and blocked kernels) and no backward node
// is built for them.
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { inferShapes } from '../../ir/shapes.js';

/**
 * Distillation freezes the layers before the first map at 1/FREEZE_STRIDE of the input's side:
 * PP-OCRv4 det's stem and first two stages (its 160x160, 80x80 and 40x40 maps, 12 of 66 layers).
 */
export const FREEZE_STRIDE = 16;
/** Where that stem is too long (STEM_SHARE), the stride halves down to this one before nothing freezes. */
const LEAST_FALLBACK = 8;
/** A stem may hold at most 1 in STEM_SHARE of the trained layers: a shallow net's every layer matters. */
const STEM_SHARE = 4;

/** A stride freezeStem takes: 0 (freeze nothing) or an integer from 2. */
export const isFreezeStride = (v: number): boolean => v === 0 || (Number.isInteger(v) && v >= 2);

export interface Frozen {
  /** The trainable weights left to train, in the order given. */
  trainable: string[];
  /** Those frozen, in the order given. */
  frozen: string[];
  /** The nodes (layers) they feed, by name (else first output), in graph order. */
  layers: string[];
  /** The stride whose stem froze (0 when nothing did). */
  stride: number;
}

/**
 * Splits `trainable` of `model` into the weights to train and those to freeze, for inputs of
 * `shapes` (the training rows' static dims). A weight freezes when every node reading it through
 * weight-only nodes (a QAT fake-quant chain: Mul, QuantizeLinear, DequantizeLinear) is a layer of
 * the stem: the data nodes before the first map at 1/`stride` of the input's side, where they are at
 * most a quarter of the trained layers; else `stride` / 2 down to LEAST_FALLBACK (a ResNet-18 at 224
 * has 10 of its 21 layers before 1/16, 5 before 1/8). `stride` 0 (or below 2) freezes nothing.
 * Something always trains: a stem holding every trained layer breaks the quarter cap.
 */
export function freezeStem(model: Model, trainable: readonly string[], shapes: Map<string, number[]>, stride = FREEZE_STRIDE): Frozen {
  const none: Frozen = { trainable: [...trainable], frozen: [], layers: [], stride: 0 };
  if (!(stride >= 2)) return none;
  const g = model.graph;
  const image = g.runtimeInputs().find((i) => shapes.get(i.name)?.length === 4);
  if (!image) return none;
  const [, , h, w] = shapes.get(image.name)!;
  const { types } = inferShapes(model, { shapes });
  const order = g.topoOrder();

  // values computed from the runtime inputs (a weight-only node's output is not)
  const data = new Set(g.runtimeInputs().map((i) => i.name));
  for (const n of order) if (n.inputs.some((v) => v && data.has(v))) for (const o of n.outputs) if (o) data.add(o);

  // the data nodes a weight reaches through weight-only nodes
  const layersOf = (wt: string): Set<Node> => {
    const out = new Set<Node>();
    const seen = new Set<string>();
    const todo = [wt];
    while (todo.length) {
      const v = todo.pop()!;
      if (seen.has(v)) continue;
      seen.add(v);
      for (const c of g.consumers(v)) {
        if (c.inputs.some((i) => i && data.has(i))) out.add(c);
        else for (const o of c.outputs) if (o) todo.push(o);
      }
    }
    return out;
  };
  const layersByWeight = new Map(trainable.map((wt) => [wt, layersOf(wt)]));
  const weighted = new Set<Node>();
  for (const ls of layersByWeight.values()) for (const l of ls) weighted.add(l);

  // the stem at `s`: data nodes before the first whose 4-d output has a side at 1/s of the input's
  // (a text-line model narrows its height long before its width); undefined when no map is that small
  const stemAt = (s: number): Set<Node> | undefined => {
    const stem = new Set<Node>();
    for (const n of order) {
      if (!n.inputs.some((v) => v && data.has(v))) continue;
      const small = n.outputs.some((o) => {
        const d = o ? types.get(o)?.shape : undefined;
        return d?.length === 4 && ((typeof d[2] === 'number' && d[2] * s <= h!) || (typeof d[3] === 'number' && d[3] * s <= w!));
      });
      if (small) return stem;
      stem.add(n);
    }
    return undefined;
  };

  for (let s = stride; s === stride || (s >= LEAST_FALLBACK && Number.isInteger(s)); s /= 2) {
    const stem = stemAt(s);
    if (!stem) continue;
    if ([...weighted].filter((l) => stem.has(l)).length * STEM_SHARE > weighted.size) continue;
    const result: Frozen = { trainable: [], frozen: [], layers: [], stride: s };
    const layers = new Set<Node>();
    for (const wt of trainable) {
      const ls = layersByWeight.get(wt)!;
      if (ls.size && [...ls].every((l) => stem.has(l))) {
        result.frozen.push(wt);
        for (const l of ls) layers.add(l);
      } else result.trainable.push(wt);
    }
    if (!result.frozen.length) return none;
    result.layers = order.filter((n) => layers.has(n)).map((n) => n.name || n.outputs[0]!);
    return result;
  }
  return none;
}

/** How a report says what stayed frozen: '; the stem (12 layers, before stride 16) frozen', or '' when
 * nothing was. `layers`: their names (a TrainReport's) or their count (a TrainingSummary's). */
export function frozenNote(f: { layers: readonly string[] | number; stride: number } | undefined): string {
  const n = f && (typeof f.layers === 'number' ? f.layers : f.layers.length);
  return f ? `; the stem (${n} layers, before stride ${f.stride}) frozen` : '';
}
