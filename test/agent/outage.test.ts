// Store and forward: metrics keep their sequence numbers contiguous and in order across a
// broker outage. EDGEFIT_OUTAGE_S sets the outage (default 5 s in npm test; the 60 s
// run is done by hand: EDGEFIT_OUTAGE_S=60 npx tap dist/test/agent/outage.test.js).
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { startAgentProc } from '../helpers/agent-proc.js';

const OUTAGE_S = Number(process.env.EDGEFIT_OUTAGE_S ?? 5);
const broker = await startBroker({ persistent: true });
const dir = mkdtempSync(join(tmpdir(), 'edgefit-outage-'));
const dev = 'dev-outage';
const pre = `edgefit/${dev}/`;
const w = await Watcher.connect(broker.url, [`${pre}metrics`, `${pre}events`], 'edgefit-test-outage-watch');
const agent = startAgentProc({ broker: broker.url, deviceId: dev, stateDir: join(dir, 'state'), metricsIntervalS: 0.25 });
t.teardown(async () => {
  agent.child.kill('SIGKILL');
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

t.test(`metrics seq contiguous across a ${OUTAGE_S} s broker outage`, async (t) => {
  const seqs = (): number[] => w.msgs.filter((m) => m.topic === `${pre}metrics`).map((m) => m.json().seq as number);
  await w.waitFor((m) => m.topic === `${pre}metrics` && m.json().seq >= 5, 60_000, 0, 'first metrics');
  await broker.stop();
  const lastBefore = Math.max(...seqs());
  t.comment(`broker down after seq ${lastBefore} (${broker.kind}) for ${OUTAGE_S} s`);
  await new Promise((r) => setTimeout(r, OUTAGE_S * 1000));
  await broker.restart();
  // at 4 metrics/s the agent queued ~4*OUTAGE_S messages; wait until well past them
  const target = lastBefore + Math.ceil(OUTAGE_S * 4) + 8;
  await w.waitFor((m) => m.topic === `${pre}metrics` && m.json().seq >= target, 60_000 + OUTAGE_S * 1000, 0, `metrics seq ${target}`);
  const got = seqs();
  // at-least-once: a message in flight when the broker died may arrive twice; order is kept
  const unique = got.filter((s, i) => got.indexOf(s) === i);
  t.same(
    unique,
    [...unique].sort((a, b) => a - b),
    'first arrivals in increasing order',
  );
  const first = unique[0]!;
  const last = unique[unique.length - 1]!;
  t.equal(unique.length, last - first + 1, `no gaps between ${first} and ${last}`);
  t.ok(last >= target, 'the backlog drained');
  t.comment(`received ${got.length} metrics messages, ${got.length - unique.length} duplicates, seq ${first}..${last}`);
  const evSeqs = w.msgs.filter((m) => m.topic === `${pre}events`).map((m) => m.json().seq as number);
  const evUnique = evSeqs.filter((s, i) => evSeqs.indexOf(s) === i);
  t.equal(evUnique.length, Math.max(...evUnique) - Math.min(...evUnique) + 1, 'events contiguous too');
});
