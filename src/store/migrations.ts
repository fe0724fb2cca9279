// Versioned schema. Each entry runs once, in order, inside a transaction that also bumps
// schema_version, so a crash mid-migration leaves the previous version intact.
export const MIGRATIONS = [
  // 1: initial schema
  `
  CREATE TABLE hardware_profile (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    hash TEXT NOT NULL,
    profile TEXT NOT NULL,
    json TEXT NOT NULL
  );
  CREATE TABLE fits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fit_key TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    budgets TEXT NOT NULL,
    hardware_hash TEXT NOT NULL,
    fitter TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    chosen_id TEXT,
    reference_latency_ms REAL,
    shortfall TEXT,
    error TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT
  );
  CREATE INDEX fits_key ON fits (fit_key, status);
  CREATE TABLE candidates (
    fit_id INTEGER NOT NULL REFERENCES fits(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    id TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (fit_id, idx)
  );
  CREATE TABLE deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    version TEXT NOT NULL,
    fit_id INTEGER,
    candidate_id TEXT,
    model_sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'superseded', 'interrupted', 'failed', 'rolled-back')),
    started_at TEXT NOT NULL,
    finished_at TEXT
  );
  CREATE TABLE metrics (
    ts INTEGER NOT NULL,
    resolution INTEGER NOT NULL,
    n INTEGER NOT NULL,
    cpu_load REAL, temperature_c REAL, mem_available_mb REAL, rss_mb REAL,
    latency_p50_ms REAL, latency_p95_ms REAL, level INTEGER,
    PRIMARY KEY (resolution, ts)
  );
  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE sequences (stream TEXT PRIMARY KEY, last INTEGER NOT NULL);
  CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
  CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  `,
  // 2: the task a fit judged fidelity for and its metric's name (issue 16), shown with every figure
  `
  ALTER TABLE fits ADD COLUMN task TEXT;
  ALTER TABLE fits ADD COLUMN fidelity_metric TEXT;
  `,
  // 3: signed requests the agent accepted, kept while their ts is inside the freshness window so a
  // replay is refused, across restarts too (issue 20)
  `
  CREATE TABLE accepted_txns (txn TEXT PRIMARY KEY, ts INTEGER NOT NULL);
  CREATE INDEX accepted_txns_ts ON accepted_txns (ts);
  `,
  // 4: low-value outbox rows (command-rejected) go last and are evicted first, so a flood of them
  // cannot delay or push out metrics and important events (issue 20)
  `
  ALTER TABLE outbox ADD COLUMN low INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX outbox_low ON outbox (low, id);
  `,
  // 5: the candidates a fit trained, chosen or not (issue 18): a training that did not beat the
  // deployed model is shown with its scores instead of vanishing into the event log
  `
  ALTER TABLE fits ADD COLUMN trained TEXT;
  `,
] as const;
