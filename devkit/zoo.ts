// The torchvision zoo benchmark's pure half (scripts/bench-zoo.ts runs it; test/scripts/zoo.test.ts
// checks it): the manifest written by scripts/export-tv-zoo.py, one result row per (model, opset,
// ratio), and the judgement of a set of rows against issue 17's targets.
import { readFileSync } from 'node:fs';

export interface ZooEntry {
  name: string;
  opset: number;
  file: string;
  bytes: number;
  sha256: string;
  input: { name: string; shape: number[] };
  outputs: { name: string; shape: number[] }[];
  params: number;
  /** beyond the 14 of issue 17 (the full ViT-B/16 beside the default smaller ViT) */
  extra?: boolean;
}

export function readManifest(path: string): ZooEntry[] {
  const m = JSON.parse(readFileSync(path, 'utf8')) as { models?: ZooEntry[] };
  if (!Array.isArray(m.models)) throw new Error(`${path}: no "models" list (written by scripts/export-tv-zoo.py?)`);
  return m.models;
}

/**
 * ok: the CLI exited 0 and the pruned model runs with the original's output shapes.
 * prune-failed: the CLI exited non-zero. run-failed: onnxruntime refused or failed the pruned
 * model. shape-mismatch: it ran, with other output shapes.
 */
export const ZOO_STATUS = ['ok', 'prune-failed', 'run-failed', 'shape-mismatch'] as const;
export type ZooStatus = (typeof ZOO_STATUS)[number];

export interface ZooRow {
  model: string;
  opset: number;
  ratio: number;
  /** a model beyond the 14 (ZooEntry.extra): tabled, not judged */
  extra?: boolean;
  status: ZooStatus;
  exitCode: number;
  /** first line of the CLI's stderr (or of the runtime error) when status is not ok */
  error: string | null;
  pruneSeconds: number;
  /** MACs after / before and params after / before, from the CLI's --json (null when not reported) */
  macsKept: number | null;
  paramsKept: number | null;
  groupsPruned: number | null;
  groupsSkipped: number | null;
  /** the groups the CLI kept whole, with its first reason (optional: older result files lack it) */
  keptWhole?: { group: string; size: number; reason: string }[];
  /** medians of interleaved runs in one process, 2 threads; null unless the pruned model ran */
  originalMs: number | null;
  prunedMs: number | null;
  /** median over rounds of pruned/original within the round: a second view, robust to slow drift */
  pairedRatio?: number | null;
  /** the larger of the two models' interquartile range / median: how noisy the box was meanwhile */
  noise?: number | null;
  runs: number;
  /** how many runs this row stands for (mergeRuns), when more than one */
  repeats?: number;
}

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
};

/**
 * The timing figures of one side-by-side run: ta[i] and tb[i] are the original's and the pruned
 * model's times in round i. Medians each; the median of per-round ratios; and the noise (IQR /
 * median, the larger of the two) so a reader sees which rows a busy box made unreliable.
 */
export function pairStats(
  ta: readonly number[],
  tb: readonly number[],
): { originalMs: number; prunedMs: number; pairedRatio: number; noise: number } {
  if (!ta.length || ta.length !== tb.length) throw new Error(`pairStats: ${ta.length} and ${tb.length} times`);
  const rel = (x: readonly number[]) => (quantile(x, 0.75) - quantile(x, 0.25)) / quantile(x, 0.5);
  return {
    originalMs: quantile(ta, 0.5),
    prunedMs: quantile(tb, 0.5),
    pairedRatio: quantile(
      ta.map((a, i) => tb[i]! / a),
      0.5,
    ),
    noise: Math.max(rel(ta), rel(tb)),
  };
}

/** pruned / original latency (< 1 is faster), and its inverse, the speed-up. */
export const latencyRatio = (r: ZooRow): number | null =>
  r.originalMs !== null && r.prunedMs !== null && r.originalMs > 0 ? r.prunedMs / r.originalMs : null;
export const speedup = (r: ZooRow): number | null => {
  const l = latencyRatio(r);
  return l !== null && l > 0 ? 1 / l : null;
};

/** Issue 17: share valid >= 90 %; speed-up >= 1.2x at 30 %, >= 1.6x at 50 %; none slower at any ratio. */
export const ZOO_TARGETS = {
  validShare: 0.9,
  speedupAt: [
    { ratio: 0.3, min: 1.2 },
    { ratio: 0.5, min: 1.6 },
  ],
  notSlower: 1,
} as const;

export interface TargetCheck {
  target: string;
  met: boolean;
  detail: string;
  misses: string[];
}

const label = (r: ZooRow) => `${r.model} op${r.opset} @${r.ratio}`;
const fmtX = (x: number | null) => (x === null ? '-' : `${x.toFixed(2)}x`);

/**
 * Judge rows against the targets. Every row counts: a model that failed to prune (or to run) is
 * a miss for the validity share and for its ratio's speed-up (it is not faster), but it cannot be
 * "slower", so the not-slower check looks at the rows that ran. A target with no rows to judge
 * (e.g. --ratios 0.5 only: nothing at 0.3) is reported as not met, never as vacuously met.
 */
export function judgeZoo(rows: readonly ZooRow[], targets = ZOO_TARGETS): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const ok = rows.filter((r) => r.status === 'ok');
  const share = rows.length ? ok.length / rows.length : 0;
  checks.push({
    target: `valid, identical output shapes >= ${(targets.validShare * 100).toFixed(0)} %`,
    met: rows.length > 0 && share >= targets.validShare,
    detail: `${ok.length}/${rows.length} (${(share * 100).toFixed(1)} %)`,
    misses: rows.filter((r) => r.status !== 'ok').map((r) => `${label(r)}: ${r.status}${r.error ? `: ${r.error}` : ''}`),
  });
  for (const { ratio, min } of targets.speedupAt) {
    const at = rows.filter((r) => r.ratio === ratio);
    const misses = at.filter((r) => r.status !== 'ok' || (speedup(r) ?? 0) < min);
    checks.push({
      target: `speed-up >= ${min}x at ${ratio}`,
      met: at.length > 0 && misses.length === 0,
      detail: at.length ? `${at.length - misses.length}/${at.length} rows` : 'no rows at this ratio',
      misses: misses.map((r) => `${label(r)}: ${r.status === 'ok' ? fmtX(speedup(r)) : r.status}`),
    });
  }
  const ran = ok.filter((r) => speedup(r) !== null);
  const slower = ran.filter((r) => speedup(r)! < targets.notSlower);
  checks.push({
    target: 'none slower than its original',
    met: ran.length > 0 && slower.length === 0,
    detail: `${ran.length - slower.length}/${ran.length} timed rows`,
    misses: slower.map((r) => `${label(r)}: ${fmtX(speedup(r))}`),
  });
  return checks;
}

const fix = (x: number | null, d: number) => (x === null ? '-' : x.toFixed(d));

/** The results as a markdown table, one row per (model, opset, ratio). */
export function zooTable(rows: readonly ZooRow[]): string {
  const out = [
    '| model | opset | ratio | status | MACs kept | params kept | groups pruned/kept whole | original ms | pruned ms | latency pruned/original | speed-up | paired ratio | noise | prune s | error |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows)
    out.push(
      `| ${r.model} | ${r.opset} | ${r.ratio} | ${r.status}${r.repeats ? ` (${r.repeats} runs)` : ''} | ${fix(r.macsKept, 3)} | ${fix(r.paramsKept, 3)} | ${r.groupsPruned ?? '-'}/${r.groupsSkipped ?? '-'} | ${fix(r.originalMs, 1)} | ${fix(r.prunedMs, 1)} | ${fix(latencyRatio(r), 3)} | ${fmtX(speedup(r))} | ${fix(r.pairedRatio ?? null, 3)} | ${r.noise != null ? `${(r.noise * 100).toFixed(0)}%` : '-'} | ${r.pruneSeconds.toFixed(1)} | ${(r.error ?? '').replace(/\|/g, '\\|')} |`,
    );
  return out.join('\n');
}

/** The target checks as text: one line each, then its misses indented. */
export function zooSummary(checks: readonly TargetCheck[]): string {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${c.met ? 'MET    ' : 'NOT MET'}  ${c.target}: ${c.detail}`);
    for (const m of c.misses) lines.push(`           - ${m}`);
  }
  return lines.join('\n');
}

/** The CLI's --json report on stdout: the last line that parses as a JSON object (progress may precede it). */
export function parseCliJson(stdout: string): Record<string, unknown> | null {
  try {
    return JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    // fall through: look for the object among other output
  }
  const start = stdout.indexOf('\n{');
  if (start < 0) return null;
  try {
    return JSON.parse(stdout.slice(start + 1)) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** The first meaningful line of a CLI's stderr (skipping blank lines and node's warnings). */
export function firstErrorLine(stderr: string): string | null {
  for (const raw of stderr.split('\n')) {
    const l = raw.trim();
    if (!l || /^\(node:\d+\)/.test(l) || l.startsWith('(Use `node --trace-warnings')) continue;
    return l.length > 240 ? l.slice(0, 237) + '...' : l;
  }
  return null;
}

/**
 * Why groups were kept whole, per model and opset (the first row that has the list; the groups do
 * not depend on the ratio): each distinct reason once, with how many groups and channels it held.
 */
export function keptWholeReport(rows: readonly ZooRow[]): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    const key = `${r.model} op${r.opset}`;
    if (seen.has(key) || !r.keptWhole) continue;
    seen.add(key);
    const by = new Map<string, { n: number; channels: number; first: string }>();
    for (const g of r.keptWhole) {
      const e = by.get(g.reason) ?? { n: 0, channels: 0, first: g.group };
      e.n++;
      e.channels += g.size;
      by.set(g.reason, e);
    }
    lines.push(`${key}: ${r.keptWhole.length} kept whole`);
    for (const [reason, e] of [...by].sort((a, b) => b[1].channels - a[1].channels))
      lines.push(`  ${e.n} group(s), ${e.channels} channels (e.g. ${e.first}): ${reason}`);
  }
  return lines.join('\n');
}

/**
 * Rows of several runs (--from a.json,b.json) as one row per (model, opset, ratio). Pieces of a
 * run (--only, --opset) just join; a row measured in several runs becomes the run with the median
 * speed-up (the lower middle one for an even count) with `repeats` set, so one burst of load on a
 * shared box does not decide a target. A row that was not ok in any run stays that failure: a
 * model that failed once is not valid.
 */
export function mergeRuns(rows: readonly ZooRow[]): ZooRow[] {
  const groups = new Map<string, ZooRow[]>();
  for (const r of rows) {
    const k = `${r.model}\u0000${r.opset}\u0000${r.ratio}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  return [...groups.values()].map((g) => {
    if (g.length === 1) return g[0]!;
    const bad = g.find((r) => r.status !== 'ok');
    if (bad) return { ...bad, repeats: g.length };
    const bySpeed = [...g].sort((a, b) => (speedup(a) ?? 0) - (speedup(b) ?? 0));
    return { ...bySpeed[(bySpeed.length - 1) >> 1]!, repeats: g.length };
  });
}
