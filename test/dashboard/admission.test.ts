// Device admission (issue 20): 20,010 fake device ids used to fill the dashboard's table and get
// the next real device refused. Now known devices are never refused, new ids wait in a bounded
// pool until they send a status and metrics as an agent does, and --admit patterns refuse the
// rest outright. The flood is published at a real Mosquitto; a realistic simulated device then
// joins.
import t from 'tap';
import { connectAsync } from 'mqtt';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Admission, admitPatterns, type Offer } from '../../src/dashboard/admission.js';
import { startDashboard, type Dashboard } from '../../src/dashboard/index.js';
import type { MetricsPayload, StatusPayload } from '../../src/telemetry/payloads.js';
import { SimDevice, SimFleet } from '../../devkit/sim.js';
import { startBroker } from '../../devkit/broker.js';
import { CLI } from '../../devkit/paths.js';
import { onlineStatus, until } from './support.js';

const status = (id: string): Offer => ({ kind: 'status', body: JSON.parse(onlineStatus(id)) as StatusPayload });
const sample = new SimDevice(1, { broker: 'mqtt://unused', prefix: 'edgefit', rate: 1 });
const metrics = (): Offer => ({ kind: 'metrics', body: sample.metricsPayload() as MetricsPayload });

t.test('admit patterns: * and ? over device ids, everything else refused as a pattern', async (t) => {
  t.equal(admitPatterns([]), null, 'none: every id');
  t.equal(admitPatterns(['*']), null);
  const re = admitPatterns(['pi-*', ' jetson-?? ', 'x86.lab'])!;
  for (const id of ['pi-1', 'pi-', 'pi-kitchen.2', 'jetson-07', 'x86.lab']) t.ok(re.test(id), id);
  for (const id of ['pi', 'rpi-1', 'jetson-7', 'jetson-007', 'x86-lab', 'x86.lab2']) t.notOk(re.test(id), id);
  t.throws(() => admitPatterns(['pi-[0-9]']), { code: 'USAGE', message: /bad admit pattern/ });
  t.throws(() => admitPatterns(['a/b']), { code: 'USAGE' });
});

t.test('pending pool: status AND metrics promote; one-message ids are evicted first; bounded by count and bytes', async (t) => {
  const a = new Admission({ pendingMax: 3 });
  t.equal(a.offer('real', status('real'), 200), null, 'a status alone waits');
  t.equal(a.offer('real', { kind: 'profile', body: {} as never }, 3000), null, 'a profile too');
  for (let i = 0; i < 10; i++) t.equal(a.offer(`junk-${i}`, status(`junk-${i}`), 200), null);
  t.match(a.stats(), { pending: 3, evicted: 8 }, 'junk evicts junk; the id that sent more stays');
  const p = a.offer('real', metrics(), 900);
  t.ok(p, 'status then metrics: admitted');
  t.equal(p!.status?.deviceId, 'real', 'what it sent while waiting is handed over');
  t.equal(p!.messages, 3);
  t.match(a.stats(), { pending: 2, admitted: 1 });

  const b = new Admission({ pendingMax: 100, pendingBytes: 1000 });
  for (let i = 0; i < 10; i++) b.offer(`big-${i}`, status(`big-${i}`), 300);
  t.ok(b.stats().pendingBytes <= 1000, `bytes bounded (${b.stats().pendingBytes})`);
  t.equal(b.stats().pending, 3);
  // a device resending the same kind does not grow what it holds
  for (let i = 0; i < 5; i++) b.offer('big-9', status('big-9'), 300);
  t.equal(b.stats().pendingBytes, 900);
});

t.test('admissions per interval are capped; the rest wait for their next message', async (t) => {
  const lines: string[] = [];
  const a = new Admission({ perInterval: 2, intervalMs: 10_000, log: (l) => lines.push(l) });
  const now = 1_000_000;
  for (const id of ['d1', 'd2', 'd3']) a.offer(id, status(id), 100, now);
  t.ok(a.offer('d1', metrics(), 100, now));
  t.ok(a.offer('d2', metrics(), 100, now + 1));
  t.equal(a.offer('d3', metrics(), 100, now + 2), null, 'third in the interval deferred');
  t.equal(a.stats().pending, 1, 'still pending');
  t.ok(a.offer('d3', metrics(), 100, now + 10_001), 'admitted in the next interval');
  a.report();
  t.equal(lines.length, 1, 'one aggregated line');
  t.match(lines[0], /^device admission: 3 admitted, 1 deferred by the rate cap \(2 per 10 s\), 0 evicted .*0 refused/);
  a.report();
  t.equal(lines.length, 1, 'nothing new, no line');
  const r = new Admission({ admit: ['pi-*'] });
  t.equal(r.offer('evil-1', status('evil-1'), 100), null);
  t.match(r.stats(), { pending: 0, refused: 1 }, 'refused ids are not even pending');
});

t.test('20,010 fake device ids at a real Mosquitto: the table stays, a real new device joins', async (t) => {
  const broker = await startBroker();
  const dirA = mkdtempSync(join(tmpdir(), 'edgefit-admit-a-'));
  const dirB = mkdtempSync(join(tmpdir(), 'edgefit-admit-b-'));
  const logs: string[] = [];
  const open = (stateDir: string, admit?: string[]): Dashboard =>
    startDashboard({ broker: broker.url, port: 0, stateDir, log: (l) => logs.push(l), ...(admit ? { admit } : {}) });
  let dashA = open(dirA);
  const dashB = open(dirB, ['sim-*']);
  await dashA.start();
  await dashB.start();
  const known = new SimFleet({ broker: broker.url, devices: 3, rate: 2 });
  await known.start();
  const newcomer = new SimFleet({ broker: broker.url, devices: 1, rate: 2, start: 500 });
  const flood = await connectAsync(broker.url);
  // and `edgefit dashboard` in its own process, whose RSS is the dashboard's alone
  const dirC = mkdtempSync(join(tmpdir(), 'edgefit-admit-c-'));
  const cli = spawn(process.execPath, [CLI, 'dashboard', '--broker', broker.url, '--port', '0', '--state-dir', dirC], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let cliOut = '';
  cli.stdout.on('data', (b: Buffer) => (cliOut += b.toString()));
  const rssOf = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  t.teardown(async () => {
    if (cli.exitCode === null) {
      cli.kill('SIGTERM');
      await new Promise((r) => cli.once('exit', r));
    }
    rmSync(dirC, { recursive: true, force: true });
    await flood.endAsync();
    await newcomer.stop();
    await known.stop();
    await dashA.stop();
    await dashB.stop();
    await broker.stop();
    rmSync(dirA, { recursive: true, force: true });
    rmSync(dirB, { recursive: true, force: true });
  });
  const knownIds = ['sim-0001', 'sim-0002', 'sim-0003'];
  await until('the known devices', () => knownIds.every((id) => dashA.fleet.has(id) && dashB.fleet.has(id)));
  const cliUrl = await until('the CLI dashboard', () => /edgefit dashboard: (http:\S+)/.exec(cliOut)?.[1], 30_000);
  type Health = { devices: number; received: number; pending: number };
  const health = async (): Promise<Health> => (await (await fetch(`${cliUrl}healthz`)).json()) as Health;
  await until('the known devices in the CLI dashboard', async () => (await health()).devices === 3);
  const rss0 = process.memoryUsage().rss;
  const cliRss0 = rssOf(cli.pid!);

  // one valid-looking status per fake id, as the flood did
  const N = 20_010;
  /** One wave of N fresh ids; the ms until every dashboard has received it. */
  const wave = async (from: number): Promise<number> => {
    const r0 = dashA.link.stats.received;
    const c0 = (await health()).received;
    const t0 = Date.now();
    for (let i = from; i < from + N; i++) {
      flood.publish(`edgefit/fake-${i}/status`, onlineStatus(`fake-${i}`), { qos: 0 });
      if (i % 1000 === 999) await flood.publishAsync('edgefit/fake-sync/x', '', { qos: 1 });
    }
    await until(`${N} messages at the dashboard`, () => dashA.link.stats.received - r0 >= N, 60_000, 100);
    await until('the flood at the CLI dashboard', async () => (await health()).received - c0 >= N, 60_000, 200);
    return Date.now() - t0;
  };
  const floodMs = await wave(0);
  const rss1 = process.memoryUsage().rss;
  const heldAfterOne = dashA.link.admission.stats();
  const cliRss1 = rssOf(cli.pid!);
  // a second wave of new ids: nothing is kept per id (RSS may still rise while V8 defers
  // collection: in-process with forced GC the heap stays at the same size wave after wave)
  await wave(N);
  const cliRss2 = rssOf(cli.pid!);
  const cliDevices = (await health()).devices;
  const a = dashA.link.admission.stats();
  const b = dashB.link.admission.stats();
  const rows = (dir: string): number => {
    const db = new Database(join(dir, 'dashboard.sqlite'), { readonly: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM devices').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };
  await new Promise((r) => setTimeout(r, 300)); // one flush
  t.comment(
    `flood of ${N} ids delivered in ${floodMs} ms; dashboard A: ${dashA.fleet.size()} fleet rows, ${rows(dirA)} SQLite rows, ` +
      `${a.pending} pending (${(a.pendingBytes / 1024).toFixed(0)} KB), ${a.evicted} evicted; dashboard B (--admit sim-*): ${b.refused} refused, ${b.pending} pending; ` +
      `test process RSS ${(rss0 / 2 ** 20).toFixed(0)} -> ${(rss1 / 2 ** 20).toFixed(0)} MB; ` +
      `\`edgefit dashboard\` process: RSS ${cliRss0.toFixed(1)} -> ${cliRss1.toFixed(1)} MB after one wave, ${cliRss2.toFixed(1)} MB after two, ` +
      `${cliDevices} devices (shared box)`,
  );
  t.equal(cliDevices, 3, 'the CLI dashboard: no fake id in its fleet either');
  t.equal((await health()).pending, 1000, '/healthz says how many ids wait');
  t.ok(cliRss1 - cliRss0 < 64, `the dashboard process grew ${(cliRss1 - cliRss0).toFixed(1)} MB over the first flood`);
  t.ok(cliRss2 - cliRss0 < 96, `and ${(cliRss2 - cliRss0).toFixed(1)} MB over two floods of new ids`);
  t.equal(dashA.fleet.size(), 3, 'no fake id became a fleet row');
  t.equal(rows(dirA), 3, 'nor a SQLite row');
  t.ok(a.pending <= 1000, `pending pool bounded (${a.pending})`);
  t.ok(a.evicted >= 2 * N - 1000, `least recently seen evicted (${a.evicted})`);
  t.equal(a.pendingBytes, heldAfterOne.pendingBytes, 'the pool holds the same after the second flood');
  t.equal(b.pending, 0, 'with --admit sim-*, fake-* ids are not even pending');
  t.ok(b.refused >= 2 * N, `and are refused (${b.refused})`);
  t.ok(rss1 - rss0 < 128 * 2 ** 20, `RSS grew ${((rss1 - rss0) / 2 ** 20).toFixed(1)} MB over a ${N}-id flood`);

  // a real new device (status, profile, events, metrics as an agent sends them) joins both
  await newcomer.start();
  await until('the newcomer in both fleets', () => dashA.fleet.has('sim-0500') && dashB.fleet.has('sim-0500'), 15_000);
  const s = dashA.fleet.state('sim-0500')!;
  t.ok(s.summary.online && s.summary.board && s.summary.last, 'with its status, profile and metrics');
  // the known devices carry on
  const seen = Date.now();
  await until('known devices still reporting', () => knownIds.every((id) => dashA.fleet.state(id)!.summary.lastSeen > seen), 10_000);
  t.pass('known devices unaffected');
  dashA.link.admission.report();
  t.ok(
    logs.some((l) => /^device admission: \d+ admitted, \d+ deferred .*, \d+ evicted from the pending pool/.test(l)),
    'aggregated admission log lines',
  );
  t.ok(logs.length < 20, `${logs.length} log lines for the flood, not one per id`);

  // a restart keeps the known devices (SQLite) and nothing of the flood
  await dashA.stop();
  dashA = open(dirA);
  await dashA.start();
  t.same(
    dashA.fleet
      .summaries()
      .map((d) => d.id)
      .sort(),
    [...knownIds, 'sim-0500'],
    'after a restart: the known devices and the newcomer',
  );
});

t.test('a device whose retained status a flood evicted still joins on its metrics: the dashboard asks the broker for it', async (t) => {
  const broker = await startBroker();
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-admit-late-'));
  const dash = startDashboard({ broker: broker.url, port: 0, stateDir: dir, admission: { pendingMax: 50 } });
  await dash.start();
  const c = await connectAsync(broker.url);
  t.teardown(async () => {
    await c.endAsync();
    await dash.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const id = 'late-1';
  await c.publishAsync(`edgefit/${id}/status`, onlineStatus(id), { qos: 1, retain: true });
  await until('its status pending', () => dash.link.admission.stats().pending === 1);
  for (let i = 0; i < 200; i++) c.publish(`edgefit/junk-${i}/status`, onlineStatus(`junk-${i}`), { qos: 0 });
  await until('the flood evicting it', () => dash.link.admission.stats().evicted >= 151);
  const m = { ...sample.metricsPayload(), deviceId: id };
  await c.publishAsync(`edgefit/${id}/metrics`, JSON.stringify(m), { qos: 1 });
  await until('the device in the fleet', () => dash.fleet.has(id), 10_000);
  t.match(dash.fleet.state(id), { status: { deviceId: id, state: 'online' } }, 'with the status the broker kept for it');
  t.equal(dash.fleet.size(), 1, 'and none of the junk');
  const a = new Admission();
  a.offer('x', metrics(), 10);
  t.equal(a.wantsStatus('x'), true, 'metrics without a status: ask once');
  t.equal(a.wantsStatus('x'), false, 'not twice');
  t.equal(a.wantsStatus('nobody'), false);
});
