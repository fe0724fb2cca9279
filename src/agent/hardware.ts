// Profile the box with src/profile (probeHardware + selectProfile) and reduce it to the facts
// whose change should trigger a re-fit, hashed.
import { createHash } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import type { Budgets } from '../budgets/index.js';

export interface HardwareFacts {
  hash: string;
  profile: string;
  budgets: Budgets;
  threads: number | null;
  hardware: Record<string, unknown>;
  throttledNow: () => boolean | null;
}

export async function profileHardware(
  profileOverride: string | null,
  log: (l: string) => void,
  factsDir: string | null = null,
): Promise<HardwareFacts> {
  try {
    const p = await import('../profile/index.js');
    const hw = await p.probeHardware({ factsDir });
    const sel = p.selectProfile(hw, profileOverride ?? undefined);
    const key = {
      arch: hw.arch,
      brand: hw.cpu.brand,
      cores: hw.cpu.cores,
      parts: hw.cpu.parts,
      memGb: Math.round(hw.memory.totalMb / 1024),
      board: (hw.board as { model?: unknown }).model ?? null,
    };
    const throttling = hw.throttling;
    return {
      hash: createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 16),
      profile: sel.profile.name,
      budgets: sel.budgets,
      threads: sel.threads,
      hardware: hw as unknown as Record<string, unknown>,
      throttledNow: () => (throttling ? Object.values(throttling.now).some((v) => v === true) : null),
    };
  } catch (e) {
    // a named profile or facts folder that cannot be used is a configuration error, not a fallback
    if (profileOverride || factsDir) throw e;
    // src/profile missing or failing must not keep the agent from serving: report and go generic
    log(`hardware profiling failed (${(e as Error).message}); using the generic profile`);
    const key = { arch: process.arch, cores: cpus().length, memGb: Math.round(totalmem() / 2 ** 30), brand: cpus()[0]?.model ?? null };
    return {
      hash: createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 16),
      profile: 'generic',
      budgets: { latencyFactor: 1 },
      threads: null,
      hardware: key,
      throttledNow: () => null,
    };
  }
}
