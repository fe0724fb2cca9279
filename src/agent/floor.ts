// The fidelity floor at deploy time (issue 16): a fit's choice below budgets.minFidelity is never
// deployed, whoever produced it (an old fit in the store, a foreign fitter, a search whose
// "closest candidate" rule let a fast but useless model win). The agent keeps the best entry that
// meets the floor, the original at worst, and says plainly which budget cannot be met and by how much.
import { latencyOf, meets, type Budgets, type Shortfall } from '../budgets/index.js';
import type { FrontierEntry } from '../fit/types.js';
import { ms } from '../util/format.js';

export type Prefer = 'fidelity' | 'latency';

/** The lowest fidelity the agent may deploy or step down to; null when there is none. */
export function fidelityFloor(b: Budgets, prefer: Prefer): number | null {
  return prefer === 'latency' || b.minFidelity === undefined ? null : b.minFidelity;
}

/** An entry's measurement judged against the budgets (relative latency against the original's p50). */
export function judgeEntry(e: FrontierEntry, b: Budgets, originalMs: number | null): ReturnType<typeof meets> {
  return meets(
    { latencyMs: latencyOf(e), ramMb: e.modelRssMb, fidelity: e.fidelity, sizeMb: (e.compressedBytes ?? e.sizeBytes) / 1e6 },
    b,
    originalMs,
  );
}

/**
 * What to deploy for a fit: its choice when that meets the floor, else the entry meeting the floor
 * that misses the other budgets least (ties: the higher fidelity), else null = the original.
 */
export function deployableChoice(
  frontier: readonly FrontierEntry[],
  chosenId: string,
  b: Budgets,
  prefer: Prefer,
  originalMs: number | null,
): FrontierEntry | null {
  const floor = fidelityFloor(b, prefer);
  const chosen = frontier.find((e) => e.id === chosenId) ?? null;
  if (floor === null || (chosen && chosen.fidelity >= floor)) return chosen;
  let best: { e: FrontierEntry; miss: number } | null = null;
  for (const e of frontier) {
    if (!(e.fidelity >= floor)) continue; // a NaN fidelity keeps no floor
    const r = judgeEntry(e, b, e.referenceP50Ms ?? originalMs).relative;
    // relative misses of the budgets other than fidelity, added (fidelity is the constraint here)
    const miss = r.latency + r.ram + r.size;
    if (!best || miss < best.miss || (miss === best.miss && e.fidelity > best.e.fidelity)) best = { e, miss };
  }
  return best?.e ?? null;
}

/** The shortfall of what is kept, with the figures a person needs to read it. */
export interface Unmet {
  /** By how much each failing budget is missed (src/budgets Shortfall). */
  shortfall: Shortfall;
  /** What stays deployed: a frontier entry id, or 'original'. */
  keeping: string;
  keepingFidelity: number;
  /** One line: "latency 62 ms p50 vs budget 40 ms: cannot be met; keeping <id> (fidelity 1.000 boxF1)". */
  message: string;
}

/**
 * Which budgets the kept model misses (null when it meets every one). `kept` null = the original,
 * measured at `originalMs` with fidelity 1 by definition.
 */
export function unmetBudgets(kept: FrontierEntry | null, b: Budgets, originalMs: number | null, metric: string | null): Unmet | null {
  const m = kept
    ? {
        latencyMs: latencyOf(kept),
        ramMb: kept.modelRssMb,
        fidelity: kept.fidelity,
        sizeMb: (kept.compressedBytes ?? kept.sizeBytes) / 1e6,
      }
    : { latencyMs: originalMs, fidelity: 1 };
  const ref = kept?.referenceP50Ms ?? originalMs;
  const v = meets(m, b, ref);
  if (v.ok) return null;
  const s = v.shortfall;
  const parts: string[] = [];
  if (s.latencyMs !== undefined) {
    const limit = m.latencyMs! - s.latencyMs;
    const rel = b.latencyFactor !== undefined ? ` (${b.latencyFactor}x of the original ${ms(ref!)} ms)` : '';
    parts.push(`latency ${ms(m.latencyMs!)} ms p50 vs budget ${ms(limit)} ms${rel}`);
  }
  if (s.ramMb !== undefined) parts.push(`RAM ${m.ramMb!.toFixed(0)} MB vs budget ${b.ramMb} MB`);
  if (s.sizeMb !== undefined) parts.push(`size ${m.sizeMb!.toFixed(1)} MB vs budget ${b.sizeMb} MB`);
  if (s.fidelity !== undefined) parts.push(`${metric ?? 'fidelity'} ${m.fidelity.toFixed(3)} vs floor ${b.minFidelity}`);
  const keeping = kept?.id ?? 'original';
  const fid = kept?.fidelity ?? 1;
  return {
    shortfall: s,
    keeping,
    keepingFidelity: fid,
    message: `${parts.join('; ')}: cannot be met; keeping ${keeping} (${metric ?? 'fidelity'} ${fid.toFixed(3)})`,
  };
}
