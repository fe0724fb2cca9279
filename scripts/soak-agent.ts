// Soak of the agent alone (issue 20, "1-hour soak"): does its memory stay flat after warm-up?
// Starts the real `edgefit agent` (CLI, embedded aedes broker on a free port, fresh state dir
// under a temp dir, reference-only fit, dashboard off, serving on a free port) on a small real
// model with metrics every second and a probe every 2 s, subscribes to its metrics topic, and
// every --sample-s samples from /proc: the agent's VmRSS (anon / file split), its serve child's,
// how many probe children ran, the state.db and WAL sizes. With --snapshots, node writes a heap
// snapshot of the agent at the end of warm-up and at the end (--heapsnapshot-signal) and the
// constructors whose object count or size grew most are listed (what grows, by name).
// Prints a table (a row per --row-s) and a JSON summary: RSS at start / warm-up / end and the
// growth after warm-up, with its slope per minute.
// Usage: node dist/scripts/soak-agent.js [--minutes 60] [--warmup-min 3] [--sample-s 5] [--row-s 60]
//          [--model path --shape x=1x3x48x192 --calib dir] [--metrics-s 1] [--probe-s 2]
//          [--max-cpu 100] [--snapshots] [--json out.json] [--no-serve] [--dashboard] [--agent-log file]
//          [--node-flag=--trace-gc ...]
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { freePort } from '../devkit/broker.js';
import { CLI, OCR_FIT_SETS, OCR_MODELS } from '../devkit/paths.js';
import { EdgefitError, oneLine } from '../src/errors.js';
import { topicsFor } from '../src/telemetry/topics.js';

const { values: a } = parseArgs({
  options: {
    minutes: { type: 'string', default: '60' },
    'warmup-min': { type: 'string', default: '3' },
    'sample-s': { type: 'string', default: '5' },
    'row-s': { type: 'string', default: '60' },
    model: { type: 'string', default: OCR_MODELS.cls.file },
    shape: { type: 'string', default: `x=${OCR_MODELS.cls.shape.join('x')}` },
    calib: { type: 'string', default: OCR_FIT_SETS.cls.calibrate },
    'metrics-s': { type: 'string', default: '1' },
    'probe-s': { type: 'string', default: '2' },
    // the default cap (1 % of a core) would space probes 30 s+ apart: the soak probes every 2 s
    'max-cpu': { type: 'string', default: '100' },
    snapshots: { type: 'boolean', default: false },
    serve: { type: 'boolean', default: true },
    // the agent's built-in dashboard (on by default with the embedded broker; off in the service)
    dashboard: { type: 'boolean', default: false },
    json: { type: 'string' },
    // the agent's stderr, whole (with --node-flag=--trace-gc: every GC and the heap around it)
    'agent-log': { type: 'string' },
    // another build of the CLI (e.g. the base commit's, to compare before and after a fix)
    cli: { type: 'string', default: CLI },
    'node-flag': { type: 'string', multiple: true },
  },
  allowNegative: true,
  strict: true,
});
const num = (name: keyof typeof a): number => {
  const n = Number(a[name]);
  if (!Number.isFinite(n) || n <= 0) throw new EdgefitError('USAGE', `--${name} must be a positive number, got '${String(a[name])}'`);
  return n;
};
const minutes = num('minutes');
const warmupMin = Math.min(num('warmup-min'), minutes / 2);
const sampleS = num('sample-s');
const rowS = num('row-s');

/** VmRSS / RssAnon / RssFile of a process, MiB (NaN when it is gone). */
function mem(pid: number): { rss: number; anon: number; file: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN) / 1024;
    return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return { rss: NaN, anon: NaN, file: NaN };
  }
}
/** Direct children of a pid with their command lines. */
function children(pid: number): Array<{ pid: number; cmd: string }> {
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
      out.push({ pid: Number(d), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      /* gone */
    }
  }
  return out;
}
/** RSS per mapping (keyed by start address and name) from /proc/<pid>/smaps, KiB. */
function smaps(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let key = '';
  try {
    for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (m) key = `${m[1]} ${m[3] || '[anon]'}`;
      else if (line.startsWith('Rss:')) out.set(key, Number(/(\d+)/.exec(line)![1]));
    }
  } catch {
    /* gone */
  }
  return out;
}
const fileMb = (p: string): number => {
  try {
    return statSync(p).size / 1048576;
  } catch {
    return 0;
  }
};

const dir = mkdtempSync(join(tmpdir(), 'edgefit-soak-'));
const state = join(dir, 'state');
const deviceId = 'soak-agent';
const port = await freePort();
writeFileSync(
  join(dir, 'config.json'),
  JSON.stringify({
    deviceId,
    stateDir: state,
    model: {
      path: a.model,
      calib: a.calib,
      shapes: Object.fromEntries([a.shape!].map((s) => [s.split('=')[0], s.split('=')[1]!.split('x').map(Number)])),
    },
    fitter: 'reference-only',
    metricsIntervalS: num('metrics-s'),
    probe: { intervalS: num('probe-s'), maxCpuPercent: num('max-cpu') },
    mqtt: { embeddedPort: port },
    dashboard: { port: a.dashboard ? await freePort() : 0 },
    serve: { enabled: a.serve, port: 0 },
  }),
);
const nodeFlags = [...(a['node-flag'] ?? ['--max-semi-space-size=1'])];
if (a.snapshots) nodeFlags.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`);
const env = { ...process.env, EDGEFIT_CACHE_DIR: join(dir, 'cache') };
const agent = spawn(process.execPath, [...nodeFlags, a.cli!, 'agent', '--config', join(dir, 'config.json')], {
  stdio: ['ignore', a['agent-log'] ? 'pipe' : 'ignore', 'pipe'],
  env,
});
// --trace-gc writes to stdout
agent.stdout?.on('data', (d: Buffer) => appendFileSync(a['agent-log']!, d));
let log = '';
agent.stderr!.on('data', (d: Buffer) => {
  log = (log + d.toString()).slice(-20000);
  if (a['agent-log']) appendFileSync(a['agent-log'], d);
});
const pid = agent.pid!;
const fail = (why: string): never => {
  agent.kill('SIGKILL');
  process.stderr.write(`${log}\nsoak-agent: ${why}\n`);
  process.exit(1);
};

// metrics as a subscriber sees them: count, sequence gaps, the agent's own view of its outbox
const topics = topicsFor(deviceId);
const seen = { metrics: 0, gaps: 0, lastSeq: 0, outboxPending: 0, rssMb: 0 };
const deadline = Date.now() + 120_000;
while (!/connected to mqtt/.test(log)) {
  if (Date.now() > deadline || agent.exitCode !== null) fail('agent did not start');
  await new Promise((r) => setTimeout(r, 200));
}
const sub = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'soak-sub', reconnectPeriod: 1000 });
sub.on('connect', () => sub.subscribe(topics.metrics, { qos: 1 }));
sub.on('message', (_t, p) => {
  try {
    const m = JSON.parse(p.toString()) as { seq: number; agent: { outboxPending: number; rssMb: number } };
    if (seen.lastSeq && m.seq > seen.lastSeq + 1) seen.gaps += m.seq - seen.lastSeq - 1;
    seen.lastSeq = Math.max(seen.lastSeq, m.seq);
    seen.metrics++;
    seen.outboxPending = m.agent.outboxPending;
    seen.rssMb = m.agent.rssMb;
  } catch {
    /* not ours */
  }
});
while (!/deployed:/.test(log)) {
  if (Date.now() > deadline || agent.exitCode !== null) fail('agent did not deploy');
  await new Promise((r) => setTimeout(r, 200));
}

interface Sample {
  s: number;
  rss: number;
  anon: number;
  file: number;
  serve: number;
  probes: number;
  dbMb: number;
  walMb: number;
  metrics: number;
}
const samples: Sample[] = [];
const probePids = new Set<number>();
const t0 = Date.now();
const row = (x: Sample): string =>
  [
    (x.s / 60).toFixed(1).padStart(6),
    x.rss.toFixed(1).padStart(7),
    x.anon.toFixed(1).padStart(7),
    x.file.toFixed(1).padStart(7),
    x.serve.toFixed(1).padStart(7),
    String(x.probes).padStart(6),
    x.dbMb.toFixed(2).padStart(6),
    x.walMb.toFixed(2).padStart(6),
    String(x.metrics).padStart(7),
  ].join(' ');
process.stdout.write(
  `soak-agent: ${a.model} ${a.shape}, metrics every ${a['metrics-s']} s, probe every ${a['probe-s']} s, ${minutes} min\n`,
);
process.stdout.write('   min  rss MB anon MB file MB serveMB probes  db MB wal MB metrics\n');
let snapshotsTaken = 0;
const snapshot = async (): Promise<string | undefined> => {
  const before = new Set(readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')));
  process.kill(pid, 'SIGUSR2');
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    const f = readdirSync(dir).find((x) => x.endsWith('.heapsnapshot') && !before.has(x));
    // written when its size stops changing
    if (f) {
      const s1 = fileMb(join(dir, f));
      await new Promise((r) => setTimeout(r, 1000));
      if (fileMb(join(dir, f)) === s1 && s1 > 0) return join(dir, f);
    }
  }
  return undefined;
};
const snaps: string[] = [];
let nextRow = 0;
let warmMaps: Map<string, number> | undefined;
const endAt = t0 + minutes * 60_000;
const sampleProbes = setInterval(() => {
  for (const c of children(pid)) if (c.cmd.includes('probe-worker')) probePids.add(c.pid);
}, 250);
while (Date.now() < endAt) {
  if (agent.exitCode !== null) fail('agent exited during the soak');
  const s = (Date.now() - t0) / 1000;
  const m = mem(pid);
  // the serve process and its session workers: every descendant but the probe children
  const serve: Array<{ pid: number; cmd: string }> = [];
  for (let q = children(pid).filter((c) => !c.cmd.includes('probe-worker')); q.length;) {
    serve.push(...q);
    q = q.flatMap((c) => children(c.pid));
  }
  const x: Sample = {
    s,
    ...m,
    serve: serve.reduce((acc, c) => acc + (mem(c.pid).rss || 0), 0),
    probes: probePids.size,
    dbMb: fileMb(join(state, 'state.db')),
    walMb: fileMb(join(state, 'state.db-wal')),
    metrics: seen.metrics,
  };
  samples.push(x);
  if (s >= nextRow) {
    process.stdout.write(`${row(x)}\n`);
    nextRow += rowS;
  }
  if (!warmMaps && s >= warmupMin * 60) warmMaps = smaps(pid);
  if (a.snapshots && snapshotsTaken === 0 && s >= warmupMin * 60) {
    snapshotsTaken++;
    const f = await snapshot();
    if (f) snaps.push(f);
  }
  await new Promise((r) => setTimeout(r, sampleS * 1000));
}
// which mappings grew after warm-up: the malloc heap and arenas ([heap], [anon]) or V8's spaces
const endMaps = smaps(pid);
const mapGrowth = [...endMaps.entries()]
  .map(([k, kb]) => ({ mapping: k, kb: kb - (warmMaps?.get(k) ?? 0) }))
  .filter((x) => Math.abs(x.kb) >= 256)
  .sort((p, q) => q.kb - p.kb)
  .slice(0, 12);
if (a.snapshots) {
  const f = await snapshot();
  if (f) snaps.push(f);
}
clearInterval(sampleProbes);
const lastRow = samples[samples.length - 1]!;
process.stdout.write(`${row(lastRow)}\n`);

// growth after warm-up: medians of the first and last minute after it (one sample is noisy: GC)
const med = (xs: number[]): number => [...xs].sort((p, q) => p - q)[xs.length >> 1] ?? NaN;
const within = (from: number, to: number): Sample[] => samples.filter((x) => x.s >= from && x.s < to);
const endS = lastRow.s;
const warm = within(warmupMin * 60, warmupMin * 60 + 60);
const last = within(endS - 60, endS + 1);
const startRss = med(within(0, 30).map((x) => x.rss));
const warmRss = med(warm.map((x) => x.rss));
const endRss = med(last.map((x) => x.rss));
// least-squares slope of RSS after warm-up, MB per minute
const after = samples.filter((x) => x.s >= warmupMin * 60);
const mx = after.reduce((acc, x) => acc + x.s, 0) / after.length;
const my = after.reduce((acc, x) => acc + x.rss, 0) / after.length;
const slope = (after.reduce((acc, x) => acc + (x.s - mx) * (x.rss - my), 0) / after.reduce((acc, x) => acc + (x.s - mx) ** 2, 0)) * 60;

let heapGrowth: Array<{ name: string; count: number; selfKb: number }> | undefined;
let heapMb: number[] | undefined;
if (snaps.length === 2) {
  const [s1, s2] = snaps.map(summariseSnapshot) as [SnapSummary, SnapSummary];
  heapMb = [s1.totalMb, s2.totalMb].map((x) => Math.round(x * 100) / 100);
  heapGrowth = [...s2.by.entries()]
    .map(([name, v]) => {
      const b = s1.by.get(name) ?? { count: 0, size: 0 };
      return { name, count: v.count - b.count, selfKb: Math.round((v.size - b.size) / 102.4) / 10 };
    })
    .filter((x) => x.selfKb > 0)
    .sort((p, q) => q.selfKb - p.selfKb)
    .slice(0, 15);
}

agent.kill('SIGTERM');
sub.end(true);
await new Promise((r) => agent.once('exit', r));
const summary = {
  model: a.model!.split('/').pop(),
  minutes: Math.round((endS / 60) * 10) / 10,
  warmupMin,
  metricsIntervalS: num('metrics-s'),
  probeIntervalS: num('probe-s'),
  probes: probePids.size,
  metricsSeen: seen.metrics,
  metricGaps: seen.gaps,
  outboxPendingAtEnd: seen.outboxPending,
  rssMb: { start: round1(startRss), warmup: round1(warmRss), end: round1(endRss) },
  growthAfterWarmupMb: round1(endRss - warmRss),
  slopeMbPerMin: Math.round(slope * 1000) / 1000,
  serveRssMb: { warmup: round1(med(warm.map((x) => x.serve))), end: round1(med(last.map((x) => x.serve))) },
  stateDbMb: { end: round1(lastRow.dbMb), wal: round1(lastRow.walMb) },
  mappingsGrownKb: mapGrowth,
  ...(heapMb ? { heapMb, heapGrowth } : {}),
};
process.stdout.write(`${JSON.stringify(summary, null, 1)}\n`);
if (a.json) writeFileSync(a.json, JSON.stringify({ summary, samples }, null, 1));
rmSync(dir, { recursive: true, force: true });

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

interface SnapSummary {
  totalMb: number;
  by: Map<string, { count: number; size: number }>;
}
/** Self size and count per constructor name (objects) or per node type (strings, code, ...). */
function summariseSnapshot(file: string): SnapSummary {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
    nodes: number[];
    strings: string[];
  };
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize, n] = [f.indexOf('type'), f.indexOf('name'), f.indexOf('self_size'), f.length];
  const by = new Map<string, { count: number; size: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += n) {
    const type = types[snap.nodes[i + iType]!]!;
    const size = snap.nodes[i + iSize]!;
    total += size;
    const key = type === 'object' || type === 'closure' ? `${type}:${snap.strings[snap.nodes[i + iName]!]}` : type;
    const e = by.get(key) ?? { count: 0, size: 0 };
    e.count++;
    e.size += size;
    by.set(key, e);
  }
  return { totalMb: total / 1048576, by };
}

process.on('uncaughtException', (e) => {
  process.stderr.write(`soak-agent: ${oneLine(e)}\n`);
  process.exit(1);
});
