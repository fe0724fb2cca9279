// What the budget search knows so far: every candidate it measured, each judged against the
// budgets, and the rules that read them (fast, ok, pays, noisy), with the measuring itself
// (measure once per config, re-time near a decision, one speed for a graph and its trained twin)
// and the time-left estimate. search.ts decides what to measure next; this module keeps the
// books, so the decisions read as a walk over ratios and not as state threaded through closures.
import { latencyBudgetMs, latencyOf, meets, rebasedLatency, type Verdict } from '../budgets/index.js';
import type { CandidateConfig, FitProgress, FrontierEntry, LatencyRound, TrainingSummary } from './types.js';
import { compressedMb } from './frontier.js';
import { applyRounds, poolRounds, prunedPays, spread } from './rounds.js';
import { ms } from '../util/format.js';
import type { SearchOptions } from './search.js';

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
  /** Interleaved original/candidate rounds; when present they decide the latency figures. */
  rounds?: LatencyRound[];
  /** What training on the box did to it (config.train). */
  training?: TrainingSummary;
  /** sha256 of the model without its metadata (FrontierEntry.contentSha); absent for the reference. */
  contentSha?: string;
}

export type Retimed = Pick<Measured, 'latencyP50Ms' | 'latencyP95Ms' | 'referenceP50Ms' | 'rounds'>;

export interface SearchDeps {
  /** Build the candidate for a config and measure it on this box (cached by the caller). */
  evaluate(config: CandidateConfig): Promise<Measured>;
  onProgress?(p: FitProgress): void;
  /** Re-time a candidate side by side with the original (several interleaved rounds): a decision
   * within the noise band of a budget, a precision about to be dropped and the final choice are
   * re-timed before they count. Returned rounds are pooled with the entry's own; without rounds
   * the figures replace the entry's. Absent: single measurements are trusted. */
  confirm?(entry: FrontierEntry): Promise<Retimed>;
  /** Clock (ms) for the time-left estimate (default performance.now). */
  now?(): number;
  /** Whether evaluate() will answer a config from a cache: such answers cost nothing and are
   * left out of the mean cost behind the time-left estimate. */
  cached?(config: CandidateConfig): boolean;
}

const KIND = { channels: 's', macs: 'm', latency: 'l' } as const;
/** A candidate's id: one per distinct config. */
export const key = (c: CandidateConfig): string =>
  `${KIND[c.structuredBy ?? 'channels']}${c.structured.toFixed(3)}-u${c.unstructured.toFixed(2)}-${c.quant}-t${c.threads}${c.folded ? '-folded' : ''}${c.train ? `-train${c.train}` : ''}`;
/** The flag only on the one config it names (a size search from the folded model prunes, and a pruned build is folded anyway). */
const canonical = (c: CandidateConfig): CandidateConfig => {
  if (!c.folded || (c.structured === 0 && c.unstructured === 0 && c.quant === 'none' && !c.train)) return c;
  const { folded: _, ...rest } = c;
  return rest;
};

export class SearchLedger {
  readonly seen = new Map<string, FrontierEntry>();
  readonly notes: string[] = [];
  /** Entries re-timed beside the original (each at most once). */
  readonly retimed = new Set<FrontierEntry>();
  /** The original's p50 at the start, once a relative latency budget needs it. */
  refLatency: number | undefined;
  budgetMs: number | null;
  /** Measurements still planned (only ever shrinks as phases end early). */
  pending: number;
  private spentMs = 0;
  private ops = 0;
  private readonly now: () => number;
  private readonly dropped = new Set<FrontierEntry>();
  private readonly sharedNoted = new Set<string>();
  private readonly cap: number;
  private readonly preferLatency: boolean;

  constructor(
    private readonly deps: SearchDeps,
    private readonly opts: SearchOptions,
    planned: number,
  ) {
    this.cap = opts.maxCandidates ?? 15;
    this.preferLatency = opts.prefer === 'latency';
    this.budgetMs = latencyBudgetMs(opts.budgets);
    this.pending = planned;
    this.now = deps.now ?? (() => performance.now());
  }

  // ---- the time-left estimate: the mean cost of what was measured (or re-timed) so far times the steps still planned ----

  readonly remaining = (): number => Math.max(0, Math.min(this.pending, this.cap - this.seen.size));
  readonly shrink = (to: number): void => {
    this.pending = Math.max(0, Math.min(this.pending, to));
  };
  readonly progress = (stage: string, message?: string): void => {
    const left = stage === 'done' ? 0 : this.remaining();
    this.deps.onProgress?.({
      fraction: Math.min(1, this.seen.size / (this.seen.size + left || 1)),
      stage,
      ...(message !== undefined ? { message } : {}),
      ...(this.ops > 0 ? { etaS: Math.round(((this.spentMs / this.ops) * left) / 100) / 10 } : {}),
    });
  };
  private async timed<T>(f: () => Promise<T>, free = false): Promise<T> {
    const t = this.now();
    const out = await f();
    if (!free) {
      this.spentMs += this.now() - t;
      this.ops++;
    }
    return out;
  }

  // ---- verdicts ----

  // the judged latency as it would be under the reference's measuring conditions: the ratio to
  // the original timed in the same rounds, or scaled by the ratio of the reference's p50 at the
  // start to its p50 timed beside this candidate
  readonly latencyAt = (e: Pick<FrontierEntry, 'latencyP50Ms' | 'latencyP95Ms' | 'referenceP50Ms' | 'latencyRatio'>): number =>
    rebasedLatency(e, this.refLatency);
  readonly verdict = (e: Omit<FrontierEntry, 'meets' | 'id'>): Verdict =>
    meets(
      { latencyMs: this.latencyAt(e), ramMb: e.modelRssMb, fidelity: e.fidelity, sizeMb: compressedMb(e) },
      this.opts.budgets,
      this.refLatency,
    );
  readonly judge = (e: Omit<FrontierEntry, 'meets' | 'id'>): FrontierEntry['meets'] => {
    const v = this.verdict(e).met;
    return { latency: v.latency !== false, ram: v.ram !== false, fidelity: v.fidelity !== false, size: v.size !== false };
  };
  /** Meets every budget, and (pruned) is faster than the same model unpruned. */
  readonly ok = (e: FrontierEntry): boolean => e.meets.latency && e.meets.ram && e.meets.fidelity && e.meets.size !== false && this.pays(e);
  readonly fast = (e: FrontierEntry): boolean => e.meets.latency && e.meets.ram && this.pays(e);
  /** The floor steers the search unless the user prefers latency. */
  readonly keepsFloor = (e: FrontierEntry): boolean => this.preferLatency || e.meets.fidelity;
  /** The entries that are models of their own (not a config that built one already measured). */
  readonly distinct = (): FrontierEntry[] => [...this.seen.values()].filter((e) => !e.sameAs);

  /** Near the budget and not settled by the rounds' spread (every round on one side of it). */
  readonly noisy = (e: FrontierEntry): boolean => {
    const budgetMs = this.budgetMs;
    const refLatency = this.refLatency;
    if (budgetMs === null) return false;
    if (Math.abs(this.latencyAt(e) / budgetMs - 1) > (this.opts.noiseBand ?? 0.15)) return false;
    const r = e.rounds;
    if (r && r.length >= 3 && refLatency !== undefined) {
      const per = r.map((x) => (x.candidateP50Ms / x.referenceP50Ms) * refLatency);
      if (per.every((x) => x <= budgetMs) || per.every((x) => x > budgetMs)) return false;
    } else if (r && r.length >= 3 && (r.every((x) => x.candidateP50Ms <= budgetMs) || r.every((x) => x.candidateP50Ms > budgetMs)))
      return false;
    return true;
  };

  // a pruned candidate not faster than its unpruned twin (measured first at every precision; for
  // float the folded original when the folds change it) is never kept: it is not fast, not
  // chosen, not on the frontier (prunedPays)
  readonly unprunedOf = (quant: CandidateConfig['quant'], threads: number): CandidateConfig => ({
    structured: 0,
    unstructured: 0,
    quant,
    threads,
    ...(quant === 'none' && this.opts.foldsDiffer ? { folded: true as const } : {}),
  });
  readonly pays = (e: FrontierEntry): boolean => {
    if (e.config.structured <= 0) return true;
    // a trained candidate is its untrained sibling's graph with other weights (the same ops and
    // shapes): whether pruning that graph paid was measured on the sibling. Timed again on a loaded
    // box, the twin alone can fall inside the noise margin (a trained l0.375 at 0.81x of the
    // unpruned model, margin 27 %, was dropped after 12 minutes of training).
    const sibling = e.config.train ? this.seen.get(key({ ...e.config, train: undefined })) : undefined;
    if (sibling && sibling !== e) return this.pays(sibling);
    const plain: CandidateConfig = { structured: 0, unstructured: 0, quant: e.config.quant, threads: e.config.threads };
    const twin = this.seen.get(key(this.unprunedOf(e.config.quant, e.config.threads))) ?? this.seen.get(key(plain));
    const v = twin && twin !== e ? prunedPays(e, twin) : null;
    if (!v || v.pays) return true;
    if (!this.dropped.has(e)) {
      this.dropped.add(e);
      this.notes.push(
        `${e.id} is not faster than the same model unpruned (${v.ratio.toFixed(2)}x of its latency, noise margin ${(v.margin * 100).toFixed(1)}%): not kept`,
      );
    }
    return false;
  };

  // ---- measuring ----

  /** Measures a config once (later asks answer from the ledger); null past the cap. */
  async measure(asked: CandidateConfig, beyondCap = false): Promise<FrontierEntry | null> {
    const config = canonical(asked);
    const k = key(config);
    const have = this.seen.get(k);
    if (have) return have;
    // the cap bounds the search's exploring; a training run is bounded by its minutes, and the
    // model named to train was measured by the fit that chose it (a cache hit): a search that
    // used every slot must not skip the training the caller gave time for
    if (this.seen.size >= this.cap && !config.train && !beyondCap) return null;
    this.progress('measure', k);
    // a training run's minutes are not what a measurement costs: counted, they put the time left
    // after it at 759 s where 10 s remained (its own progress says how long it takes)
    const m = await this.timed(() => this.deps.evaluate(config), (this.deps.cached?.(config) ?? false) || !!config.train);
    const base = applyRounds({ config, ...m, ...(m.rounds ? { rounds: [...m.rounds] } : {}) });
    const e: FrontierEntry = { id: k, ...base, meets: this.judge(base) };
    // two targets whose widths round alike build one model (det: l0.157 and l0.188): the caller
    // measured it once; the later config counts in the bisection, never as a model of its own
    const twin = e.contentSha
      ? [...this.seen.values()].find((o) => o.contentSha === e.contentSha && o.config.threads === e.config.threads)
      : undefined;
    if (twin) {
      // the twin's figures as they stand now (re-timed, perhaps): one model, one verdict
      const { latencyP50Ms, latencyP95Ms, referenceP50Ms, latencyRatio, latencyRatioMin, latencyRatioMax, rounds } = twin;
      Object.assign(e, { latencyP50Ms, latencyP95Ms, referenceP50Ms, latencyRatio, latencyRatioMin, latencyRatioMax, rounds });
      e.meets = { ...twin.meets };
      e.sameAs = twin.id;
      this.notes.push(`${k} builds the same model as ${twin.id}: measured once, not kept twice`);
    }
    this.seen.set(k, e);
    this.pending = Math.max(0, this.pending - 1);
    this.progress('measured', `${k}: p50 ${ms(latencyOf(e))} ms${spread(e)}, fidelity ${e.fidelity.toFixed(4)}`);
    return e;
  }

  /** One measurement near a decision can fall either way on a shared box: re-time it beside the
   * original (rounds pooled) before it decides; each entry at most once. */
  async retime(e: FrontierEntry, why: string): Promise<boolean> {
    if (!this.deps.confirm || this.retimed.has(e)) return false;
    this.retimed.add(e);
    this.progress('confirm', `${e.id} (${why})`);
    const r = await this.timed(() => this.deps.confirm!(e));
    if (r.rounds?.length && e.rounds?.length) e.rounds = [...e.rounds, ...r.rounds];
    else {
      Object.assign(e, r);
      if (!r.rounds?.length) {
        delete e.latencyRatio;
        delete e.latencyRatioMin;
        delete e.latencyRatioMax;
      }
    }
    applyRounds(e);
    e.meets = this.judge(e);
    this.shareSpeed(e);
    this.progress('measured', `${e.id} re-timed: p50 ${ms(latencyOf(e))} ms${spread(e)}`);
    return true;
  }

  /** Measures, and re-times what lands near the latency budget. */
  async decide(config: CandidateConfig): Promise<FrontierEntry | null> {
    const e = await this.measure(config);
    if (e && !e.sameAs && this.noisy(e)) await this.retime(e, 'near the latency budget');
    return e;
  }

  // a trained candidate and the model it was trained from are one graph with other weights: one
  // speed. Timed apart on a loaded box, one can meet the latency budget and the other miss it by
  // noise alone (an agent's QAT det timed at 0.78x of the original, its static int8 at 0.52x in
  // rounds spanning 0.47-0.90x: the better model was rejected for its timing). So both are judged
  // on their rounds pooled; each keeps its own rounds (the cache stores those).
  private untrainedOf(e: FrontierEntry): FrontierEntry | undefined {
    const s = e.config.train ? this.seen.get(key({ ...e.config, train: undefined })) : undefined;
    return s && s !== e ? s : undefined;
  }
  shareSpeed(e: FrontierEntry): void {
    const pairs = e.config.train
      ? [[this.untrainedOf(e), e] as const]
      : [...this.seen.values()].filter((x) => this.untrainedOf(x) === e).map((x) => [e, x] as const);
    for (const [u, t] of pairs) {
      if (!u || t.sameAs) continue;
      const both = poolRounds(u, t);
      if (!both) continue;
      u.meets = this.judge(u);
      t.meets = this.judge(t);
      if (!this.sharedNoted.has(t.id)) {
        this.sharedNoted.add(t.id);
        this.notes.push(
          `${t.id} is ${u.id} with trained weights, one graph: both judged on their ${both.rounds!.length} rounds pooled (p50 ${ms(latencyOf(both))} ms${spread(both)})`,
        );
      }
    }
  }
}
