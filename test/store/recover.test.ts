// A damaged state.db is diagnosed without being changed, moved aside with its WAL, and replaced
// by a fresh one (issue 20); a sound one, a locked one and a newer one are left alone. Real
// SQLite files, damaged the ways a disk or a hand does it.
import t from 'tap';
import Database from 'better-sqlite3';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diagnoseStore, openStore, Store, MIGRATIONS } from '../../src/store/index.js';
import { rebuildState } from '../../src/agent/recovery.js';
import { ModelStore } from '../../src/agent/model-store.js';
import { OCR_MODELS } from '../../devkit/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-recover-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A real state.db with fits, metrics and outbox rows, closed (WAL checkpointed). */
function healthy(): string {
  const p = join(dir, `s${n++}`, 'state.db');
  const s = new Store(p);
  for (let i = 0; i < 200; i++)
    s.addMetric({ ts: i, cpuLoad: 0.1, temperatureC: null, memAvailableMb: 900, rssMb: 80, latencyP50Ms: 3, latencyP95Ms: 4, level: 0 });
  for (let i = 0; i < 5; i++) s.failFit(s.beginFit(`key${i}`, 'sha', { latencyMs: 10 }, 'hw', 'reference-only'), 'x');
  s.enqueue('events', 'e', (seq) => JSON.stringify({ seq }));
  s.close();
  return p;
}
const aside = (p: string): string[] => readdirSync(join(p, '..')).filter((f) => f.startsWith('state.db.corrupt-'));

t.test('a sound database, an absent one and an empty file are opened as they are', async (t) => {
  const p = healthy();
  t.equal(diagnoseStore(p), null);
  const { store, recovered } = openStore(p);
  t.equal(recovered, null);
  t.equal(store.outboxPending(), 1, 'rows kept');
  store.close();
  t.equal(diagnoseStore(join(dir, 'none.db')), null);
  const empty = join(dir, 'empty.db');
  writeFileSync(empty, '');
  t.equal(diagnoseStore(empty), null);
});

t.test('garbage, truncation, a wrong schema and an integrity_check failure are each moved aside', async (t) => {
  const cases: [string, (p: string) => void, RegExp][] = [
    ['garbage bytes', (p) => writeFileSync(p, Buffer.alloc(16384, 0x5a)), /SQLITE_NOTADB/],
    ['truncated', (p) => truncateSync(p, 4096), /SQLITE_CORRUPT|integrity_check/],
    [
      'a table dropped',
      (p) => {
        const db = new Database(p);
        db.exec('DROP TABLE deployments');
        db.close();
      },
      /lacks table deployments/,
    ],
    [
      'a foreign database',
      (p) => {
        rmSync(p);
        const db = new Database(p);
        db.exec('CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)');
        db.close();
      },
      /not an edgefit state database \(tables: photos\)/,
    ],
    [
      'an index that disagrees with its table',
      (p) => {
        // one key inside the fits_key index page altered: every page still parses, only
        // integrity_check sees that the index no longer matches its table
        const db = new Database(p);
        const root = (db.prepare(`SELECT rootpage FROM sqlite_master WHERE name = 'fits_key'`).get() as { rootpage: number }).rootpage;
        const size = db.pragma('page_size', { simple: true }) as number;
        db.close();
        const page = readFileSync(p).subarray((root - 1) * size, root * size);
        const at = page.indexOf('key3');
        if (at < 0) throw new Error('key3 not in the index page');
        const fd = openSync(p, 'r+');
        writeSync(fd, Buffer.from('kez3'), 0, 4, (root - 1) * size + at);
        closeSync(fd);
      },
      /integrity_check failed/,
    ],
    [
      'a page overwritten',
      (p) => {
        const db = new Database(p);
        const root = (db.prepare(`SELECT rootpage FROM sqlite_master WHERE name = 'metrics'`).get() as { rootpage: number }).rootpage;
        const size = db.pragma('page_size', { simple: true }) as number;
        db.close();
        const fd = openSync(p, 'r+');
        writeSync(fd, Buffer.alloc(64, 0xff), 0, 64, (root - 1) * size + 8);
        closeSync(fd);
      },
      /SQLITE_CORRUPT|integrity_check/,
    ],
  ];
  for (const [what, damage, re] of cases) {
    const p = healthy();
    damage(p);
    writeFileSync(`${p}-wal`, Buffer.alloc(100, 1)); // a stale WAL (moved with it when still there) never reaches the new file
    const reason = diagnoseStore(p);
    t.match(reason, re, `${what}: diagnosed (${reason})`);
    const { store, recovered } = openStore(p, {}, new Date('2026-12-04T09:00:00.000Z'));
    t.ok(recovered, `${what}: recovered`);
    t.equal(recovered!.movedTo, `${p}.corrupt-2026-12-04T09-00-00-000Z`);
    t.ok(existsSync(recovered!.movedTo), `${what}: kept aside`);
    t.ok(aside(p).includes('state.db.corrupt-2026-12-04T09-00-00-000Z'));
    t.equal(store.schemaVersion, MIGRATIONS.length, `${what}: a fresh database`);
    t.ok(store.integrityOk());
    t.equal(store.outboxPending(), 0);
    store.close();
    t.equal(diagnoseStore(p), null, `${what}: sound afterwards`);
  }
});

t.test('not corruption: a database locked by another agent, or newer than this one, stops the start untouched', async (t) => {
  const p = healthy();
  const holder = new Database(p);
  holder.pragma('locking_mode = EXCLUSIVE');
  holder.exec('BEGIN EXCLUSIVE');
  const t0 = Date.now();
  t.throws(() => openStore(p), { code: 'CONFIG', message: /cannot open state database/ });
  t.ok(Date.now() - t0 >= 4000, 'waited for the lock first');
  holder.exec('COMMIT');
  holder.close();
  t.same(aside(p), [], 'nothing moved');
  const q = healthy();
  const db = new Database(q);
  db.prepare('UPDATE schema_version SET version = ?').run(MIGRATIONS.length + 1);
  db.close();
  t.throws(() => openStore(q), { code: 'CONFIG', message: /newer than this agent/ });
  t.same(aside(q), []);
});

t.test('rebuildState: the pointer becomes the deployment rows; fit ids continue above every fit folder', async (t) => {
  const root = join(dir, 'agent-state');
  const models = new ModelStore(join(root, 'models'));
  const a = await models.deploy({ file: OCR_MODELS.cls.file }, { version: 'v1', candidateId: null, fitId: null, source: 'original' });
  const b = await models.deploy({ bytes: new Uint8Array([1, 2, 3]) }, { version: 'v2', candidateId: 'c7', fitId: 4, source: 'fit' });
  const fits = join(root, 'fits');
  for (const id of ['3', '9', 'tmp']) mkdirSync(join(fits, id), { recursive: true });
  const s = new Store(join(root, 'state.db'));
  const r = rebuildState(s, join(root, 'models'), fits);
  t.same(r, { current: 'v2', previous: 'v1', fitIdsAbove: 9 });
  t.equal(s.activeDeployment()?.version, b.version);
  t.equal(s.activeDeployment()?.candidateId, 'c7');
  t.equal(s.deploymentByVersion('v1')?.state, 'superseded');
  t.equal(s.deploymentByVersion('v1')?.modelSha256, a.sha256);
  t.equal(s.beginFit('k', 'sha', {}, 'hw', 'auto'), 10, 'the next fit is 10, not 1');
  s.close();
});
