// Channel spaces: what the channels of a value are, in terms of prunable units.
// An atom is one channel dimension created by a weight layer (Conv/Gemm/MatMul output) or a
// graph input. Elementwise coupling (residual Add, SE Mul) unites atoms into one group, which
// must then lose the same channel indices everywhere. Concat builds a composite space (offset
// mapping); Flatten into a Gemm expands each channel into a block of features. A grid is a
// two-level index (channel o*|inner| + i is outer o, inner i): a channel-multiplier Conv's output
// (input channel o, multiplier i), a channel shuffle's input (group o fixed, position i) and output
// (position o, group i fixed). An atom can later turn out to be such a structure (a channel
// shuffle reads it): it is then an alias of that space and has no group of its own.

export type Space =
  | { readonly kind: 'atom'; readonly id: number }
  | { readonly kind: 'cat'; readonly parts: readonly Space[] }
  /** Flattened: channel c becomes features [c*block, (c+1)*block); block is resolved by the consumer. */
  | { readonly kind: 'flat'; readonly inner: Space }
  /** Channel o*size(inner) + i is (outer o, inner i): removing o removes a block, removing i one channel of every block. */
  | { readonly kind: 'grid'; readonly outer: Space; readonly inner: Space }
  /** Channels that are never removed (a channel shuffle's group axis). */
  | { readonly kind: 'fixed'; readonly size: number };

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
  /** Per root: the space these channels turned out to be (see the header); its atoms decide. */
  private aliases = new Map<number, Space>();
  /**
   * Per root: how many channels of a weight layer one index of the atom stands for, when more
   * than one (a grouped Conv's whole groups: one index is a group of 16 channels). Coupled roots
   * keep the gcd. Rounding to the kernels' block counts in these channels (select.ts unitRound).
   */
  private units = new Map<number, number>();
  private finalized = false;
  private finalizing = false;

  add(size: number, origin: string): Space & { kind: 'atom' } {
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
    const ra = this.find(a),
      rb = this.find(b);
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
    // a root without a unit counts single channels: the merged unit is then 1
    const [ua, ub] = [this.units.get(ra), this.units.get(rb)];
    this.units.delete(rb);
    if (ua !== undefined) this.units.set(ra, ub === undefined ? 1 : gcd(ua, ub));
    const sb = this.aliases.get(rb);
    if (sb) {
      this.aliases.delete(rb);
      const sa = this.aliases.get(ra);
      if (!sa) this.aliases.set(ra, sb);
      else if (!this.unify(sa, sb)) this.mismatch(sa, sb);
    }
  }
  /** Both layouts of channels that must be cut alike but cannot be: neither side may be cut. */
  private mismatch(a: Space, b: Space): void {
    const reason = `coupled channels are laid out differently (${describe(a, this)} and ${describe(b, this)})`;
    this.block(a, reason);
    this.block(b, reason);
  }
  /** The space root `id`'s channels are an alias of, if any. */
  aliasOf(id: number): Space | undefined {
    return this.aliases.get(this.find(id));
  }
  /**
   * Make `a` and `b` (same size) lose the same channel indices: atoms are united, an atom and a
   * structured space make the atom an alias of it, structures unify part by part. False (and
   * nothing coupled) when the layouts do not match; the caller blocks with its reason.
   */
  unify(a: Space, b: Space): boolean {
    if (!this.canUnify(a, b)) return false;
    this.unifyChecked(a, b);
    return true;
  }
  /** Whether `unify(a, b)` would couple them (same size, matching layouts). */
  canUnify(a: Space, b: Space): boolean {
    return this.size(a) === this.size(b) && this.unifiable(a, b);
  }
  private unifiable(a: Space, b: Space): boolean {
    if (a.kind === 'atom' || b.kind === 'atom') {
      const other = a.kind === 'atom' ? b : a;
      return other.kind !== 'fixed' && other.kind !== 'flat';
    }
    if (a.kind === 'fixed' && b.kind === 'fixed') return a.size === b.size;
    if (a.kind === 'grid' && b.kind === 'grid')
      return this.size(a.outer) === this.size(b.outer) && this.unifiable(a.outer, b.outer) && this.unifiable(a.inner, b.inner);
    if (a.kind === 'cat' && b.kind === 'cat')
      return (
        a.parts.length === b.parts.length &&
        a.parts.every((p, i) => this.size(p) === this.size(b.parts[i]!) && this.unifiable(p, b.parts[i]!))
      );
    if (a.kind === 'flat' && b.kind === 'flat') return this.unifiable(a.inner, b.inner);
    return false;
  }
  private unifyChecked(a: Space, b: Space): void {
    if (a.kind === 'atom' && b.kind === 'atom') return this.union(a.id, b.id);
    if (a.kind === 'atom' || b.kind === 'atom') {
      const [at, other] = a.kind === 'atom' ? [a, b] : [b as Space & { kind: 'atom' }, a];
      const r = this.find(at.id);
      if (other.kind === 'atom') return this.union(at.id, other.id);
      const prev = this.aliases.get(r);
      if (!prev) this.aliases.set(r, other);
      else if (!this.unify(prev, other)) this.mismatch(prev, other);
      return;
    }
    if (a.kind === 'grid' && b.kind === 'grid') {
      this.unifyChecked(a.outer, b.outer);
      this.unifyChecked(a.inner, b.inner);
    } else if (a.kind === 'cat' && b.kind === 'cat') a.parts.forEach((p, i) => this.unifyChecked(p, b.parts[i]!));
    else if (a.kind === 'flat' && b.kind === 'flat') this.unifyChecked(a.inner, b.inner);
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
  /**
   * The same constraint on any space, mapped onto its atoms: a concatenation whose parts start and
   * end on run boundaries loses the same positions in every run (see below); a grid whose runs hold whole
   * blocks constrains its outer index; one whose blocks hold whole runs, its inner index (the outer
   * one must then stay whole). Returns the reason when the runs cut across the structure (the
   * atoms are then blocked with it).
   */
  chunkSpace(s: Space, parts: number, why: string): string | undefined {
    const size = this.size(s);
    if (parts <= 1) return undefined;
    const bad = (reason: string): string => {
      this.block(s, `${why}: ${reason}`);
      return reason;
    };
    if (size % parts !== 0) return bad(`${parts} groups do not divide ${size} channels`);
    const run = size / parts;
    switch (s.kind) {
      case 'atom':
        this.chunk(s, parts, why);
        return undefined;
      case 'fixed':
        return undefined;
      case 'flat':
        return bad('the channels are flattened features');
      case 'cat': {
        let off = 0;
        const sizes = s.parts.map((p) => this.size(p));
        for (const n of sizes) {
          if (off % run !== 0 || n % run !== 0)
            return bad(
              `the concatenated parts (${sizes.join(' + ')} channels) do not start and end on its group boundaries (every ${run} channels): ` +
                'a group straddling two parts would keep the sum of two independently cut producers, and every group must keep the same count, ' +
                'so the parts stay whole',
            );
          off += n;
        }
        // Every group must keep the same count, and the groups now belong to different parts
        // (different producers, chosen separately): a count shared across groups is not a
        // per-group constraint. The stronger one is: every group loses the same positions, i.e.
        // each part is (its runs, fixed) x (positions within a group), one atom for all parts.
        if (this.finalizing)
          return bad(
            'the grouped Conv reads this concatenation through a channel alias (a reshape, shuffle or slice of it), and tying its parts ' +
              'to one shared position per group would add channels after the aliases were resolved, so the parts stay whole',
          );
        const pos = this.add(run, `${why}: position within a group`);
        const targets = s.parts.map((p): Space =>
          this.size(p) === run ? pos : { kind: 'grid', outer: { kind: 'fixed', size: this.size(p) / run }, inner: pos },
        );
        if (!s.parts.every((p, i) => this.canUnify(p, targets[i]!)))
          return bad(`the concatenated parts (${s.parts.map((p) => describe(p, this)).join(', ')}) are laid out otherwise than its groups`);
        s.parts.forEach((p, i) => this.unify(p, targets[i]!));
        return undefined;
      }
      case 'grid': {
        const inner = this.size(s.inner);
        if (run % inner === 0) return this.chunkSpace(s.outer, parts, why);
        if (inner % run === 0) {
          if (atomsOf(s.outer).length)
            this.block(
              s.outer,
              `${why}: each block of ${inner} channels spans ${inner / run} groups, so removing a whole block would empty them`,
            );
          return this.chunkSpace(s.inner, inner / run, why);
        }
        return bad(
          `its groups of ${run} channels neither hold whole blocks of ${inner} nor fit inside one (${describe(s, this)}), ` +
            'so no cut of the block index or of the position within a block keeps every group the same count',
        );
      }
    }
  }
  /** Atom `s`'s indices each stand for `unit` channels of the layers it sizes (see `units`). */
  setUnit(s: Space & { kind: 'atom' }, unit: number): void {
    const r = this.find(s.id);
    this.units.set(r, gcd(this.units.get(r) ?? unit, unit));
  }
  /** Channels one index of root `root` stands for (1 = one channel). */
  unitOf(root: number): number {
    return this.units.get(this.find(root)) ?? 1;
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
  /**
   * Once the graph is walked: hand every aliased root's reasons and run constraints to the atoms
   * of its alias (outer aliases first, as an alias's atoms may be aliases too). Returns the roots
   * that keep groups of their own.
   */
  finalize(): number[] {
    if (!this.finalized) {
      this.finalized = true;
      this.finalizing = true;
      const order: number[] = [];
      const state = new Map<number, 'open' | 'done'>();
      const visit = (r: number): void => {
        if (state.get(r) === 'done') return;
        if (state.get(r) === 'open') {
          this.block(this.aliases.get(r)!, 'channels defined in terms of themselves (a cyclic reshape)');
          return;
        }
        state.set(r, 'open');
        for (const id of atomsOf(this.aliases.get(r)!)) {
          const q = this.find(id);
          if (this.aliases.has(q)) visit(q);
        }
        state.set(r, 'done');
        order.push(r);
      };
      for (const r of this.aliases.keys()) visit(r);
      for (const r of order.reverse()) {
        const s = this.aliases.get(this.find(r));
        if (!s) continue;
        for (const reason of this.reasons.get(r) ?? []) this.block(s, reason);
        for (const c of this.chunks.get(r) ?? []) this.chunkSpace(s, c.parts, c.why);
      }
      this.finalizing = false;
    }
    const roots = new Set<number>();
    for (let id = 0; id < this.info.length; id++) {
      const r = this.find(id);
      if (!this.aliases.has(r)) roots.add(r);
    }
    return [...roots];
  }
  size(s: Space): number {
    switch (s.kind) {
      case 'atom':
        return this.info[s.id]!.size;
      case 'cat':
        return s.parts.reduce((a, p) => a + this.size(p), 0);
      case 'flat':
        return this.size(s.inner);
      case 'grid':
        return this.size(s.outer) * this.size(s.inner);
      case 'fixed':
        return s.size;
    }
  }
  /** The group roots whose selection decides the channels of `s` (through aliases). */
  roots(s: Space): number[] {
    const out = new Set<number>();
    const walk = (x: Space, depth: number): void => {
      for (const id of atomsOf(x)) {
        const r = this.find(id);
        const al = this.aliases.get(r);
        if (!al) out.add(r);
        else if (depth < 32) walk(al, depth + 1);
      }
    };
    walk(s, 0);
    return [...out];
  }
}

/** A short description of a space for reasons. */
export function describe(s: Space, atoms: Atoms): string {
  switch (s.kind) {
    case 'atom':
      return `'${atoms.info[s.id]!.origin}'`;
    case 'cat':
      return `concat(${s.parts.map((p) => describe(p, atoms)).join(', ')})`;
    case 'flat':
      return `flatten(${describe(s.inner, atoms)})`;
    case 'grid':
      return `${describe(s.outer, atoms)} x ${describe(s.inner, atoms)}`;
    case 'fixed':
      return `${s.size} fixed`;
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
    case 'grid':
      return [...atomsOf(s.outer), ...atomsOf(s.inner)];
    case 'fixed':
      return [];
  }
}

export function sameSpace(a: Space, b: Space, atoms: Atoms): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'atom' && b.kind === 'atom') return atoms.find(a.id) === atoms.find(b.id);
  if (a.kind === 'cat' && b.kind === 'cat')
    return a.parts.length === b.parts.length && a.parts.every((p, i) => sameSpace(p, b.parts[i]!, atoms));
  if (a.kind === 'flat' && b.kind === 'flat') return sameSpace(a.inner, b.inner, atoms);
  if (a.kind === 'grid' && b.kind === 'grid') return sameSpace(a.outer, b.outer, atoms) && sameSpace(a.inner, b.inner, atoms);
  if (a.kind === 'fixed' && b.kind === 'fixed') return a.size === b.size;
  return false;
}

/**
 * The indices kept in space `s` given the kept channels per group root (absent root = all kept).
 * `block` expands flattened spaces (features per channel).
 */
export function keptIndices(s: Space, atoms: Atoms, keep: ReadonlyMap<number, readonly number[]>, block = 1): number[] {
  const base = kept1(s, atoms, keep, 0);
  if (block === 1) return base;
  const out: number[] = [];
  for (const c of base) for (let j = 0; j < block; j++) out.push(c * block + j);
  return out;
}

function kept1(s: Space, atoms: Atoms, keep: ReadonlyMap<number, readonly number[]>, depth: number): number[] {
  switch (s.kind) {
    case 'atom': {
      const al = atoms.aliasOf(s.id);
      if (al && depth < 32) return kept1(al, atoms, keep, depth + 1);
      const k = keep.get(atoms.find(s.id));
      return k ? [...k] : range(atoms.size(s));
    }
    case 'cat': {
      const out: number[] = [];
      let off = 0;
      for (const p of s.parts) {
        for (const i of kept1(p, atoms, keep, depth)) out.push(off + i);
        off += atoms.size(p);
      }
      return out;
    }
    case 'flat':
      return kept1(s.inner, atoms, keep, depth);
    case 'grid': {
      const n = atoms.size(s.inner);
      const inner = kept1(s.inner, atoms, keep, depth);
      const out: number[] = [];
      for (const o of kept1(s.outer, atoms, keep, depth)) for (const i of inner) out.push(o * n + i);
      return out;
    }
    case 'fixed':
      return range(s.size);
  }
}

/**
 * For each channel of group `root`, the indices of `s` that are that channel (several when the
 * group appears in more than one place: a block of a grid, several concatenated parts), or null
 * when the group is not in `s`.
 */
export function groupPositions(s: Space, root: number, atoms: Atoms, depth = 0): number[][] | null {
  switch (s.kind) {
    case 'atom': {
      const al = atoms.aliasOf(s.id);
      if (al) return depth < 32 ? groupPositions(al, root, atoms, depth + 1) : null;
      return atoms.find(s.id) === root ? range(atoms.size(s)).map((i) => [i]) : null;
    }
    case 'fixed':
      return null;
    case 'flat':
      return groupPositions(s.inner, root, atoms, depth);
    case 'cat': {
      let out: number[][] | null = null;
      let off = 0;
      for (const p of s.parts) {
        const q = groupPositions(p, root, atoms, depth);
        if (q)
          out = merge(
            out,
            q.map((l) => l.map((i) => off + i)),
          );
        off += atoms.size(p);
      }
      return out;
    }
    case 'grid': {
      const no = atoms.size(s.outer),
        ni = atoms.size(s.inner);
      let out: number[][] | null = null;
      const po = groupPositions(s.outer, root, atoms, depth);
      if (po)
        out = merge(
          out,
          po.map((l) => l.flatMap((o) => range(ni).map((i) => o * ni + i))),
        );
      const pi = groupPositions(s.inner, root, atoms, depth);
      if (pi)
        out = merge(
          out,
          pi.map((l) => l.flatMap((i) => range(no).map((o) => o * ni + i))),
        );
      return out;
    }
  }
}

function merge(a: number[][] | null, b: number[][]): number[][] {
  return a ? a.map((l, i) => [...l, ...(b[i] ?? [])]) : b;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
