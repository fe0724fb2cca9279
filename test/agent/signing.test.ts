// Command signing end to end: an agent process configured with an HMAC secret, on a real broker.
// Unsigned and wrongly signed commands get an INTEGRITY error response (txn echoed) and change
// nothing; a correctly signed one is answered; the agent stays up throughout.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { startAgentProc } from '../helpers/agent-proc.js';
import { signRequest } from '../../src/telemetry/signing.js';

const signHmac = (secret: string, verb: string, txn: string, ts: number, args: unknown): string =>
  signRequest({ mode: 'hmac', secret }, 'dev-sign', verb, txn, ts, args);

const broker = await startBroker();
const dir = mkdtempSync(join(tmpdir(), 'edgefit-sign-'));
const secret = 'a-shared-secret-of-32-characters';
writeFileSync(join(dir, 'secret'), `${secret}\n`);
writeFileSync(join(dir, 'config.json'), JSON.stringify({ security: { hmacSecretFile: join(dir, 'secret') } }));
const dev = 'dev-sign';
const pre = `edgefit/${dev}/`;
const w = await Watcher.connect(broker.url, [`${pre}#`]);
const agent = startAgentProc({
  broker: broker.url,
  deviceId: dev,
  stateDir: join(dir, 'state'),
  extraArgs: ['--config', join(dir, 'config.json')],
});
t.teardown(async () => {
  agent.child.kill('SIGKILL');
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

t.test('only correctly signed commands are obeyed when a secret is configured', async (t) => {
  // the fit's deploy (first run deploys the original before it)
  await w.waitFor((m) => m.topic === `${pre}events` && m.json().type === 'deployed' && m.json().data.fitId !== null, 60_000, 0, 'deployed');
  const ask = async (verb: string, body: Record<string, unknown>) => {
    const from = w.msgs.length;
    await w.publish(`${pre}request/${verb}`, body);
    return (await w.waitFor((m) => m.topic === `${pre}response/${verb}`, 10_000, from, `${verb} response`)).json();
  };
  const ts = Date.now();
  let r = await ask('set-budget', { txn: 's1', ts, args: { latencyMs: 1 } });
  t.match(r, { ok: false, txn: 's1', error: { code: 'INTEGRITY', message: /not signed/ } }, 'unsigned refused');

  r = await ask('set-budget', {
    txn: 's2',
    ts,
    args: { latencyMs: 1 },
    sig: signHmac('another-secret-of-32-characters!', 'set-budget', 's2', ts, { latencyMs: 1 }),
  });
  t.match(r, { ok: false, txn: 's2', error: { code: 'INTEGRITY' } }, 'wrong key refused');

  // signed for other args: a replayed signature cannot carry a changed payload
  r = await ask('set-budget', { txn: 's3', ts, args: { latencyMs: 1 }, sig: signHmac(secret, 'set-budget', 's3', ts, { latencyMs: 500 }) });
  t.match(r, { ok: false, txn: 's3', error: { code: 'INTEGRITY' } }, 'args bound to the signature');

  r = await ask('get-frontier', { txn: 's4', ts, sig: signHmac(secret, 'get-frontier', 's4', ts, undefined) });
  t.match(r, { ok: true, txn: 's4' }, 'signed request answered');
  t.equal(r.result.frontier[0].id, 'reference');
  t.notOk(
    w.msgs.some((m) => m.topic === `${pre}events` && m.json().type === 'budgets-changed'),
    'no refused command changed the budgets',
  );
  t.equal(agent.child.exitCode, null, 'agent still running');
});
