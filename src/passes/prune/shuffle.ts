// Channel shuffle (ShuffleNet) in the pruner table: the Reshape handler hands a 5-D reshape of a
// channels-first value here, which checks the whole Reshape, Transpose, Reshape pattern.
import type { Node } from '../../ir/node.js';
import type { Ctx, VInfo } from './ops.js';
import { type Space, describe } from './space.js';

/**
 * Channel shuffle (ShuffleNet): Reshape [N,C,H,W] -> [N,g,C/g,H,W], Transpose [0,2,1,3,4], Reshape
 * back; output channel j*g + i is input channel i*(C/g) + j. It stays a shuffle when the same
 * position j leaves every group i: the input is a grid (g fixed groups) x (C/g positions), the
 * output (C/g positions) x (g fixed), and both Reshape constants follow the kept position count.
 * Handled at the first Reshape (the whole pattern is checked here); the Transpose and the second
 * Reshape then see an untracked input and leave the output space set here alone.
 */
export function channelShuffle(r1: Node, x: VInfo, t: readonly number[], c: Ctx): string | undefined {
  const g = c.g;
  const C = c.atoms.size(x.space);
  const groups = t[1]!;
  const what = `Reshape [${t.join(',')}] of ${C} channels`;
  const mid = r1.outputs[0]!;
  const [tr, ...moreT] = g.consumers(mid);
  if (!tr || moreT.length || tr.opType !== 'Transpose' || g.isGraphOutput(mid))
    return `${what} not followed by a Transpose alone (a channel shuffle is Reshape, Transpose [0,2,1,3,4], Reshape)`;
  const perm = tr.attrInts('perm');
  if (!perm || perm.join(',') !== '0,2,1,3,4')
    return `${what} followed by a Transpose with perm [${perm ?? ''}], not the channel shuffle's [0,2,1,3,4]`;
  const swapped = tr.outputs[0]!;
  const [r2, ...moreR] = g.consumers(swapped);
  if (!r2 || moreR.length || r2.opType !== 'Reshape' || g.isGraphOutput(swapped))
    return `${what}, Transpose [0,2,1,3,4] not followed by a Reshape alone`;
  const s2 = r2.inputs[1] ? c.constant(r2.inputs[1])?.toNumbers() : undefined;
  if (!s2 || s2.length !== 4) return `${what}: the Reshape back to 4-D has no constant shape`;
  if (!(groups >= 2) || C % groups !== 0) return `${what}: ${groups} groups do not divide the ${C} channels`;
  const per = C / groups;
  // only the channel axis may be split: batch and spatial dims pass unchanged, or the indices
  // above mean nothing. Checked on the static input shape; without one, only a batch copied by 0.
  const xs = c.shape(r1.inputs[0]!);
  const resolve = (shape: readonly number[], from: readonly number[]): number[] | null => {
    const r = shape.map((d, i) => (d === 0 ? (from[i] ?? NaN) : d));
    const total = from.reduce((a, b) => a * b, 1);
    const known = r.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const out = r.map((d) => (d === -1 ? total / known : d));
    return out.every((d) => Number.isInteger(d) && d > 0) ? out : null;
  };
  let ok: boolean;
  if (t[2] !== per && t[2] !== -1) ok = false;
  else if (s2[2] === 0 || s2[3] === 0)
    ok = false; // would copy a dim the cut changes
  else if (xs && xs.length === 4) {
    const a = resolve(t, xs);
    const b = a && resolve(s2, a);
    ok =
      !!a && !!b && a[0] === xs[0] && a[1] === groups && a[2] === per && a[3]! * a[4]! === xs[2]! * xs[3]! && b[0] === xs[0] && b[1] === C;
  } else ok = t[0] === 0 && t[2] === per && s2[0] === 0 && s2[1] === C;
  if (!ok)
    return `${what} then [${s2.join(',')}]: cannot check that only the channel axis is split into ${groups} x ${per} and merged back${xs ? '' : ' (input shape unknown)'}`;

  // the input as (groups fixed) x (positions J)
  let J: Space;
  const s = x.space;
  if (s.kind === 'grid' && s.outer.kind === 'fixed' && s.outer.size === groups) J = s.inner;
  else if (s.kind === 'cat' && s.parts.length === groups && s.parts.every((p) => c.atoms.size(p) === per)) {
    if (!s.parts.every((p) => c.atoms.canUnify(s.parts[0]!, p)))
      return `${what}: the ${groups} concatenated parts it shuffles are laid out differently (${describe(s, c.atoms)})`;
    for (const p of s.parts.slice(1)) c.atoms.unify(s.parts[0]!, p);
    J = s.parts[0]!;
  } else if (s.kind === 'atom') {
    J = c.atom(r1, per, `${c.atoms.info[s.id]!.origin} (shuffle position, ${groups} groups)`);
    c.atoms.unify(s, { kind: 'grid', outer: { kind: 'fixed', size: groups }, inner: J });
  } else
    return `${what}: a channel shuffle of ${describe(s, c.atoms)} (only one weight layer's channels, ${groups} concatenated parts of ${per}, or an earlier shuffle's input layout are understood)`;
  const out: Space = { kind: 'grid', outer: J, inner: { kind: 'fixed', size: groups } };
  if (t[2] === per) c.act({ role: 'shape', input: 1, axis: 2, space: J });
  if (s2[1] === C) c.act({ node: r2, role: 'shape', input: 1, axis: 1, space: out });
  c.set(r2.outputs[0]!, { space: out, axis: -3, rank: 4 });
  return undefined;
}
