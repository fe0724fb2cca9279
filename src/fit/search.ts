// The budget search. It measures, it does not guess: every candidate is built and run on this
// box. Latency and fidelity both fall monotonically as the structured ratio grows, so for each
// precision (int8, then float) the search steps the ratio up from mild to extreme (0.25, 0.5,
// 0.75, max) until one is fast enough or falls below the fidelity floor, then bisects between
// the last slow ratio and that one: for the least-pruned fast model, or, when the fast ratios are
// all below the floor, for the most-pruned model still above it. The fidelity floor is a hard
// constraint: nothing below it is chosen or put on the frontier (unless the caller prefers
// latency, knowingly). Budgets are judged by src/budgets (meets(), on its one latency statistic,
// the p50); a relative budget on the candidate/original ratio timed in the same rounds.
// What was measured and how each candidate is judged lives in ledger.ts.
import { latencyBudgetMs, latencyOf, type Budgets, type Shortfall } from '../budgets/index.js';
import type { CandidateConfig, FrontierEntry } from './types.js';
import { oneLevelPerGraph, paretoFrontier, trainable, trainTarget } from './frontier.js';
import { sparsityForSize } from './size-search.js';
import { ms } from '../util/format.js';
import { isEdgefitError, oneLine, type ErrorCode } from '../errors.js';
import { key, SearchLedger, type SearchDeps } from './ledger.js';

export type { Measured, Retimed, SearchDeps } from './ledger.js';

export interface SearchOptions {
  budgets: Budgets;
  threads: number;
  /** Highest structured ratio tried (never prune a model to nothing). */
  maxStructured?: number;
  /** Bisection steps per precision (after the ratio ladder has bracketed the budget). */
  steps?: number;
  /** Whether to try int8 at all (the caller may know int8 does not pay on this CPU). */
  tryQuant?: boolean;
  quantMode?: CandidateConfig['quant'];
  /** Hard cap on measured candidates (a trained one, and the model named to train, aside: see measure). */
  maxCandidates?: number;
  /** What the structured ratio means: channels removed per group (uniform), MACs removed
   * with per-group ratios from the sensitivity analysis, or the fraction of latency removed as
   * the latency tables predict it. */
  structuredBy?: 'channels' | 'macs' | 'latency';
  /** Highest unstructured sparsity tried when a size budget needs it. */
  maxUnstructured?: number;
  /** 'fidelity' (default): the fidelity floor is hard. 'latency': the user trades it knowingly;
   * when nothing meets every budget the closest by latency/RAM/size is chosen whatever its fidelity. */
  prefer?: 'fidelity' | 'latency';
  /** Relative distance from the latency budget within which one measurement does not decide
   * (default 0.15: one fit timed the same original at 42 to 62 ms on a quiet box). */
  noiseBand?: number;
  /** Minutes to train one candidate after the search (see trainTarget); 0 or absent: none. */
  trainMinutes?: number;
  /** The candidate to train when it is trainable (the agent's training fit names the config its
   * first fit deployed); absent or not trainable: trainTarget's pick from this search. */
  trainFrom?: CandidateConfig;
  /** Whether the original's exact folds change its graph (the caller folded a copy): then the
   * folded original is float's unpruned candidate, the first one float tries and the twin its
   * pruned candidates must beat, while the reference stays the file as shipped. Folds alone ran
   * PP-OCRv4 det at 0.65x the shipped file, losslessly: a budget they meet needs no pruning. */
  foldsDiffer?: boolean;
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

/** Why a candidate cannot be trained here (not a fault of the fit): its note says so and the fit goes on. */
const TRAINING_REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['UNSUPPORTED', 'OVER_BUDGET', 'DATA']);

/** Ratios tried in order before any bisection: mild first, the maximum last. */
export function ratioLadder(maxS: number): number[] {
  return [...[0.25, 0.5, 0.75].filter((r) => r < maxS - 1e-9), maxS];
}

export async function searchFrontier(deps: SearchDeps, opts: SearchOptions): Promise<SearchOutcome> {
  // a MACs target can go further than a uniform channel ratio: sensitivity allocation keeps the
  // fragile groups wide and takes the rest (det at 85% of MACs removed still ran at 0.36x)
  // a latency fraction: the tables' floors (one block, 10 % of a group) and what pruning cannot
  // touch bound it; 0.8 removed is beyond what det reaches, so the ladder's top is the most it can do
  const maxS = opts.maxStructured ?? (opts.structuredBy === 'macs' ? 0.92 : opts.structuredBy === 'latency' ? 0.8 : 0.85);
  const ladder = ratioLadder(maxS);
  const steps = opts.steps ?? 3;
  const preferLatency = opts.prefer === 'latency';
  // the plan the time-left estimate starts from: the reference, int8's unpruned model, each
  // precision's ladder and bisection, the threads step and the folded original
  const precisionCount = opts.tryQuant === false ? 1 : 2;
  const perPrecision = ladder.length + steps;
  const L = new SearchLedger(deps, opts, 1 + (precisionCount - 1) + precisionCount * perPrecision + 1 + (opts.foldsDiffer ? 1 : 0));

  const by = opts.structuredBy ?? 'channels';
  const cfg = (structured: number, quant: CandidateConfig['quant']): CandidateConfig => ({
    structured,
    ...(structured > 0 && by !== 'channels' ? { structuredBy: by } : {}),
    unstructured: 0,
    quant,
    threads: opts.threads,
  });
  const reference = (await L.measure(cfg(0, 'none')))!;
  if (opts.budgets.latencyFactor !== undefined) {
    L.refLatency = latencyOf(reference);
    L.budgetMs = latencyBudgetMs(opts.budgets, L.refLatency);
    reference.meets = L.judge(reference);
  }
  if (L.ok(reference)) L.shrink(Math.max(0, opts.threads - 1));

  const precisions: CandidateConfig['quant'][] = ['none'];
  if (!L.ok(reference) && opts.tryQuant !== false) {
    const q = await L.measure(cfg(0, opts.quantMode ?? 'int8-static'));
    // int8's speed relative to float: the ratio timed in the same rounds where there is one
    const gain = (e: FrontierEntry) => e.latencyRatio ?? latencyOf(e) / (e.referenceP50Ms ?? latencyOf(reference));
    const int8Pays = (e: FrontierEntry) => gain(e) < 0.97 || L.fast(e);
    // a single slow measurement must not drop a precision: re-time it before it does
    if (q && !int8Pays(q)) await L.retime(q, 'int8 looks no faster');
    if (q && int8Pays(q) && !L.keepsFloor(q)) {
      L.notes.push(
        `int8 (${q.config.quant}) has fidelity ${q.fidelity.toFixed(4)}, below the floor ${opts.budgets.minFidelity}: int8 not searched`,
      );
      L.shrink(L.pending - perPrecision);
    } else if (q && int8Pays(q)) precisions.unshift(q.config.quant);
    else if (q) {
      L.notes.push(
        `int8 (${q.config.quant}) measured ${ms(latencyOf(q))} ms p50 vs float ${ms(latencyOf(reference))} ms` +
          `${L.retimed.has(q) ? ' (re-timed beside it)' : ''}: no gain on this box, kept float`,
      );
      L.shrink(L.pending - perPrecision);
    }
  }

  // the largest ratio known too slow: int8 is faster than float at every ratio, so where int8
  // was too slow float is too, and float's ladder starts above it
  let slowFloor = 0;
  for (const quant of L.ok(reference) ? [] : precisions) {
    const name = quant === 'none' ? 'float' : quant;
    const before = L.seen.size;
    const done = () => L.shrink(L.pending - Math.max(0, perPrecision - (L.seen.size - before)));
    const at0 = await L.decide(L.unprunedOf(quant, opts.threads));
    if (!at0) break;
    if (L.fast(at0) || !L.keepsFloor(at0)) {
      done(); // nothing to prune (s = 0 already fast enough), or nothing above it keeps the floor
      continue;
    }
    // lo: slow and above the floor; hi: fast and above the floor; bad: below the floor
    let lo = quant === 'none' ? slowFloor : 0;
    let hi: number | undefined;
    let bad: number | undefined;
    const classify = (e: FrontierEntry, r: number) => {
      if (!L.keepsFloor(e)) bad = Math.min(bad ?? Infinity, r);
      else if (L.fast(e)) hi = Math.min(hi ?? Infinity, r);
      else lo = Math.max(lo, r);
    };
    for (const r of ladder) {
      if (r <= lo) continue;
      const e = await L.decide(cfg(r, quant));
      if (!e) break;
      classify(e, r);
      if (hi !== undefined || bad !== undefined) break;
    }
    if (hi === undefined && bad === undefined) {
      L.notes.push(`${name}: even ${Math.round(maxS * 100)}% structured pruning misses the latency/RAM budget`);
      if (quant !== 'none') slowFloor = Math.max(slowFloor, lo);
      done();
      continue;
    }
    // bisect: toward the least-pruned fast model, or, while every fast ratio L.seen is below the
    // floor, toward the most-pruned model that still keeps it (nothing above a ratio below the
    // floor can be chosen, so the search does not climb past it)
    for (let i = 0; i < steps; i++) {
      const upper = Math.min(hi ?? Infinity, bad ?? Infinity);
      const mid = Math.round(((lo + upper) / 2) * 1000) / 1000;
      if (mid <= lo || mid >= upper) break;
      const e = await L.decide(cfg(mid, quant));
      if (!e) break;
      classify(e, mid);
    }
    if (quant !== 'none') slowFloor = Math.max(slowFloor, lo);
    if (hi === undefined)
      L.notes.push(
        `${name}: pruning falls below the fidelity floor ${opts.budgets.minFidelity} from ratio ${bad} on, before any ratio is fast enough; the most pruned model keeping the floor is at ${lo}`,
      );
    done();
  }

  // size: unstructured sparsity buys no speed here, only a smaller compressed file, so it is
  // searched only when a size budget is what stands between the best candidate and feasibility;
  // a bisection on the sparsity of that candidate finds the least sparse one under the budget.
  // (pick: highest fidelity; among equals (one model at several thread counts) the fewest threads)
  const pick = (pool: FrontierEntry[]) =>
    pool.reduce((a, b) => (b.fidelity > a.fidelity || (b.fidelity === a.fidelity && b.config.threads < a.config.threads) ? b : a));
  if (opts.budgets.sizeMb !== undefined) {
    const note = await sparsityForSize(L.distinct(), (c) => L.measure(c), {
      maxUnstructured: opts.maxUnstructured ?? 0.9,
      steps: Math.max(steps, 4),
    });
    if (note) L.notes.push(note);
  }

  // training (issue 18): one candidate is trained when the caller gave the time. Training raises
  // fidelity at the same latency, so it trains where that helps most (trainTarget): with nothing
  // feasible, the fast candidate closest below the floor (trained, it may keep it); else the
  // choice itself (its trained twin is as fast and closer to the original: pick takes it).
  const minutes = opts.trainMinutes ?? 0;
  // the deployed model trained (trainFrom) and now closer to the original is the choice while it
  // meets every budget: the box's model gets better, instead of being swapped for a neighbour this
  // re-run search happened to time differently
  let preferred: FrontierEntry | undefined;
  const choose = (pool: FrontierEntry[]) => (preferred && pool.includes(preferred) ? preferred : pick(pool));
  if (minutes > 0) {
    // the deployed model is what its user watches: training it raises the fidelity of the model
    // the box serves, at its latency. A re-run search can land elsewhere by timing noise alone (a
    // training fit on a loaded box distilled `l0.375` for 12 min while int8 stayed deployed).
    const given = opts.trainFrom ? await L.measure(opts.trainFrom, true) : null;
    const target = given && trainable(given) ? given : trainTarget(L.distinct(), { ok: L.ok, fast: L.fast, pick });
    if (given && target !== given) L.notes.push(`training: ${given.id}, the model named to train, is not a pruned or int8 candidate`);
    if (!target) L.notes.push('training: no pruned or int8 candidate to train (the original meets the budgets, or nothing is fast enough)');
    else {
      const kind = target.config.quant === 'none' ? 'distilled from the original' : 'trained quantization-aware';
      let e: FrontierEntry | null = null;
      try {
        e = await L.decide({ ...target.config, train: minutes });
        if (e) L.shareSpeed(e);
      } catch (err) {
        // training is on by default: a model or box it cannot train (an op outside the gradient
        // table, too little RAM for one row, no data) keeps the untrained choice and says why,
        // instead of failing a fit whose other candidates are measured and sound
        if (!isEdgefitError(err) || !TRAINING_REFUSALS.has(err.code)) throw err;
        L.notes.push(`training: ${target.id} not trained: ${oneLine(err)}`);
      }
      if (e)
        L.notes.push(
          `training: ${target.id} ${kind} for up to ${minutes} min: fidelity ${target.fidelity.toFixed(4)} -> ${e.fidelity.toFixed(4)}${L.ok(e) && !L.ok(target) ? ', now meets every budget' : ''}`,
        );
      if (e && target === given && e.fidelity > given.fidelity) preferred = e;
    }
  }

  // threads: the same model at fewer threads, fewest first that still meets every budget,
  // leaves cores to the application (and headroom when the box gets busy is the agent's
  // step-down's job); tried only for the best feasible float/int8 choice
  const feasibleNow = L.distinct().filter(L.ok);
  let best = feasibleNow.length ? choose(feasibleNow) : undefined;
  for (let t = (best?.config.threads ?? 1) - 1; best && t >= 1; t--) {
    const e = await L.decide({ ...best.config, threads: t });
    if (!e || !L.ok(e)) break;
    L.notes.push(
      `${t} thread${t > 1 ? 's' : ''} meet${t > 1 ? '' : 's'} every budget with the same model: ${best.config.threads - t} core(s) left to the application`,
    );
    if (best === preferred) preferred = e;
    best = e;
  }

  // one measurement on a shared box can pass by luck: re-time the choice beside the original
  // (unless it already was) and, when it then misses the latency budget, fall to the next best
  const confirmed = new Set<FrontierEntry>();
  for (let i = 0; deps.confirm && L.budgetMs !== null && i < 4; i++) {
    const pool = L.distinct().filter((e) => L.ok(e) && !confirmed.has(e));
    if (!pool.length) break;
    const c = choose(pool);
    if (c === reference) break; // the original within budget needs no confirmation
    confirmed.add(c);
    await L.retime(c, 'the choice');
    if (c.meets.latency) break;
    L.notes.push(`${c.id} missed the latency budget when re-timed beside the original (p50 ${ms(latencyOf(c))} ms): not chosen`);
    // the bisection's last step can leave a wide gap up to the next faster model of the same
    // precision (det 0.5x: 0.638 rejected, next 0.85 at fidelity 0.54 instead of 0.84): measure
    // the midpoint, so a miss by a hair does not cost a whole step down in fidelity
    const same = (e: FrontierEntry) =>
      e.config.quant === c.config.quant && e.config.unstructured === c.config.unstructured && e.config.threads === c.config.threads;
    const next = [...L.seen.values()]
      .filter((e) => L.ok(e) && same(e) && e.config.structured > c.config.structured)
      .sort((a, b) => a.config.structured - b.config.structured)[0];
    // (none known when the miss was a ladder rung: then the midpoint to the next rung, and the
    // rung itself if the midpoint is too slow)
    const upper = next?.config.structured ?? ladder.find((r) => r > c.config.structured + 1e-9);
    if (upper === undefined || upper - c.config.structured <= 0.02) continue;
    const mid = await L.decide({ ...c.config, structured: Math.round(((c.config.structured + upper) / 2) * 1000) / 1000 });
    if (!next && mid && !L.ok(mid)) await L.decide({ ...c.config, structured: upper });
  }

  const candidates = [...L.seen.values()];
  const feasible = L.distinct().filter(L.ok);
  let chosen: FrontierEntry;
  let shortfall: SearchOutcome['shortfall'];
  if (feasible.length) {
    chosen = choose(feasible);
  } else {
    // nothing meets every budget. By default the floor holds: the best candidate that keeps it
    // (smallest summed relative latency/RAM/size miss, then the highest fidelity) -- the
    // original at worst -- with the shortfall stated. Preferring latency, the same rule over
    // every candidate, the floor ignored.
    const r = (e: FrontierEntry) => L.verdict(e).relative;
    const miss = (e: FrontierEntry) => r(e).latency + r(e).ram + r(e).size;
    const pool = (preferLatency ? L.distinct() : L.distinct().filter((e) => e.meets.fidelity)).filter(L.pays);
    chosen = (pool.length ? pool : [reference]).reduce((a, b) =>
      miss(b) < miss(a) || (miss(b) === miss(a) && b.fidelity > a.fidelity) ? b : a,
    );
    // the shortfall is a promise to the user: state it from the choice re-timed beside the original.
    // Re-timed, it can meet every budget (its first rounds met a loaded box): then it is judged on
    // all its rounds, as any re-timed candidate is, and the fit succeeds (a CI fit ended 'no
    // candidate meets every budget' with nothing missed)
    if (chosen !== reference && L.budgetMs !== null) await L.retime(chosen, 'the choice');
    if (L.ok(chosen))
      L.notes.push(`${chosen.id} missed the budgets in the search but met every one re-timed beside the original (timing noise)`);
    else shortfall = L.verdict(chosen).shortfall;
    if (preferLatency && !chosen.meets.fidelity)
      L.notes.push(
        `prefer latency: chose ${chosen.id} at fidelity ${chosen.fidelity.toFixed(4)}, below the floor ${opts.budgets.minFidelity}, because it is the closest to the latency/RAM/size budgets`,
      );
    else if (!preferLatency && chosen === reference)
      L.notes.push('no candidate that keeps the fidelity floor gets closer to the budgets than the original: kept the original');
  }
  L.progress('done');
  // the frontier the agent steps along at run time holds only models that keep the floor, so
  // step-down cannot go below it either (unless the user preferred latency)
  const eligible = (preferLatency ? L.distinct() : L.distinct().filter((e) => e.meets.fidelity)).filter((e) => e === chosen || L.pays(e));
  const onFrontier = oneLevelPerGraph(eligible, chosen, (e) => {
    const { train: _, ...untrained } = e.config;
    return key(untrained);
  });
  return {
    chosen,
    frontier: paretoFrontier(onFrontier, chosen, L.latencyAt),
    candidates,
    reference,
    latencyBudgetMs: L.budgetMs,
    feasible: feasible.length > 0 || L.ok(chosen),
    shortfall,
    notes: L.notes,
  };
}
