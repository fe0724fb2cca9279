// A quantization plan: what the decision layer (src/fit/quantize/) chooses and the pass builds.
// The pass never searches over plans; it builds the one it is given (issue 15).
//
// Two kinds of unit can stay float:
//  - a node ('node:' keys): its weights and its own arithmetic stay float;
//  - an activation tensor ('tensor:' keys, static mode): its Q/DQ pair goes, so its rounding goes
//    with it.

export interface FloatSet {
  nodes: ReadonlySet<string>;
  tensors: ReadonlySet<string>;
}

export interface QuantPlan {
  /** Units kept float. */
  float: FloatSet;
  /**
   * 7-bit weights (|q| <= 63, platform.ts) rather than full 8-bit. Ignored in weights mode,
   * whose float kernels cannot saturate.
   */
  reduceRange: boolean;
}

export const nodeUnit = (key: string): string => `node:${key}`;
export const tensorUnit = (name: string): string => `tensor:${name}`;

/** Split unit keys into the node keys and tensor names the builder takes. */
export function floatSet(units: Iterable<string>): FloatSet {
  const nodes = new Set<string>();
  const tensors = new Set<string>();
  for (const u of units) {
    if (u.startsWith('node:')) nodes.add(u.slice(5));
    else if (u.startsWith('tensor:')) tensors.add(u.slice(7));
  }
  return { nodes, tensors };
}
