// Channel spaces: what the channels of a value are, in terms of prunable units.
// An atom is one channel dimension created by a weight layer (Conv/Gemm/MatMul output) or a
// graph input. Elementwise coupling (residual Add, SE Mul) unites atoms into one group, which
// must then lose the same channel indices everywhere. Concat builds a composite space (offset
// mapping); Flatten into a Gemm expands each channel into a block of features.

export type Space =
  | { readonly kind: 'atom'; readonly id: number }
  | { readonly kind: 'cat'; readonly parts: readonly Space[] }
  /** Flattened: channel c becomes features [c*block, (c+1)*block); block is resolved by the consumer. */
  | { readonly kind: 'flat'; readonly inner: Space };

export interface AtomInfo {
  size: number;
  /** Where the atom comes from (value name), for reports. */
  origin: string;
}

/** Union-find over atoms, with a reason list per root for unprunable groups. */
export class Atoms {
  readonly info: AtomInfo[] = [];
  private parent: number[] = [];
  private reasons = new Map<number, string[]>();
  /**
   * Per root: the group counts of grouped Convs producing or reading the atoms (every group keeps
   * the same count), each with the Conv that imposes it, for reports.
   */
  private chunks = new Map<number, { parts: number; why: string }[]>();

  add(size: number, origin: string): Space {
    const id = this.info.length;
    this.info.push({ size, origin });
    this.parent.push(id);
    return { kind: 'atom', id };
  }
  find(id: number): number {
    let r = id;
    while (this.parent[r] !== r) r = this.parent[r]!;
    while (this.parent[id] !== r) {
      const n = this.parent[id]!;
      this.parent[id] = r;
      id = n;
    }
    return r;
  }
  union(a: number, b: number): void {
    const ra = this.find(a), rb = this.find(b);
    if (ra === rb) return;
    this.parent[rb] = ra;
    const rs = this.reasons.get(rb);
    if (rs) {
      this.reasons.set(ra, [...(this.reasons.get(ra) ?? []), ...rs]);
      this.reasons.delete(rb);
    }
    const cs = this.chunks.get(rb);
    if (cs) {
      this.chunks.set(ra, [...(this.chunks.get(ra) ?? []), ...cs]);
      this.chunks.delete(rb);
    }
  }
  /**
   * The channels of atom `s` are `parts` equal contiguous runs (a grouped Conv's output groups,
   * or the input groups a grouped Conv reads) that must each keep the same number of channels,
   * or the Conv's channels/group layout breaks. `why` names the Conv and the side.
   */
  chunk(s: Space & { kind: 'atom' }, parts: number, why: string): void {
    const r = this.find(s.id);
    this.chunks.set(r, [...(this.chunks.get(r) ?? []), { parts, why }]);
  }
  /** The run count a group's selection must respect: the lcm of its grouped Convs' group counts (1 = free). */
  chunksOf(root: number): number {
    return (this.chunks.get(this.find(root)) ?? []).reduce((a, b) => (a * b.parts) / gcd(a, b.parts), 1);
  }
  /** The grouped Convs that constrain a group's selection (see chunk). */
  chunkSources(root: number): string[] {
    return [...new Set((this.chunks.get(this.find(root)) ?? []).map((c) => c.why))];
  }
  /** Make every atom of `s` unprunable, with a reason a user can act on. */
  block(s: Space, reason: string): void {
    for (const id of atomsOf(s)) {
      const r = this.find(id);
      const list = this.reasons.get(r) ?? [];
      if (!list.includes(reason)) list.push(reason);
      this.reasons.set(r, list);
    }
  }
  reasonsOf(root: number): string[] {
    return this.reasons.get(this.find(root)) ?? [];
  }
  size(s: Space): number {
    switch (s.kind) {
      case 'atom':
        return this.info[s.id]!.size;
      case 'cat':
        return s.parts.reduce((a, p) => a + this.size(p), 0);
      case 'flat':
        return this.size(s.inner);
    }
  }
}

export function atomsOf(s: Space): number[] {
  switch (s.kind) {
    case 'atom':
      return [s.id];
    case 'cat':
      return s.parts.flatMap(atomsOf);
    case 'flat':
      return atomsOf(s.inner);
  }
}

export function sameSpace(a: Space, b: Space, atoms: Atoms): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'atom' && b.kind === 'atom') return atoms.find(a.id) === atoms.find(b.id);
  if (a.kind === 'cat' && b.kind === 'cat') return a.parts.length === b.parts.length && a.parts.every((p, i) => sameSpace(p, b.parts[i]!, atoms));
  if (a.kind === 'flat' && b.kind === 'flat') return sameSpace(a.inner, b.inner, atoms);
  return false;
}

/**
 * The indices kept in space `s` given the kept channels per group root (absent root = all kept).
 * `block` expands flattened spaces (features per channel).
 */
export function keptIndices(s: Space, atoms: Atoms, keep: ReadonlyMap<number, readonly number[]>, block = 1): number[] {
  switch (s.kind) {
    case 'atom': {
      const k = keep.get(atoms.find(s.id));
      const base = k ? [...k] : range(atoms.size(s));
      if (block === 1) return base;
      const out: number[] = [];
      for (const c of base) for (let j = 0; j < block; j++) out.push(c * block + j);
      return out;
    }
    case 'cat': {
      const out: number[] = [];
      let off = 0;
      for (const p of s.parts) {
        for (const i of keptIndices(p, atoms, keep)) out.push(off + i);
        off += atoms.size(p);
      }
      if (block === 1) return out;
      return out.flatMap((c) => range(block).map((j) => c * block + j));
    }
    case 'flat':
      return keptIndices(s.inner, atoms, keep, block);
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
