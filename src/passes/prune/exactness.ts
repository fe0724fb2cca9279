// The exactness check of the surgery: pruning a group must equal the original model with the
// removed channels' contribution cut. Channels of a group only mix with other channels in the
// weight layers that read them (the 'in' and 'in-grouped' actions): everything else the group
// touches (BN, activations, pooling, Resize, depthwise Conv, residual Add, SE Mul, Concat) is
// per-channel (attention's Reshapes, Transposes, scores MatMuls and Softmax are per head, and a
// head is a block of whole channels). So zeroing the consumers' input-channel weights for the
// removed channels (for a grouped Conv, the removed channel's column in its own group's rows)
// gives a "masked" copy of the original whose outputs the pruned model must reproduce to float
// tolerance; any difference is a slicing bug (wrong index mapping, a missed parameter, a stale
// group count).
// The exception is an op that normalises across the channel axis (LayerNormalization over the
// pruned dim): removing a channel changes every other channel's statistics, which no masking
// of the original reproduces; such groups are reported as inexact-by-design.
import type { Model } from '../../ir/model.js';
import { Tensor } from '../../ir/tensor.js';
import type { Group, GroupAnalysis } from './groups.js';
import { keptIndices } from './space.js';

/** Why masking cannot reproduce pruning of `grp` exactly (null when it can). */
export function maskInexactReason(grp: Group): string | null {
  const ln = grp.actions.find((a) => a.node.opType === 'LayerNormalization');
  return ln ? `${ln.node.label()} normalises over the pruned channels` : null;
}

/**
 * Zero, in `model` (in place), the input-channel weights of every layer that reads channels the
 * pruning `keep` would remove. Shared weights get a private copy so other readers are unchanged.
 * Returns the number of weight tensors masked.
 */
export function maskRemoved(model: Model, ga: GroupAnalysis, keep: ReadonlyMap<number, readonly number[]>): number {
  const g = model.graph;
  let masked = 0;
  for (const a of ga.actions) {
    if (a.role !== 'in' && a.role !== 'in-grouped') continue;
    const full = ga.atoms.size(a.space);
    const name = a.node.inputs[a.input]!;
    const t = g.initializer(name);
    if (!t) continue;
    const len = t.dims[a.axis]!;
    const f = Float32Array.from(t.toFloat32());
    const outer = t.dims.slice(0, a.axis).reduce((p, q) => p * q, 1);
    const inner = t.dims.slice(a.axis + 1).reduce((p, q) => p * q, 1);
    if (a.role === 'in-grouped') {
      // a grouped Conv [Cout, Cin/G, ...]: column j of the rows of group g reads channel g*len + j
      const kept = new Set(keptIndices(a.space, ga.atoms, keep));
      if (kept.size === full) continue;
      const rowsPer = outer / a.groups!;
      for (let o = 0; o < outer; o++) {
        const base = Math.floor(o / rowsPer) * len;
        for (let j = 0; j < len; j++) if (!kept.has(base + j)) f.fill(0, (o * len + j) * inner, (o * len + j + 1) * inner);
      }
    } else {
      const kept = new Set(keptIndices(a.space, ga.atoms, keep, len / full));
      if (kept.size === len) continue;
      for (let o = 0; o < outer; o++)
        for (let i = 0; i < len; i++) if (!kept.has(i)) f.fill(0, (o * len + i) * inner, (o * len + i + 1) * inner);
    }
    const shared = g.consumers(name).length > 1;
    const outName = shared ? g.uniqueName(`${name}_masked`) : name;
    g.setInitializer(Tensor.fromFloat32(outName, t.dims, f));
    if (shared) {
      a.node.inputs[a.input] = outName;
      g.touch();
    }
    masked++;
  }
  return masked;
}

/** A few channels of a group of `size` to remove in the check: first, last and middle (never all). */
export function probeChannels(size: number): number[] {
  if (size < 2) return [];
  const want = size >= 8 ? [0, Math.floor(size / 2), size - 1] : [size - 1];
  return [...new Set(want)].sort((a, b) => a - b);
}
