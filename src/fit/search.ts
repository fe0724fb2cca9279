// The budget search. It measures, it does not guess: every candidate is built and run on this
// box. Latency and fidelity both fall monotonically as the structured ratio grows, so for each
// precision (float, int8) a bisection on the global ratio finds the least-pruned model that
// meets the latency budget in a handful of measurements; the best feasible one wins. Budgets are
// judged by src/budgets (meets(), on its one latency statistic, the p50).
import { latencyBudgetMs, latencyOf, meets, type Budgets, type Shortfall, type Verdict } from '../budgets/index.js';
import type { CandidateConfig, FitProgress, FrontierEntry } from './types.js';

export interface Measured {
  latencyP50Ms: number;
  latencyP95Ms: number;
  modelRssMb: number;
  fidelity: number;
  sizeBytes: number;
  /** gzip size (judged against a size budget). */
  compressedBytes?: number;
  modelPath: string;
  sha256: string;
  /** p50 of the original timed right beside this candidate (relative budgets only): on a shared
   * box the load drifts over a long search, so latency is judged as a ratio to this. */
  referenceP50Ms?: number;
}

export interface SearchDeps {
  /** Build the candidate for a config and measure it on this box (cached by the caller). */
  evaluate(config: CandidateConfig): Promise<Measured>;
  onProgress?(p: FitProgress): void;
  /** Re-time a candidate side by side with the original (several interleaved rounds): the
   * choice is confirmed before it is returned. Absent: single measurements are trusted. */
  confirm?(entry: FrontierEntry): Promise<Pick<Measured, 'latencyP50Ms' | 'latencyP95Ms' | 'referenceP50Ms'>>;
}

export interface SearchOptions {
  budgets: Budgets;
  threads: number;
  /** Highest structured ratio tried (never prune a model to nothing). */
  maxStructured?: number;
  /** Bisection steps per precision. */
  steps?: number;
  /** Whether to try int8 at all (the caller may know int8 does not pay on this CPU). */
  tryQuant?: boolean;
  quantMode?: CandidateConfig['quant'];
  /** Hard cap on measured candidates. */
  maxCandidates?: number;
  /** What the structured ratio means: channels removed per group (uniform), or MACs removed
   * with per-group ratios from the sensitivity analysis. */
  structuredBy?: 'channels' | 'macs';
  /** Highest unstructured sparsity tried when a size budget needs it. */
  maxUnstructured?: number;
}

export interface SearchOutcome {
  chosen: FrontierEntry;
  frontier: FrontierEntry[];
  candidates: FrontierEntry[];
  reference: FrontierEntry;
  latencyBudgetMs: number | null;
  feasible: boolean;
  shortfall?: Shortfall;
  notes: string[];
}

const key = (c: CandidateConfig) =>
  `${c.structuredBy === 'macs' ? 'm' : 's'}${c.structured.toFixed(3)}-u${c.unstructured.toFixed(2)}-${c.quant}-t${c.threads}`;

export async function searchFrontier(deps: SearchDeps, opts: SearchOptions): Promise<SearchOutcome> {
  // a MACs target can go further than a uniform channel ratio: sensitivity allocation keeps the
  // fragile groups wide and takes the rest (det at 85% of MACs removed still ran at 0.36x)
  const maxS = opts.maxStructured ?? (opts.structuredBy === 'macs' ? 0.92 : 0.85);
  const steps = opts.steps ?? 4;
  const cap = opts.maxCandidates ?? 15;
  const notes: string[] = [];
  const seen = new Map<string, FrontierEntry>();
  let budgetMs: number | null = latencyBudgetMs(opts.budgets);
  const progress = (stage: string, message?: string) => deps.onProgress?.({ fraction: Math.min(1, seen.size / cap), stage, message });

  let refLatency: number | undefined;
  // the judged latency as it would be under the reference's measuring conditions: scaled by the
  // ratio of the reference's p50 at the start to its p50 timed beside this candidate
  const latencyAt = (e: Pick<FrontierEntry, 'latencyP50Ms' | 'latencyP95Ms' | 'referenceP50Ms'>) =>
    refLatency !== undefined && e.referenceP50Ms ? (latencyOf(e) * refLatency) / e.referenceP50Ms : latencyOf(e);
  const verdict = (e: Omit<FrontierEntry, 'meets' | 'id'>): Verdict =>
    meets({ latencyMs: latencyAt(e), ramMb: e.modelRssMb, fidelity: e.fidelity, sizeMb: compressedMb(e) }, opts.budgets, refLatency);
  const judge = (e: Omit<FrontierEntry, 'meets' | 'id'>): FrontierEntry['meets'] => {
    const v = verdict(e).met;
    return { latency: v.latency !== false, ram: v.ram !== false, fidelity: v.fidelity !== false, size: v.size !== false };
  };

  async function measure(config: CandidateConfig): Promise<FrontierEntry | null> {
    const k = key(config);
    const have = seen.get(k);
    if (have) return have;
    if (seen.size >= cap) return null;
    progress('measure', k);
    const m = await deps.evaluate(config);
    const base = { config, ...m };
    const e: FrontierEntry = { id: k, ...base, meets: judge(base) };
    seen.set(k, e);
    progress('measured', `${k}: p50 ${latencyOf(m).toFixed(1)} ms, fidelity ${m.fidelity.toFixed(4)}`);
    return e;
  }
  const ok = (e: FrontierEntry) => e.meets.latency && e.meets.ram && e.meets.fidelity && e.meets.size !== false;
  const fast = (e: FrontierEntry) => e.meets.latency && e.meets.ram;

  const by = opts.structuredBy ?? 'channels';
  const cfg = (structured: number, quant: CandidateConfig['quant']): CandidateConfig => ({
    structured,
    ...(structured > 0 && by === 'macs' ? { structuredBy: by } : {}),
    unstructured: 0,
    quant,
    threads: opts.threads,
  });
  const reference = (await measure(cfg(0, 'none')))!;
  if (opts.budgets.latencyFactor !== undefined) {
    refLatency = latencyOf(reference);
    budgetMs = latencyBudgetMs(opts.budgets, refLatency);
    reference.meets = judge(reference);
  }

  const precisions: CandidateConfig['quant'][] = ['none'];
  if (!ok(reference) && opts.tryQuant !== false) {
    const q = await measure(cfg(0, opts.quantMode ?? 'int8-static'));
    if (q && q.latencyP50Ms < reference.latencyP50Ms * 0.97) precisions.unshift(q.config.quant);
    else if (q)
      notes.push(
        `int8 (${q.config.quant}) measured ${q.latencyP50Ms.toFixed(1)} ms p50 vs float ${reference.latencyP50Ms.toFixed(1)} ms: no gain on this box, kept float`,
      );
  }

  for (const quant of ok(reference) ? [] : precisions) {
    const at0 = await measure(cfg(0, quant));
    if (!at0 || fast(at0)) continue; // nothing to prune: s = 0 already fast enough (or cap hit)
    const top = await measure(cfg(maxS, quant));
    if (!top) break;
    if (!fast(top)) {
      notes.push(`${quant === 'none' ? 'float' : quant}: even ${Math.round(maxS * 100)}% structured pruning misses the latency/RAM budget`);
      continue;
    }
    // invariant: lo fails the latency/RAM budget, hi meets it
    let lo = 0;
    let hi = maxS;
    for (let i = 0; i < steps; i++) {
      const mid = Math.round(((lo + hi) / 2) * 1000) / 1000;
      const e = await measure(cfg(mid, quant));
      if (!e) break;
      if (fast(e)) hi = mid;
      else lo = mid;
    }
  }

  // size: unstructured sparsity buys no speed here, only a smaller compressed file, so it is
  // searched only when a size budget is what stands between the best candidate and feasibility;
  // a bisection on the sparsity of that candidate finds the least sparse one under the budget.
  // (pick: highest fidelity; among equals (one model at several thread counts) the fewest threads)
  const pick = (pool: FrontierEntry[]) =>
    pool.reduce((a, b) => (b.fidelity > a.fidelity || (b.fidelity === a.fidelity && b.config.threads < a.config.threads) ? b : a));
  if (opts.budgets.sizeMb !== undefined) {
    // the base is the best candidate that meets everything but size; among those within 0.01
    // fidelity of the best, the smallest (int8 is ~4x smaller for almost nothing): it needs the
    // least sparsity, so takes the least extra damage
    const apartFromSize = [...seen.values()].filter((e) => e.meets.latency && e.meets.ram && e.meets.fidelity);
    const top = apartFromSize.length ? Math.max(...apartFromSize.map((e) => e.fidelity)) : 0;
    const near = apartFromSize.filter((e) => e.fidelity >= top - 0.01);
    const base = near.length
      ? near.reduce((a, b) =>
          compressedMb(b) < compressedMb(a) || (compressedMb(b) === compressedMb(a) && b.fidelity > a.fidelity) ? b : a,
        )
      : undefined;
    if (base && base.meets.size === false) {
      const maxU = opts.maxUnstructured ?? 0.9;
      const at = (u: number) => measure({ ...base.config, unstructured: u });
      const most = await at(maxU);
      if (most && most.meets.size) {
        let lo = 0;
        let hi = maxU;
        for (let i = 0; i < steps; i++) {
          const mid = Math.round(((lo + hi) / 2) * 100) / 100;
          if (mid <= lo || mid >= hi) break;
          const e = await at(mid);
          if (!e) break;
          if (e.meets.size) hi = mid;
          else lo = mid;
        }
      } else if (most)
        notes.push(
          `even ${Math.round(maxU * 100)}% unstructured sparsity leaves ${compressedMb(most).toFixed(2)} MB compressed: the size budget needs more structured pruning`,
        );
    } else if (!base)
      notes.push('no candidate meets the latency, RAM and fidelity budgets, so unstructured sparsity for the size budget was not tried');
  }

  // threads: the same model at fewer threads, fewest first that still meets every budget,
  // leaves cores to the application (and headroom when the box gets busy is the agent's
  // step-down's job); tried only for the best feasible float/int8 choice
  const feasibleNow = [...seen.values()].filter(ok);
  let best = feasibleNow.length ? pick(feasibleNow) : undefined;
  for (let t = (best?.config.threads ?? 1) - 1; best && t >= 1; t--) {
    const e = await measure({ ...best.config, threads: t });
    if (!e || !ok(e)) break;
    notes.push(
      `${t} thread${t > 1 ? 's' : ''} meet${t > 1 ? '' : 's'} every budget with the same model: ${best.config.threads - t} core(s) left to the application`,
    );
    best = e;
  }

  // one measurement on a shared box can pass by luck: re-time the choice beside the original and,
  // when it then misses the latency budget, fall to the next-best feasible candidate
  const confirmed = new Set<FrontierEntry>();
  for (let i = 0; deps.confirm && budgetMs !== null && i < 4; i++) {
    const pool = [...seen.values()].filter((e) => ok(e) && !confirmed.has(e));
    if (!pool.length) break;
    const c = pick(pool);
    if (c === reference) break; // the original within budget needs no confirmation
    progress('confirm', c.id);
    const r = await deps.confirm(c);
    confirmed.add(c);
    Object.assign(c, r);
    c.meets = judge(c);
    if (c.meets.latency) break;
    notes.push(`${c.id} missed the latency budget when re-timed beside the original (p50 ${latencyOf(r).toFixed(1)} ms): not chosen`);
    // the bisection's last step can leave a wide gap up to the next faster model of the same
    // precision (det 0.5x: 0.638 rejected, next 0.85 at fidelity 0.54 instead of 0.84): measure
    // the midpoint, so a miss by a hair does not cost a whole step down in fidelity
    const same = (e: FrontierEntry) =>
      e.config.quant === c.config.quant && e.config.unstructured === c.config.unstructured && e.config.threads === c.config.threads;
    const next = [...seen.values()]
      .filter((e) => ok(e) && same(e) && e.config.structured > c.config.structured)
      .sort((a, b) => a.config.structured - b.config.structured)[0];
    if (next && next.config.structured - c.config.structured > 0.02)
      await measure({ ...c.config, structured: Math.round(((c.config.structured + next.config.structured) / 2) * 1000) / 1000 });
  }

  const candidates = [...seen.values()];
  const feasible = candidates.filter(ok);
  let chosen: FrontierEntry;
  let shortfall: SearchOutcome['shortfall'];
  if (feasible.length) {
    chosen = pick(feasible);
  } else {
    // closest: the smallest total relative miss across the budgets
    const miss = (e: FrontierEntry) => Object.values(verdict(e).relative).reduce((a, b) => a + b, 0);
    chosen = candidates.reduce((a, b) => (miss(b) < miss(a) ? b : a));
    shortfall = verdict(chosen).shortfall;
  }
  progress('done');
  return {
    chosen,
    frontier: paretoFrontier(candidates, chosen),
    candidates,
    reference,
    latencyBudgetMs: budgetMs,
    feasible: feasible.length > 0,
    shortfall,
    notes,
  };
}

/** Compressed size in MB (the file size when the gzip size was not measured). */
export const compressedMb = (e: Pick<Measured, 'sizeBytes' | 'compressedBytes'>) => (e.compressedBytes ?? e.sizeBytes) / 1e6;

/** Entries no other entry beats on both (judged) latency and fidelity, slowest (least compressed) first. */
export function paretoFrontier(all: FrontierEntry[], mustKeep?: FrontierEntry): FrontierEntry[] {
  const lat = latencyOf;
  const front = all.filter(
    (e) => !all.some((o) => o !== e && lat(o) <= lat(e) && o.fidelity >= e.fidelity && (lat(o) < lat(e) || o.fidelity > e.fidelity)),
  );
  if (mustKeep && !front.includes(mustKeep)) front.push(mustKeep);
  return front.sort((a, b) => lat(b) - lat(a));
}
