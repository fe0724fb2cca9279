// kill -9 mid-fit, then restart (issue 21): a real agent process with the real fitter (fitModel in
// its child) on the small PP-OCR cls model and its real images. The restarted agent goes on with
// the same fit (same id, a 'fit-resumed' event saying how many measured candidates it re-uses),
// completes it, and the candidates measured before the kill are cache hits: their measurement
// files are neither rewritten nor re-timed, and fit-done counts at least that many hits. A SIGTERM
// during the resumed fit leaves it resumable and is not counted as a crash.
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { ROOT } from '../../devkit/paths.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { startAgentProc } from '../helpers/agent-proc.js';
import { Store } from '../../src/store/index.js';
import { isMeasurementFile } from '../../src/fit/cache.js';
import { checkPayload } from '../../src/telemetry/validate.js';

const broker = await startBroker();
const dir = mkdtempSync(join(tmpdir(), 'edgefit-resume-kill-'));
const state = join(dir, 'state');
const dev = 'dev-resume';
const pre = `edgefit/${dev}/`;
const w = await Watcher.connect(broker.url, [`${pre}#`]);
t.teardown(async () => {
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});
// one thread, no training fit; a latency budget the search has to work for
const config = join(dir, 'agent.json');
writeFileSync(config, JSON.stringify({ threads: 1, train: { minutes: 0 }, budgets: { latencyFactor: 0.5, minFidelity: 0.9 } }));
const args = ['--config', config, '--calib', join(ROOT, 'test/fixtures/ocr/cls'), '--no-serve'];
const isEvent = (type: string) => (m: { topic: string; json(): any }) => m.topic === `${pre}events` && m.json().type === type;

/** The measurement files (one per measured candidate) in a fit's cache, with their bytes and mtimes
 * (not the sensitivity table, nor the rounds a re-timing adds beside a measurement: cache.ts). */
function measured(fitId: number): Map<string, { mtimeMs: number; text: string }> {
  const cache = join(state, 'fits', String(fitId), 'cache');
  const out = new Map<string, { mtimeMs: number; text: string }>();
  let names: string[] = [];
  try {
    names = readdirSync(cache);
  } catch {
    return out;
  }
  for (const f of names.filter(isMeasurementFile)) {
    out.set(f, { mtimeMs: statSync(join(cache, f)).mtimeMs, text: readFileSync(join(cache, f), 'utf8') });
  }
  return out;
}

t.test('kill -9 mid-fit: the restarted agent resumes the fit and re-uses what was measured', async (t) => {
  const a1 = startAgentProc({ broker: broker.url, deviceId: dev, stateDir: state, fitter: 'auto', extraArgs: args });
  t.teardown(() => {
    a1.child.kill('SIGKILL');
  });
  const started = (await w.waitFor(isEvent('fit-started'), 120_000, 0, 'fit-started')).json();
  const fitId = started.data.fitId as number;
  // kill once two candidates are measured (and the fit is not done)
  const t0 = Date.now();
  while (measured(fitId).size < 2) {
    if (Date.now() - t0 > 300_000) throw new Error(`no two measured candidates in 300 s:\n${a1.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  a1.child.kill('SIGKILL');
  await a1.exited;
  t.notOk(w.msgs.some(isEvent('fit-done')), 'killed mid-fit');
  await new Promise((r) => setTimeout(r, 500)); // the fit child sees its parent gone and exits
  const before = measured(fitId);
  t.comment(`killed after ${Math.round((Date.now() - t0) / 1000)} s with ${before.size} measured candidates in fit ${fitId}`);
  const s = new Store(join(state, 'state.db'));
  t.equal(s.getFit(fitId)!.status, 'running', 'the killed fit is left running (resumable)');
  s.close();

  // restart; the resumed fit is stopped cleanly (SIGTERM) once, which does not count as a crash
  let from = w.msgs.length;
  const a2 = startAgentProc({ broker: broker.url, deviceId: dev, stateDir: state, fitter: 'auto', extraArgs: args });
  t.teardown(() => {
    a2.child.kill('SIGKILL');
  });
  const resumed = checkPayload('event', (await w.waitFor(isEvent('fit-resumed'), 120_000, from, 'fit-resumed')).json()) as any;
  t.comment(resumed.message);
  t.equal(resumed.data.fitId, fitId, 'the same fit goes on');
  t.equal(resumed.data.starts, 2);
  t.ok(resumed.data.reusedCandidates >= before.size, `re-uses ${resumed.data.reusedCandidates} >= ${before.size} measured candidates`);
  t.notOk(w.msgs.slice(from).some(isEvent('fit-started')), 'no new fit is started');
  a2.child.kill('SIGTERM');
  t.equal(await a2.exited, 0, 'SIGTERM mid-fit exits 0');
  const s1 = new Store(join(state, 'state.db'));
  t.equal(s1.getFit(fitId)!.status, 'running', 'a clean stop leaves the fit resumable, not failed');
  t.equal(s1.fitStarts(fitId), 1, 'the clean stop is not counted as a crash');
  s1.close();
  const mid = measured(fitId);

  from = w.msgs.length;
  const a3 = startAgentProc({ broker: broker.url, deviceId: dev, stateDir: state, fitter: 'auto', extraArgs: args });
  t.teardown(() => {
    a3.child.kill('SIGKILL');
  });
  const again = (await w.waitFor(isEvent('fit-resumed'), 120_000, from, 'fit-resumed after SIGTERM')).json();
  t.comment(again.message);
  t.equal(again.data.fitId, fitId);
  t.equal(again.data.starts, 2, 'start 2 again: the SIGTERM did not count');
  t.ok(again.data.reusedCandidates >= mid.size);
  const done = (await w.waitFor(isEvent('fit-done'), 600_000, from, 'fit-done')).json();
  t.comment(done.message);
  t.equal(done.data.fitId, fitId, 'the resumed fit completes');
  t.ok(done.data.cacheHits >= before.size, `${done.data.cacheHits} cache hits >= ${before.size} measured before the kill`);
  const after = measured(fitId);
  for (const [f, m] of mid) {
    t.same(after.get(f), m, `measurement ${f} was not redone`);
  }
  t.ok(done.data.cacheHits >= mid.size, `${done.data.cacheHits} cache hits >= ${mid.size} measured before the last restart`);
  t.ok(after.size >= before.size);
  t.comment(`measured ${before.size} before the kill, ${after.size - before.size} after the restart`);
  a3.child.kill('SIGTERM');
  t.equal(await a3.exited, 0);
  const s2 = new Store(join(state, 'state.db'));
  t.equal(s2.getFit(fitId)!.status, 'done');
  t.equal(s2.runningFits().length, 0);
  t.equal(s2.getKv(`fit-starts:${fitId}`), undefined, 'no start count left behind (finished fits have none)');
  s2.close();
});
