// Candidates are cached by content: the hash of the original model, the candidate config, the
// shapes, the calibration set and this box's identity. A re-fit with the same inputs re-uses
// every measurement and model file instead of rebuilding and re-measuring.
//
// A measurement file is written once and never rewritten (a resumed fit finds it as it was). The
// rounds a later re-timing adds beside the original go to a file of their own, `retimed-<key>.json`,
// and get() pools them with the measurement's: a later fit (the agent's training fit re-uses the
// first fit's measurements) judges a candidate on every round it was timed in, not on the first
// rounds alone, which may be the very ones a busy box skewed and that made the search time it again.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';
import type { Measured } from './search.js';
import type { LatencyRound } from './types.js';

/**
 * Re-timed rounds kept per candidate, the newest: every fit may re-time its choice once, so
 * without a bound a candidate's rounds grow with every re-fit and the oldest go stale.
 */
export const RETIMED_ROUNDS_KEPT = 9;

const isRound = (r: unknown): r is LatencyRound =>
  !!r &&
  typeof r === 'object' &&
  typeof (r as LatencyRound).candidateP50Ms === 'number' &&
  typeof (r as LatencyRound).referenceP50Ms === 'number' &&
  (r as LatencyRound).candidateP50Ms > 0 &&
  (r as LatencyRound).referenceP50Ms > 0;

/** Whether a file of a cache folder is a candidate's measurement (`<key>.json`), not the
 * sensitivity probe's (`sensitivity-<key>.json`) nor a re-timing's rounds (`retimed-<key>.json`). */
export const isMeasurementFile = (name: string): boolean => /^[0-9a-f]{24}\.json$/.test(name);

export function sha256(b: Uint8Array | string): string {
  return createHash('sha256').update(b).digest('hex');
}

export class CandidateCache {
  constructor(
    private readonly dir: string,
    private readonly salt: string,
  ) {}

  key(config: unknown): string {
    return sha256(`${this.salt}\n${JSON.stringify(config)}`).slice(0, 24);
  }

  get(key: string): Measured | undefined {
    const f = join(this.dir, `${key}.json`);
    if (!existsSync(f)) return undefined;
    try {
      const m = JSON.parse(readFileSync(f, 'utf8')) as Measured;
      // the model file must still be there and be what was measured
      if (!existsSync(m.modelPath) || sha256(readFileSync(m.modelPath)) !== m.sha256) return undefined;
      const more = m.rounds?.length ? this.retimed(key) : [];
      return more.length ? { ...m, rounds: [...m.rounds!, ...more] } : m;
    } catch {
      return undefined; // a torn or foreign file is just a cache miss
    }
  }

  put(key: string, m: Measured): void {
    writeFileAtomic(join(this.dir, `${key}.json`), JSON.stringify(m, null, 2));
  }

  /** Add rounds a re-timing measured to a cached candidate's (the newest RETIMED_ROUNDS_KEPT kept). */
  addRounds(key: string, rounds: readonly LatencyRound[]): void {
    if (!rounds.length || !existsSync(join(this.dir, `${key}.json`))) return;
    const kept = [...this.retimed(key), ...rounds].slice(-RETIMED_ROUNDS_KEPT);
    writeFileAtomic(this.retimedFile(key), JSON.stringify({ rounds: kept }, null, 2));
  }

  private retimedFile(key: string): string {
    return join(this.dir, `retimed-${key}.json`);
  }

  /** The re-timed rounds of a candidate; a torn or foreign file counts as none (the measurement stands alone). */
  private retimed(key: string): LatencyRound[] {
    const f = this.retimedFile(key);
    if (!existsSync(f)) return [];
    try {
      const r = (JSON.parse(readFileSync(f, 'utf8')) as { rounds?: unknown }).rounds;
      return Array.isArray(r) && r.every(isRound) ? r : [];
    } catch {
      return [];
    }
  }
}
