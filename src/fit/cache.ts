// Candidates are cached by content: the hash of the original model, the candidate config, the
// shapes, the calibration set and this box's identity. A re-fit with the same inputs re-uses
// every measurement and model file instead of rebuilding and re-measuring.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';
import type { Measured } from './search.js';

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
      return m;
    } catch {
      return undefined; // a torn or foreign file is just a cache miss
    }
  }

  put(key: string, m: Measured): void {
    writeFileAtomic(join(this.dir, `${key}.json`), JSON.stringify(m, null, 2));
  }
}
