// What the fit keeps of its measured candidates: the frontier the agent steps along at run time,
// and the one candidate training helps most. Pure functions of measured entries; search.ts
// measures and decides which entries are eligible.
import { latencyOf } from '../budgets/index.js';
import type { FrontierEntry } from './types.js';

/** Compressed size in MB (the file size when the gzip size was not measured). */
export const compressedMb = (e: Pick<FrontierEntry, 'sizeBytes' | 'compressedBytes'>): number => (e.compressedBytes ?? e.sizeBytes) / 1e6;

/**
 * Entries no other entry beats on both latency and fidelity, slowest (least compressed) first.
 * `lat` is the latency the fit judges by: its p50 re-based by the original timed beside it, so a
 * candidate timed while the box was loaded is neither dropped nor misplaced for its raw p50 (det:
 * `l0.250` at 0.46x the original, timed at 97 ms beside a 2.5x slower original, fell behind
 * `l0.188` at 0.54x and 39 ms, and left the frontier).
 */
export function paretoFrontier(
  all: FrontierEntry[],
  mustKeep?: FrontierEntry,
  lat: (e: FrontierEntry) => number = latencyOf,
): FrontierEntry[] {
  const front = all.filter(
    (e) => !all.some((o) => o !== e && lat(o) <= lat(e) && o.fidelity >= e.fidelity && (lat(o) < lat(e) || o.fidelity > e.fidelity)),
  );
  if (mustKeep && !front.includes(mustKeep)) front.push(mustKeep);
  return front.sort((a, b) => lat(b) - lat(a));
}

/** Training recovers what pruning or int8 took: an untrained pruned float model, or static int8. */
export const trainable = (e: Pick<FrontierEntry, 'config'>): boolean =>
  !e.config.train && (e.config.quant === 'int8-static' || (e.config.quant === 'none' && e.config.structured > 0));

/**
 * The candidate training helps most, or undefined: with a feasible one, the choice (pick); else
 * the fast one (meets latency, RAM and size) with the highest fidelity below the floor. Only
 * pruned or int8-static candidates (the original has nothing to recover; dynamic int8 and fp16
 * are not trained), never one already trained.
 */
export function trainTarget(
  pool: readonly FrontierEntry[],
  f: { ok(e: FrontierEntry): boolean; fast(e: FrontierEntry): boolean; pick(p: FrontierEntry[]): FrontierEntry },
): FrontierEntry | undefined {
  const feasible = pool.filter((e) => f.ok(e));
  if (feasible.length) {
    const c = f.pick(feasible);
    return trainable(c) ? c : undefined;
  }
  const below = pool.filter((e) => trainable(e) && f.fast(e) && e.meets.size !== false && !e.meets.fidelity);
  return below.length ? below.reduce((a, b) => (b.fidelity > a.fidelity ? b : a)) : undefined;
}

/**
 * A trained candidate and the one it was trained from are one graph with other weights: one speed
 * measured twice (0.559x and 0.554x the original in one run), so only the better of the two is a
 * level (a step down from one to the other would cost fidelity and gain nothing). `graphOf` names
 * an entry's graph (its config without the training); the chosen entry always stays.
 */
export function oneLevelPerGraph(
  eligible: readonly FrontierEntry[],
  chosen: FrontierEntry,
  graphOf: (e: FrontierEntry) => string,
): FrontierEntry[] {
  const better = (o: FrontierEntry, e: FrontierEntry): boolean =>
    o.fidelity > e.fidelity || (o.fidelity === e.fidelity && !!o.config.train && !e.config.train);
  return eligible.filter((e) => e === chosen || !eligible.some((o) => o !== e && graphOf(o) === graphOf(e) && better(o, e)));
}
