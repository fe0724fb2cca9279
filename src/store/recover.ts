// Opening the state database so that a damaged one never stops the agent for good (issue 20).
// state.db holds history (fits, metrics, the outbox) but not what the device serves: the model
// pointer and its files (<state>/models) are the truth for that. A state.db that is not a
// database, is truncated, fails PRAGMA integrity_check, or has another schema than the migrations
// make is moved aside (state.db.corrupt-<timestamp>, with its -wal and -shm, kept for a post-mortem)
// and a fresh one is created; the agent then rebuilds what it can from the pointer and says so.
// Errors that say nothing about the file's content (a lock held by another agent, a full disk,
// permissions) are not corruption: they stop the start as before, and the file is left alone.
import Database from 'better-sqlite3';
import { existsSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { EdgefitError } from '../errors.js';
import { fsyncDir } from '../util/fs.js';
import { MIGRATIONS } from './migrations.js';
import { Store, type StoreOptions } from './store.js';

export interface Recovery {
  /** Why the old file was set aside, in one line. */
  reason: string;
  /** Where it went. */
  movedTo: string;
}

/** SQLite result codes that mean the file's content is not a usable database. */
const CORRUPT_CODES = /^SQLITE_(CORRUPT|NOTADB)/;

/** Tables and their columns after the first `version` migrations (built once per version in memory). */
const expectedCache = new Map<number, Map<string, string[]>>();
function expectedSchema(version: number): Map<string, string[]> {
  let s = expectedCache.get(version);
  if (!s) {
    const db = new Database(':memory:');
    try {
      db.exec('CREATE TABLE schema_version (version INTEGER NOT NULL)');
      for (let v = 0; v < version; v++) db.exec(MIGRATIONS[v]!);
      s = tablesOf(db);
    } finally {
      db.close();
    }
    expectedCache.set(version, s);
  }
  return s;
}

function tablesOf(db: Database.Database): Map<string, string[]> {
  const names = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as { name: string }[];
  return new Map(
    names.map(({ name }) => [
      name,
      (db.pragma(`table_info("${name.replace(/"/g, '""')}")`) as { name: string }[]).map((c) => c.name).sort(),
    ]),
  );
}

/**
 * What is wrong with the database at `path`, or null when it is sound (or absent: a first start).
 * Read-only checks: the file is not changed. Throws (CONFIG) for errors that are not about the
 * content, and for a schema newer than this agent's (an upgrade fixes that, not a rebuild).
 */
export function diagnoseStore(path: string): string | null {
  if (!existsSync(path)) return null;
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    const check = db.pragma('integrity_check') as { integrity_check: string }[];
    if (!(check.length === 1 && check[0]!.integrity_check === 'ok'))
      return `integrity_check failed: ${check
        .slice(0, 3)
        .map((r) => r.integrity_check)
        .join('; ')}`;
    const have = tablesOf(db);
    if (have.size === 0) return null; // an empty file is a new database
    if (!have.has('schema_version')) return `not an edgefit state database (tables: ${[...have.keys()].slice(0, 5).join(', ')})`;
    const row = db.prepare('SELECT version FROM schema_version').get() as { version: unknown } | undefined;
    const version = row?.version;
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) return 'schema_version holds no version';
    if (version > MIGRATIONS.length)
      throw new EdgefitError(
        'CONFIG',
        `state database has schema ${version}, newer than this agent (${MIGRATIONS.length}); upgrade edgefit`,
      );
    for (const [table, cols] of expectedSchema(version)) {
      const got = have.get(table);
      if (!got) return `schema ${version} lacks table ${table}`;
      const missing = cols.filter((c) => !got.includes(c));
      if (missing.length) return `schema ${version}: table ${table} lacks ${missing.join(', ')}`;
    }
    return null;
  } catch (e) {
    if (e instanceof EdgefitError) throw e;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && CORRUPT_CODES.test(code)) return `${code}: ${(e as Error).message}`;
    throw new EdgefitError('CONFIG', `cannot open state database ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    db?.close();
  }
}

/** Rename the database and its -wal / -shm beside it (a stale WAL must never meet a new file). */
function moveAside(path: string, now: Date): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  let to = `${path}.corrupt-${stamp}`;
  for (let k = 1; existsSync(to); k++) to = `${path}.corrupt-${stamp}-${k}`;
  for (const suffix of ['-wal', '-shm']) if (existsSync(path + suffix)) renameSync(path + suffix, to + suffix);
  renameSync(path, to);
  fsyncDir(dirname(path));
  return to;
}

/**
 * Open the state database, first moving a damaged one aside (diagnoseStore) so that a fresh one
 * is created. `recovered` says what happened; the caller rebuilds from its own sources of truth.
 */
export function openStore(path: string, opts: Partial<StoreOptions> = {}, now = new Date()): { store: Store; recovered: Recovery | null } {
  const reason = diagnoseStore(path);
  if (reason === null) return { store: new Store(path, opts), recovered: null };
  const movedTo = moveAside(path, now);
  return { store: new Store(path, opts), recovered: { reason, movedTo } };
}
