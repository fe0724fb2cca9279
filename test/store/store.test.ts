import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store, MIGRATIONS } from '../../src/store/index.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-store-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('migrations run once, WAL on, reopen keeps data', async (t) => {
  const p = join(dir, 'a.db');
  const s = new Store(p);
  t.equal(s.schemaVersion, MIGRATIONS.length);
  t.equal((s.db.pragma('journal_mode') as Array<{ journal_mode: string }>)[0]!.journal_mode, 'wal');
  s.setKv('x', '1');
  s.close();
  const s2 = new Store(p);
  t.equal(s2.getKv('x'), '1');
  t.ok(s2.integrityOk());
  s2.close();
});

t.test('outbox: contiguous seq per stream, bound drops oldest and counts the loss', async (t) => {
  const s = new Store(join(dir, 'b.db'), { outboxMax: 5 });
  for (let i = 0; i < 8; i++) s.enqueue('metrics', 'm', (seq) => JSON.stringify({ seq }));
  s.enqueue('events', 'e', (seq) => JSON.stringify({ seq }));
  const rows = s.peek(100).map((r) => JSON.parse(r.payload) as { seq: number });
  t.same(
    rows.map((r) => r.seq),
    [5, 6, 7, 8, 1],
    'oldest metrics dropped, events keep their own sequence',
  );
  t.equal(s.counter('outbox_dropped'), 4);
  t.equal(s.takeUnreportedDrops(), 4);
  t.equal(s.takeUnreportedDrops(), 0, 'reported once');
  s.ack(s.peek(1)[0]!.id);
  t.equal(s.outboxPending(), 4);
  s.close();
});

t.test('metric history folds old raw rows into 5-minute means and forgets very old ones', async (t) => {
  const s = new Store(join(dir, 'c.db'), { rawKeepS: 600, downsampledKeepS: 3600 });
  const now = 1_000_000_200; // multiple of 300 + 200
  for (let i = 0; i < 30; i++) {
    s.addMetric({
      ts: now - 1200 + i * 10,
      cpuLoad: i,
      temperatureC: null,
      memAvailableMb: 100,
      rssMb: 50,
      latencyP50Ms: 10,
      latencyP95Ms: i,
      level: 0,
    });
  }
  s.addMetric({ ts: now - 7200, cpuLoad: 1, temperatureC: null, memAvailableMb: 1, rssMb: 1, latencyP50Ms: 1, latencyP95Ms: 1, level: 0 });
  s.compactMetrics(now);
  t.equal(s.metricHistory(0).length, 0, 'all rows were older than rawKeepS');
  const agg = s.metricHistory(300);
  t.equal(
    agg.reduce((a, r) => a + r.n, 0),
    30,
    'the 7200 s old row is gone, the 30 recent ones folded',
  );
  t.ok(agg.every((r) => r.ts % 300 === 0));
  t.equal(Math.max(...agg.map((r) => r.latencyP95Ms ?? 0)), 29, 'p95 keeps the max');
  s.close();
});

t.test('fits, frontier and deployments', async (t) => {
  const s = new Store(join(dir, 'd.db'));
  const id = s.beginFit('k', 'a'.repeat(64), { latencyMs: 5 }, 'hw', 'x');
  t.equal(s.latestDoneFit('k'), undefined);
  const entry = {
    id: 'c0',
    config: { structured: 0, unstructured: 0, quant: 'none' as const, threads: 1 },
    modelPath: '/m',
    sha256: 'a',
    sizeBytes: 1,
    latencyP50Ms: 1,
    latencyP95Ms: 2,
    modelRssMb: 3,
    fidelity: 1,
    meets: { latency: true, ram: true, fidelity: true },
  };
  s.finishFit(id, { chosenId: 'c0', frontier: [entry], referenceLatencyP50Ms: 1, fitter: 'x' });
  t.equal(s.latestDoneFit('k')?.chosenId, 'c0');
  t.same(s.frontier(id), [entry]);
  const d1 = s.beginDeployment('v1', 'a', 'fit', id, 'c0');
  s.activateDeployment(d1);
  const d2 = s.beginDeployment('v2', 'b', 'fit', id, 'c0');
  t.equal(s.activeDeployment()?.version, 'v1', 'pending does not replace active');
  s.activateDeployment(d2);
  t.equal(s.activeDeployment()?.version, 'v2');
  t.equal(s.deploymentByVersion('v1')?.state, 'superseded');
  s.beginFit('k2', 'a', {}, 'hw', 'x');
  t.equal(s.failStaleFits(), 1);
  s.close();
});

/** A database at schema `version`, as an older agent left it, holding one finished fit. */
async function oldDatabase(name: string, version: number): Promise<string> {
  const p = join(dir, name);
  const Database = (await import('better-sqlite3')).default;
  const old = new Database(p);
  old.exec(`CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (${version});`);
  for (const m of MIGRATIONS.slice(0, version)) old.exec(m);
  old
    .prepare(
      `INSERT INTO fits (fit_key, model_sha256, budgets, hardware_hash, fitter, status, chosen_id, started_at) VALUES ('k', 's', '{}', 'h', 'x', 'done', 'c0', 'now')`,
    )
    .run();
  old.close();
  return p;
}

t.test('migration 2: a state database from before issue 16 gains task and fidelity metric; fits keep them', async (t) => {
  // a schema-1 database, as an agent before issue 16 left it, with one finished fit
  const s = new Store(await oldDatabase('v1.db', 1));
  t.equal(s.schemaVersion, MIGRATIONS.length);
  t.match(s.getFit(1), { chosenId: 'c0', task: null, fidelityMetric: null }, 'an old fit: no task recorded');
  const id = s.beginFit('k2', 's', {}, 'h', 'fitModel');
  s.finishFit(id, {
    chosenId: 'c1',
    frontier: [],
    referenceLatencyP50Ms: 2,
    fitter: 'fitModel',
    task: 'text-det',
    fidelityMetric: 'boxF1',
  });
  t.match(s.getFit(id), { task: 'text-det', fidelityMetric: 'boxF1' });
  t.ok(s.integrityOk());
  s.close();
});

t.test('migration 5: fits keep the candidates they trained, chosen or not; older fits read as none', async (t) => {
  const s = new Store(await oldDatabase('v4.db', 4));
  t.equal(s.schemaVersion, MIGRATIONS.length);
  t.same(s.getFit(1)?.trained, [], 'a fit from before: it trained nothing');
  const trained = {
    id: 'l0.5-d12',
    fidelity: 0.97,
    latencyP50Ms: 30,
    training: {
      kind: 'distill' as const,
      minutes: 12,
      seconds: 700,
      steps: 334,
      heldOutBefore: 0.002,
      heldOutAfter: 0.002,
      improved: false,
      judged: { name: 'boxF1', before: 0.9967, after: 0.9967 },
    },
  };
  const id = s.beginFit('k2', 's', {}, 'h', 'fitModel');
  s.finishFit(id, { chosenId: 'c1', frontier: [], referenceLatencyP50Ms: 2, fitter: 'fitModel', trained: [trained] });
  t.same(s.getFit(id)?.trained, [trained], 'the record comes back whole');
  const none = s.beginFit('k3', 's', {}, 'h', 'fitModel');
  s.finishFit(none, { chosenId: 'c1', frontier: [], referenceLatencyP50Ms: 2, fitter: 'fitModel' });
  t.same(s.getFit(none)?.trained, [], 'a fit without training: none');
  t.ok(s.integrityOk());
  s.close();
});
