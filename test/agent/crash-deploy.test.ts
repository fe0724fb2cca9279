// kill -9 in the middle of a deploy (file written, pointer not yet swapped): the previous model
// stays deployed, the SQLite store passes integrity_check, and a restart resumes serving it.
import t from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { startAgentProc, CLS_MODEL } from '../helpers/agent-proc.js';
import { parseModel, serializeModel } from '../../src/onnx/index.js';
import { Store } from '../../src/store/index.js';
import { makeOperator } from '../helpers/operator.js';

const broker = await startBroker();
const dir = mkdtempSync(join(tmpdir(), 'edgefit-crash-'));
const state = join(dir, 'state');
const dev = 'dev-crash';
const pre = `edgefit/${dev}/`;
const w = await Watcher.connect(broker.url, [`${pre}#`]);
const op = makeOperator(join(dir, 'op'));
t.teardown(async () => {
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

t.test('kill -9 during deploy', async (t) => {
  const a1 = startAgentProc({ broker: broker.url, deviceId: dev, stateDir: state });
  await w.waitFor((m) => m.topic === `${pre}events` && m.json().type === 'deployed', 60_000, 0, 'first deploy');
  const before = JSON.parse(readFileSync(join(state, 'models/current.json'), 'utf8')).current.version as string;
  a1.child.kill('SIGTERM');
  t.equal(await a1.exited, 0, 'SIGTERM exits 0');

  // a different real model: the same network with one more metadata entry
  const m = parseModel(readFileSync(CLS_MODEL));
  m.metadata.set('edgefit-test', 'variant-b');
  const bytes = serializeModel(m);
  const a2 = startAgentProc({
    broker: broker.url,
    deviceId: dev,
    stateDir: state,
    operatorKey: op.pubFile,
    env: { EDGEFIT_FAULT_DEPLOY_PAUSE_MS: '30000' },
  });
  let from = w.msgs.length;
  await w.waitFor((x) => x.topic === `${pre}status` && x.json().state === 'online', 30_000, from, 'agent 2 online');
  await w.publish(
    `${pre}request/deploy`,
    op.signed(dev, 'deploy', 'dep-1', {
      modelB64: Buffer.from(bytes).toString('base64'),
      sha256: createHash('sha256').update(bytes).digest('hex'),
    }),
  );
  await w.waitFor(
    (x) => x.topic === `${pre}events` && x.json().type === 'deploy-started' && x.json().txn === 'dep-1',
    30_000,
    from,
    'deploy-started',
  );
  a2.child.kill('SIGKILL');
  await a2.exited;
  t.equal(
    JSON.parse(readFileSync(join(state, 'models/current.json'), 'utf8')).current.version,
    before,
    'pointer still on the previous model',
  );
  const s = new Store(join(state, 'state.db'));
  t.ok(s.integrityOk(), 'sqlite integrity_check ok');
  t.equal(s.pendingDeployments().length, 1, 'the interrupted deploy is visible as pending');
  s.close();

  from = w.msgs.length;
  const a3 = startAgentProc({ broker: broker.url, deviceId: dev, stateDir: state });
  t.teardown(() => {
    a3.child.kill('SIGKILL');
  });
  const ev = await w.waitFor(
    (x) => x.topic === `${pre}events` && x.json().type === 'deploy-interrupted',
    30_000,
    from,
    'deploy-interrupted',
  );
  t.match(ev.json().message, before);
  await w.waitFor((x) => x.topic === `${pre}status` && x.json().state === 'online', 30_000, from);
  const f2 = w.msgs.length;
  await w.publish(`${pre}request/ping`, { txn: 'p' });
  const r = await w.waitFor((x) => x.topic === `${pre}response/ping`, 15_000, f2);
  t.equal(r.json().result.deployed, before, 'restart resumes with the previous model');
  const met = await w.waitFor(
    (x) => x.topic === `${pre}metrics` && x.json().model.latencyP50Ms !== null,
    30_000,
    from,
    'probe of the resumed model',
  );
  t.equal(met.json().model.version, before);
});
