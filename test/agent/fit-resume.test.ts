// Resume bookkeeping of interrupted fits (issue 21), on a real SQLite file: a fit left 'running'
// by a kill is resumed by the next start (same row, a 'fit-resumed' event), a clean stop does not
// count as a crash, a fit interrupted MAX_FIT_STARTS starts in a row is failed instead of looping,
// and an interrupted fit whose key no longer matches (budgets changed) is failed, not resumed.
// The fitter is injected (it hangs like a fit killed mid-way, or answers); the real process
// killed with SIGKILL mid-fit is test/agent/resume-kill.test.ts.
import t from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { cleanupDir } from '../../devkit/broker.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { BudgetStore } from '../../src/agent/budget-store.js';
import { AgentBus } from '../../src/agent/bus.js';
import { FitManager, MAX_FIT_STARTS } from '../../src/agent/fit-manager.js';
import type { HardwareFacts } from '../../src/agent/hardware.js';
import type { Budgets, FitRequest, Fitter, FrontierEntry } from '../../src/fit/types.js';
import { Store } from '../../src/store/index.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-fit-resume-'));
t.teardown(() => cleanupDir(dir));
const sha = createHash('sha256').update(readFileSync(CLS_MODEL)).digest('hex');
const hw: HardwareFacts = {
  hash: 'hw-test',
  profile: 'generic',
  budgets: {},
  threads: 1,
  hardware: {},
  throttledNow: () => null,
};

function entry(): FrontierEntry {
  return {
    id: 'reference',
    config: { structured: 0, unstructured: 0, quant: 'none', threads: 1 },
    modelPath: CLS_MODEL,
    sha256: sha,
    sizeBytes: 1,
    latencyP50Ms: 1,
    latencyP95Ms: 1,
    modelRssMb: 1,
    fidelity: 1,
    meets: { latency: true, ram: true, fidelity: true },
  };
}

interface Started {
  fm: FitManager;
  events: Array<{ type: string; data: Record<string, unknown> }>;
  reqs: FitRequest[];
}

/** One agent start on the shared state: its fit hangs (killed mid-fit) unless `answer`. */
async function start(store: Store, budgets: Budgets, answer = false): Promise<Started> {
  const bus = new AgentBus();
  const events: Started['events'] = [];
  bus.on('event', (type, _m, data) => events.push({ type, data }));
  const reqs: FitRequest[] = [];
  const fitter: Fitter = (req) => {
    reqs.push(req);
    return answer
      ? Promise.resolve({ chosenId: 'reference', frontier: [entry()], referenceLatencyP50Ms: 1, fitter: 'test', cacheHits: 0 })
      : new Promise(() => undefined);
  };
  const fm = new FitManager({
    bus,
    store,
    budgets: new BudgetStore(store, budgets, () => undefined),
    model: { path: CLS_MODEL, sha256: sha, shapes: { x: [1, 3, 48, 192] }, calib: undefined },
    mode: 'auto',
    threads: 1,
    hw: () => hw,
    deployed: () => undefined,
    fitDir: (id) => join(dir, 'fits', String(id)),
    log: () => undefined,
    fitter,
  });
  fm.start();
  // the fit is begun (or resumed) on the next turns
  for (let i = 0; i < 20 && reqs.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  return { fm, events, reqs };
}

t.test('a killed fit resumes on the same row; a clean stop does not count; the third crash fails it', async (t) => {
  const store = new Store(join(dir, 'a.db'));
  t.teardown(() => store.close());
  const b: Budgets = { latencyMs: 100, minFidelity: 0.9 };

  const s1 = await start(store, b); // killed: never stopped
  t.equal(s1.events[0]?.type, 'fit-started');
  const fitId = s1.events[0]!.data.fitId as number;
  t.equal(store.fitStarts(fitId), 1);

  const s2 = await start(store, b); // resumed, then stopped cleanly (SIGTERM)
  const r2 = s2.events.find((e) => e.type === 'fit-resumed');
  t.ok(r2, 'fit-resumed event');
  t.equal(r2!.data.fitId, fitId, 'same fit id');
  t.equal(r2!.data.starts, 2);
  t.equal(s2.reqs[0]!.outputDir, join(dir, 'fits', String(fitId)), 'same output folder: its cache is re-used');
  t.notOk(
    s2.events.some((e) => e.type === 'fit-started'),
    'no new fit',
  );
  s2.fm.stop();
  t.equal(store.getFit(fitId)!.status, 'running', 'a clean stop leaves it resumable');
  t.equal(store.fitStarts(fitId), 1, 'a clean stop is not counted as a crash');

  for (let i = 2; i <= MAX_FIT_STARTS; i++) {
    const s = await start(store, b); // resumed, killed
    t.equal(s.events.find((e) => e.type === 'fit-resumed')?.data.starts, i, `start ${i} resumes`);
  }
  t.equal(store.fitStarts(fitId), MAX_FIT_STARTS);
  const last = await start(store, b, true);
  const failed = last.events.find((e) => e.type === 'fit-failed');
  t.equal(failed?.data.fitId, fitId, `failed after ${MAX_FIT_STARTS} crashed starts`);
  t.match(String(failed?.data.error), /interrupted 3 starts in a row/);
  t.equal(store.getFit(fitId)!.status, 'failed');
  const fresh = last.events.find((e) => e.type === 'fit-started');
  t.ok(fresh && fresh.data.fitId !== fitId, 'a new fit starts instead');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(store.getFit(fresh!.data.fitId as number)!.status, 'done');
  t.equal(store.runningFits().length, 0);
});

t.test('an interrupted fit for other budgets is failed, not resumed', async (t) => {
  const store = new Store(join(dir, 'b.db'));
  t.teardown(() => store.close());
  const s1 = await start(store, { latencyMs: 100 });
  const fitId = s1.events[0]!.data.fitId as number;
  const s2 = await start(store, { latencyMs: 50 }, true);
  t.notOk(s2.events.some((e) => e.type === 'fit-resumed'));
  await new Promise((r) => setTimeout(r, 20));
  t.equal(store.getFit(fitId)!.status, 'failed');
  t.match(store.getFit(fitId)!.error!, /not resumed/);
});
