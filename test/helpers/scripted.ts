// Scripted stand-ins shared by the agent's step-down tests (stepdown, first-run, serve-adapt):
// bus events awaited by type,
// frontier entries over tiny files that hold their own name, a fitter returning a fixed
// two-level frontier, and a latency source reporting whatever p50 the test scripts per model.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { LatencyStats } from '../../src/agent/latency.js';
import type { LatencySource } from '../../src/agent/prober.js';
import type { Agent } from '../../src/agent/agent.js';
import type { Fitter, FrontierEntry } from '../../src/fit/types.js';

/** A float frontier entry; above the profiles' fidelity floor (0.98) unless structured says otherwise. */
export function entry(id: string, path: string, latencyP50Ms: number, structured: number): FrontierEntry {
  const bytes = readFileSync(path);
  return {
    id,
    config: { structured, unstructured: 0, quant: 'none', threads: 1 },
    modelPath: path,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    sizeBytes: bytes.length,
    latencyP50Ms,
    latencyP95Ms: latencyP50Ms * 1.2,
    modelRssMb: 10,
    // step-down never goes below the floor (issue 16): the pruned level keeps it
    fidelity: structured ? 0.99 : 1,
    meets: { latency: true, ram: true, fidelity: true },
  };
}

/** A fitter that returns a fixed two-level frontier, chosen = the big one (it met the budget when fitted). */
export const twoLevels =
  (big: FrontierEntry, small: FrontierEntry): Fitter =>
  async () => ({ chosenId: 'big', frontier: [big, small], referenceLatencyP50Ms: big.latencyP50Ms, fitter: 'test-two-level' });

/** Reports, for whichever model is loaded, the p50 the test scripts for it (100 ms if none); records every probe. */
export class ScriptedLatency implements LatencySource {
  model: string | undefined;
  p50: Record<string, number> = {};
  readonly probes: Array<{ model: string; p50: number }> = [];
  modelRssMb = 0;
  get loaded(): boolean {
    return this.model !== undefined;
  }
  async load(path: string): Promise<void> {
    this.model = readFileSync(path, 'utf8'); // the test's model files hold their own name
    this.modelRssMb = 10;
  }
  async measure(runs: number): Promise<LatencyStats> {
    const p50 = this.p50[this.model!] ?? 100;
    this.probes.push({ model: this.model!, p50 });
    return { p50, p95: p50, runs };
  }
  async close(): Promise<void> {
    this.model = undefined;
  }
}

export interface Ev {
  type: string;
  data: Record<string, unknown>;
}
/** The agent's bus events as they come, and a wait for the next one of a type (and predicate). */
export function events(agent: Agent): { all: Ev[]; next(type: string, timeoutMs: number, where?: (e: Ev) => boolean): Promise<Ev> } {
  const all: Ev[] = [];
  const waiting: Array<(e: Ev) => void> = [];
  agent.bus.on('event', (type, _m, data) => {
    all.push({ type, data });
    for (const w of waiting.splice(0)) w({ type, data });
  });
  return {
    all,
    next: (type, timeoutMs, where = () => true) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no '${type}' event within ${timeoutMs} ms`)), timeoutMs);
        const wait = (e: Ev): void => {
          if (e.type !== type || !where(e)) return void waiting.push(wait);
          clearTimeout(timer);
          resolve(e);
        };
        waiting.push(wait);
      }),
  };
}
