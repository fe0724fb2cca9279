// A corrupt state.db no longer stops the agent for good (issue 20). A real agent (child process,
// real Mosquitto, real SQLite file) deploys and is stopped; its state.db is then damaged four
// ways (garbage bytes, truncated, a table dropped, an index that fails PRAGMA integrity_check)
// and each time the agent starts again: the damaged file is moved aside as
// state.db.corrupt-<timestamp>, a 'state-recovered' event says so, and the same deployed version
// is served over HTTP, answered in ping and reported in metrics; the rebuilt state.db is sound.
import t from 'tap';
import Database from 'better-sqlite3';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { closeClients, infer } from '../../devkit/serve-client.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { startAgentProc, type AgentProc } from '../helpers/agent-proc.js';
import { Store } from '../../src/store/index.js';

const broker = await startBroker();
const dir = mkdtempSync(join(tmpdir(), 'edgefit-staterec-'));
const state = join(dir, 'state');
const db = join(state, 'state.db');
const dev = 'dev-staterec';
const pre = `edgefit/${dev}/`;
const w = await Watcher.connect(broker.url, [`${pre}#`]);
const children: AgentProc[] = [];
const start = (): AgentProc => {
  const a = startAgentProc({ broker: broker.url, deviceId: dev, stateDir: state });
  children.push(a);
  return a;
};
t.teardown(async () => {
  for (const a of children) if (a.child.exitCode === null) a.child.kill('SIGKILL');
  closeClients();
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

const event = (type: string, from: number, what = type) =>
  w.waitFor((m) => m.topic === `${pre}events` && m.json().type === type, 90_000, from, what);

/** One fit key inside the fits_key index page altered: pages parse, integrity_check fails. */
function breakIndex(p: string): void {
  const d = new Database(p);
  const key = (d.prepare('SELECT fit_key FROM fits LIMIT 1').get() as { fit_key: string }).fit_key;
  const root = (d.prepare(`SELECT rootpage FROM sqlite_master WHERE name = 'fits_key'`).get() as { rootpage: number }).rootpage;
  const size = d.pragma('page_size', { simple: true }) as number;
  d.close();
  const at = readFileSync(p)
    .subarray((root - 1) * size, root * size)
    .indexOf(key);
  if (at < 0) throw new Error('fit key not found in its index page');
  const fd = openSync(p, 'r+');
  writeSync(fd, Buffer.from(key[0] === 'a' ? 'b' : 'a'), 0, 1, (root - 1) * size + at);
  closeSync(fd);
}

/** The serve process is up before the deployer has loaded the deployed version into it: retry 503s. */
async function inferWhenLoaded(url: string, inputs: Parameters<typeof infer>[2]): ReturnType<typeof infer> {
  for (let i = 0; ; i++) {
    try {
      return await infer({ url }, 'default', inputs);
    } catch (e) {
      if (i >= 120 || !/answered 503/.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

const DAMAGE: [string, (p: string) => void, RegExp][] = [
  ['garbage bytes', (p) => writeFileSync(p, Buffer.alloc(65536, 0x5a)), /SQLITE_NOTADB/],
  ['truncated to one page', (p) => truncateSync(p, 4096), /SQLITE_CORRUPT|integrity_check/],
  [
    'a table dropped',
    (p) => {
      const d = new Database(p);
      d.exec('DROP TABLE deployments');
      d.close();
    },
    /lacks table deployments/,
  ],
  ['an index that fails integrity_check', breakIndex, /integrity_check failed: .*fits_key/],
];

t.test('the agent starts on a damaged state.db, keeps serving its deployed version and says so', async (t) => {
  const a1 = start();
  await event('fit-done', 0, 'first fit');
  const before = JSON.parse(readFileSync(join(state, 'models/current.json'), 'utf8')).current.version as string;
  a1.child.kill('SIGTERM');
  t.equal(await a1.exited, 0, 'first agent stopped');

  let moved = 0;
  for (const [what, damage, reason] of DAMAGE) {
    damage(db);
    const from = w.msgs.length;
    const a = start();
    const rec = await event('state-recovered', from, `${what}: state-recovered`);
    t.match(rec.json().data.reason, reason, `${what}: the event says why (${rec.json().data.reason})`);
    t.equal(rec.json().data.deployed, before, `${what}: the event names the version kept`);
    t.match(rec.json().message, new RegExp(`${before} stays deployed`));
    t.match(rec.json().data.movedTo, /state\.db\.corrupt-\d{4}-\d\d-\d\dT/);
    // serves it: a real inference over HTTP answers with the same version
    const served = await event('serve-started', from);
    const x = { dtype: 'float32' as const, shape: [1, 3, 48, 192], data: new Float32Array(3 * 48 * 192).fill(0.5) };
    const r = await inferWhenLoaded(served.json().data.url as string, { x });
    t.equal(r.json.model_version, before, `${what}: serves the deployed version`);
    // reports it: ping and a probed metrics sample
    const f2 = w.msgs.length;
    await w.publish(`${pre}request/ping`, { txn: `ping-${moved}` });
    const pong = await w.waitFor((m) => m.topic === `${pre}response/ping`, 30_000, f2, 'ping');
    t.equal(pong.json().result.deployed, before, `${what}: ping names it`);
    const met = await w.waitFor(
      (m) => m.topic === `${pre}metrics` && m.json().model.latencyP50Ms !== null,
      60_000,
      from,
      `${what}: a probed metrics sample`,
    );
    t.equal(met.json().model.version, before, `${what}: metrics report it`);
    a.child.kill('SIGTERM');
    t.equal(await a.exited, 0, `${what}: stops cleanly`);
    t.match(a.output(), /state database was unusable/, 'logged too');
    moved++;
    t.equal(
      readdirSync(state).filter((f) => f.startsWith('state.db.corrupt-') && !/-(wal|shm)$/.test(f)).length,
      moved,
      'one more file set aside',
    );
    const s = new Store(db);
    t.ok(s.integrityOk(), `${what}: the rebuilt state.db is sound`);
    t.equal(s.activeDeployment()?.version, before, `${what}: and records the deployed version as active`);
    s.close();
  }

  // a sound state.db is not touched: no event, nothing moved
  const from = w.msgs.length;
  const a = start();
  await w.waitFor((m) => m.topic === `${pre}metrics` && m.json().model.version === before, 60_000, from, 'healthy restart');
  a.child.kill('SIGTERM');
  await a.exited;
  t.notOk(
    w.msgs.slice(from).some((m) => m.topic === `${pre}events` && m.json().type === 'state-recovered'),
    'no state-recovered on a sound database',
  );
  t.equal(readdirSync(state).filter((f) => f.startsWith('state.db.corrupt-') && !/-(wal|shm)$/.test(f)).length, moved);
});
