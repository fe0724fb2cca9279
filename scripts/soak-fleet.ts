// Fleet soak (issue 20, "10-minute soak"): a real Mosquitto (devkit/broker.ts, free port), the
// fleet dashboard (`edgefit dashboard`), the fleet simulator (scripts/simulate-fleet.js) at
// --devices devices, one real agent (`edgefit agent`, small real model, metrics every
// --metrics-s, commands signed with a key generated here so nothing unsigned may change it) and
// a request flood at that agent: --flood-rate junk and unsigned requests a second on its request
// topics. A subscriber counts the agent's metrics by sequence number: after the flood stops and
// the outbox has had --drain-s to empty, every seq from the first to the last must have arrived
// (metricsLost counts those that did not) and the delay (arrival - the payload's ts) is reported.
// A row per --row-s: agent, dashboard and Mosquitto RSS, metrics received, their delay, the
// agent's outbox, requests sent. It measures whatever the agent and dashboard do today (rate
// limits, outbox shares): nothing here depends on them.
// Usage: node dist/scripts/soak-fleet.js [--duration 600] [--devices 1000] [--sim-rate 0.1]
//          [--flood-rate 300] [--metrics-s 1] [--row-s 60] [--drain-s 60] [--json out.json]
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { startBroker } from '../devkit/broker.js';
import { CLI, OCR_FIT_SETS, OCR_MODELS, ROOT } from '../devkit/paths.js';
import type { FleetSoakReport, FleetSoakRow } from '../devkit/soak.js';
import { EdgefitError, oneLine } from '../src/errors.js';
import { topicsFor } from '../src/telemetry/topics.js';

const { values: a } = parseArgs({
  options: {
    duration: { type: 'string', default: '600' },
    devices: { type: 'string', default: '1000' },
    // a metrics message every 10 s per simulated device: the agent's default interval
    'sim-rate': { type: 'string', default: '0.1' },
    'flood-rate': { type: 'string', default: '300' },
    'metrics-s': { type: 'string', default: '1' },
    'row-s': { type: 'string', default: '60' },
    'drain-s': { type: 'string', default: '60' },
    json: { type: 'string' },
  },
  strict: true,
});
const num = (name: keyof typeof a): number => {
  const n = Number(a[name]);
  if (!Number.isFinite(n) || n <= 0) throw new EdgefitError('USAGE', `--${name} must be a positive number, got '${String(a[name])}'`);
  return n;
};
const durationS = num('duration');
const devices = num('devices');
const simRate = num('sim-rate');
const floodRate = num('flood-rate');
const metricsS = num('metrics-s');
const rowS = num('row-s');
const drainS = num('drain-s');

const rssMb = (pid: number | undefined): number => {
  if (!pid) return NaN;
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
};
const r1 = (x: number): number => Math.round(x * 10) / 10;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const quantile = (xs: number[], q: number): number | null => {
  if (!xs.length) return null;
  const s = [...xs].sort((p, r) => p - r);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A child whose stderr (and stdout) tail is kept for the failure message. */
function launch(name: string, args: string[]): { child: ChildProcess; out: () => string } {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-20000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('error', (e) => keep(Buffer.from(`${name}: ${e.message}\n`)));
  return { child, out: () => out };
}
async function waitFor(what: string, ok: () => boolean, child: ChildProcess, out: () => string, timeoutMs = 180_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!ok()) {
    if (child.exitCode !== null || Date.now() > until)
      throw new EdgefitError('INTERNAL', `${what}: ${out().trim().split('\n').slice(-5).join(' | ')}`);
    await sleep(200);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'edgefit-soak-fleet-'));
const broker = await startBroker();
const procs: ChildProcess[] = [];
const cleanup = async (): Promise<void> => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
  await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
};

try {
  const report = await soak();
  process.stdout.write(`${JSON.stringify({ ...report, rows: undefined }, null, 1)}\n`);
  if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 1));
} catch (e) {
  process.stderr.write(`soak-fleet: ${oneLine(e)}\n`);
  process.exitCode = e instanceof EdgefitError ? e.exitCode : 1;
} finally {
  await cleanup();
}

async function soak(): Promise<FleetSoakReport> {
  const brokerPid = broker.kind === 'mosquitto' ? mosquittoPid(broker.port) : undefined;
  // the dashboard first (it sees every device arrive)
  const dash = launch('dashboard', [CLI, 'dashboard', '--broker', broker.url, '--port', '0', '--state-dir', join(dir, 'dashboard')]);
  procs.push(dash.child);
  await waitFor('dashboard did not start', () => /https?:\/\/\S+/.test(dash.out()), dash.child, dash.out, 60_000);
  const dashUrl = /(https?:\/\/[^\s)]+)/.exec(dash.out())![1]!.replace(/\/$/, '');

  // the agent: commands must be signed by a key it pins, so the flood can change nothing
  const keys = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'operator.pub'), keys.publicKey.export({ type: 'spki', format: 'pem' }));
  const deviceId = 'soak-fleet-agent';
  writeFileSync(
    join(dir, 'agent.json'),
    JSON.stringify({
      deviceId,
      stateDir: join(dir, 'agent'),
      model: { path: OCR_MODELS.cls.file, calib: OCR_FIT_SETS.cls.calibrate, shapes: { x: [...OCR_MODELS.cls.shape] } },
      fitter: 'reference-only',
      metricsIntervalS: metricsS,
      mqtt: { url: broker.url },
      dashboard: { port: 0 },
      serve: { port: 0 },
      security: { operatorKeys: [join(dir, 'operator.pub')] },
    }),
  );
  const topics = topicsFor(deviceId);
  const agentDbPath = join(dir, 'agent', 'state.db');
  const seqs = new Set<number>();
  let duplicates = 0;
  let delays: number[] = [];
  const allDelays: number[] = [];
  let minuteMetrics = 0;
  let responses = 0;
  let events = 0;
  const sub = mqtt.connect(broker.url, { clientId: 'soak-fleet-watch', reconnectPeriod: 1000 });
  await new Promise<void>((resolve, reject) => {
    sub.once('connect', () => resolve());
    sub.once('error', reject);
  });
  await sub.subscribeAsync([topics.metrics, topics.events, `${topics.prefix}response/+`], { qos: 1 });
  sub.on('message', (topic, payload) => {
    if (topic === topics.events) return void events++;
    if (topic !== topics.metrics) return void responses++;
    try {
      const m = JSON.parse(payload.toString()) as { seq: number; ts: string };
      if (seqs.has(m.seq)) return void duplicates++;
      seqs.add(m.seq);
      minuteMetrics++;
      const d = (Date.now() - Date.parse(m.ts)) / 1000;
      delays.push(d);
      allDelays.push(d);
    } catch {
      /* a malformed metrics message would show up as a lost seq */
    }
  });

  const agent = launch('agent', ['--max-semi-space-size=1', CLI, 'agent', '--config', join(dir, 'agent.json')]);
  procs.push(agent.child);
  await waitFor('agent did not deploy', () => /deployed:/.test(agent.out()), agent.child, agent.out);

  const sim = launch('simulator', [
    join(ROOT, 'dist/scripts/simulate-fleet.js'),
    '--broker',
    broker.url,
    '--devices',
    String(devices),
    '--rate',
    String(simRate),
    '--duration',
    String(durationS + drainS + 60),
  ]);
  procs.push(sim.child);
  await waitFor('simulator did not connect', () => /devices connected/.test(sim.out()), sim.child, sim.out, 300_000);

  // the flood: junk bytes, not JSON, wrong shapes, unknown verbs, and well-formed but unsigned
  // commands that would change the device (set-budget, fit, rollback, deploy)
  const flooder = mqtt.connect(broker.url, { clientId: 'soak-fleet-flood', reconnectPeriod: 1000 });
  await new Promise<void>((resolve, reject) => {
    flooder.once('connect', () => resolve());
    flooder.once('error', reject);
  });
  const junk = (i: number): [string, string | Buffer] => {
    const txn = `flood-${i}`;
    switch (i % 7) {
      case 0:
        return [topics.request('set-budget'), JSON.stringify({ v: 1, txn, args: { latencyMs: 1 } })];
      case 1:
        return [topics.request('fit'), JSON.stringify({ v: 1, txn, args: {} })];
      case 2:
        return [topics.request('rollback'), JSON.stringify({ v: 1, txn, ts: Date.now(), sig: 'AAAA', args: {} })];
      case 3:
        return [topics.request('deploy'), JSON.stringify({ v: 1, txn, args: { modelB64: 'AAAA', sha256: '0'.repeat(64) } })];
      case 4:
        return [topics.request('no-such-verb'), JSON.stringify({ v: 1, txn })];
      case 5:
        return [topics.request('set-budget'), Buffer.from([0xff, 0x00, 0x7b, i & 0xff])];
      default:
        return [topics.request('ping'), '{"v":1,"txn":'];
    }
  };
  let sent = 0;
  const t0 = Date.now();
  const floodTick = 50;
  const flood = setInterval(() => {
    // catch up to the rate whatever the timer's jitter
    const due = Math.floor(((Date.now() - t0) / 1000) * floodRate);
    for (; sent < due; sent++) {
      const [t, p] = junk(sent);
      flooder.publish(t, p, { qos: 0 });
    }
  }, floodTick);

  const rows: FleetSoakRow[] = [];
  const health = async (): Promise<{ devices: number; received: number; dropped: number } | null> => {
    try {
      const r = await fetch(`${dashUrl}/healthz`, { signal: AbortSignal.timeout(5000) });
      return (await r.json()) as { devices: number; received: number; dropped: number };
    } catch {
      return null;
    }
  };
  const sample = async (s: number): Promise<FleetSoakRow> => {
    const h = await health();
    const row: FleetSoakRow = {
      s: Math.round(s),
      agentRssMb: r1(rssMb(agent.child.pid)),
      dashboardRssMb: r1(rssMb(dash.child.pid)),
      brokerRssMb: brokerPid ? r1(rssMb(brokerPid)) : null,
      metrics: minuteMetrics,
      delayP50S: delays.length ? r3(quantile(delays, 0.5)!) : null,
      delayMaxS: delays.length ? r3(Math.max(...delays)) : null,
      // read from the agent's state.db: its metrics may be stuck behind the flood's events
      outboxPending: agentCounts(agentDbPath)?.pending ?? null,
      outboxDropped: agentCounts(agentDbPath)?.dropped ?? null,
      requestsSent: sent,
      dashboardDevices: h?.devices ?? null,
    };
    minuteMetrics = 0;
    delays = [];
    return row;
  };
  const head = '   min agentMB  dashMB brokerMB metrics delayP50 delayMax outbox dropped requests devices';
  const line = (x: FleetSoakRow): string =>
    [
      (x.s / 60).toFixed(1).padStart(6),
      x.agentRssMb.toFixed(1).padStart(7),
      x.dashboardRssMb.toFixed(1).padStart(7),
      (x.brokerRssMb ?? NaN).toFixed(1).padStart(8),
      String(x.metrics).padStart(7),
      (x.delayP50S ?? NaN).toFixed(2).padStart(8),
      (x.delayMaxS ?? NaN).toFixed(2).padStart(8),
      String(x.outboxPending ?? '-').padStart(6),
      String(x.outboxDropped ?? '-').padStart(7),
      String(x.requestsSent).padStart(8),
      String(x.dashboardDevices ?? '-').padStart(7),
    ].join(' ');
  process.stdout.write(
    `soak-fleet: ${devices} simulated devices (${simRate}/s each), 1 agent (metrics every ${metricsS} s), flood ${floodRate} requests/s, ${durationS} s, ${broker.kind}\n${head}\n`,
  );
  rows.push(await sample(0));
  process.stdout.write(`${line(rows[0]!)}\n`);
  for (let next = rowS; next <= durationS; next += rowS) {
    await sleep(Math.max(0, t0 + next * 1000 - Date.now()));
    for (const [name, c] of [
      ['agent', agent],
      ['dashboard', dash],
      ['simulator', sim],
    ] as const) {
      if (c.child.exitCode !== null)
        throw new EdgefitError('INTERNAL', `${name} exited during the soak: ${c.out().trim().split('\n').slice(-3).join(' | ')}`);
    }
    const row = await sample(next);
    rows.push(row);
    process.stdout.write(`${line(row)}\n`);
  }
  clearInterval(flood);
  const floodS = (Date.now() - t0) / 1000;
  flooder.end(true);
  // let the outbox drain: metrics queued behind the flood's events still count as arrived
  const drainUntil = Date.now() + drainS * 1000;
  while (Date.now() < drainUntil && agentCounts(agentDbPath)?.pending !== 0) await sleep(500);
  await sleep(Math.min(3000, metricsS * 2000));
  const h = await health();
  sub.end(true);
  const agentDb = agentCounts(agentDbPath);

  const sorted = [...seqs].sort((p, q) => p - q);
  const first = sorted[0] ?? null;
  const last = sorted[sorted.length - 1] ?? null;
  const agentRss = rows.map((r) => r.agentRssMb);
  const dashRss = rows.map((r) => r.dashboardRssMb);
  return {
    config: { durationS, devices, simRate, floodRate, metricsIntervalS: metricsS, broker: broker.kind },
    rows,
    metrics: {
      received: seqs.size,
      firstSeq: first,
      lastSeq: last,
      produced: agentDb?.produced ?? null,
      lost: first === null ? 0 : Math.max(last!, agentDb?.produced ?? 0) - first + 1 - seqs.size,
      stillQueued: agentDb?.queued ?? null,
      outboxDropped: agentDb?.dropped ?? null,
      duplicates,
      delayP50S: quantile(allDelays, 0.5),
      delayP99S: quantile(allDelays, 0.99),
      delayMaxS: allDelays.length ? r3(Math.max(...allDelays)) : null,
    },
    flood: { sent, ratePerS: r1(sent / floodS), responses, events },
    rssMb: {
      agent: { start: agentRss[0]!, end: agentRss[agentRss.length - 1]!, max: Math.max(...agentRss) },
      dashboard: { start: dashRss[0]!, end: dashRss[dashRss.length - 1]!, max: Math.max(...dashRss) },
    },
    dashboard: { devices: h?.devices ?? null, received: h?.received ?? null, dropped: h?.dropped ?? null },
  };
}

/** The agent's own count of metrics produced, still queued and dropped (read-only, beside it). */
function agentCounts(db: string): { produced: number; queued: number; pending: number; dropped: number } | undefined {
  try {
    const d = new Database(db, { readonly: true, fileMustExist: true });
    try {
      const one = (sql: string): number => (d.prepare(sql).get() as { n: number } | undefined)?.n ?? 0;
      return {
        produced: one(`SELECT last AS n FROM sequences WHERE stream = 'metrics'`),
        queued: one(`SELECT COUNT(*) AS n FROM outbox WHERE stream = 'metrics'`),
        pending: one('SELECT COUNT(*) AS n FROM outbox'),
        dropped: one(`SELECT value AS n FROM counters WHERE name = 'outbox_dropped'`),
      };
    } finally {
      d.close();
    }
  } catch {
    return undefined;
  }
}

/** The Mosquitto listening on `port` (devkit/broker.ts keeps its child to itself). */
function mosquittoPid(port: number): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (!cmd.includes('mosquitto')) continue;
      const conf = cmd.split('\0')[2];
      if (conf && readFileSync(conf, 'utf8').includes(`listener ${port} `)) return Number(d);
    } catch {
      /* gone or not ours */
    }
  }
  return undefined;
}
