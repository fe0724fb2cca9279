// Issue 20's control attacks, done against real agent processes on a real broker (Mosquitto):
// - default config: an anonymous deploy of a tiny model that ignores its input, fit, set-budget and
//   rollback are refused and change nothing; ping and get-frontier answer; the status says read-only;
// - a pinned operator key: a signed set-budget is obeyed once, the same message replayed twice is
//   refused, and once more after a restart; a request signed for another device, or by a key that
//   is not pinned, is refused;
// - legacy HMAC: the same replay and device checks.
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { ModelBuilder } from '../../devkit/builder.js';
import { serializeModel } from '../../src/onnx/index.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { startAgentProc, type AgentProc } from '../helpers/agent-proc.js';
import { makeOperator, signedBody } from '../helpers/operator.js';

const broker = await startBroker();
const dir = mkdtempSync(join(tmpdir(), 'edgefit-sign-'));
const w = await Watcher.connect(broker.url, ['edgefit/#']);
const procs: AgentProc[] = [];
const start = (deviceId: string, extra: Partial<Parameters<typeof startAgentProc>[0]> = {}): AgentProc => {
  const p = startAgentProc({ broker: broker.url, deviceId, stateDir: join(dir, deviceId), probeIntervalS: 5, ...extra });
  procs.push(p);
  return p;
};
t.teardown(async () => {
  for (const p of procs) p.child.kill('SIGKILL');
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

const op = makeOperator(join(dir, 'op'));
const stranger = makeOperator(join(dir, 'stranger'));
const secret = 'a-shared-secret-of-32-characters';
writeFileSync(join(dir, 'secret'), `${secret}\n`);
writeFileSync(join(dir, 'hmac.json'), JSON.stringify({ security: { hmacSecretFile: join(dir, 'secret') } }));

// all three boot at once: the box has two shared cores and each runs a (reference-only) fit
const open = start('dev-open');
const keyed = start('dev-keyed', { operatorKey: op.pubFile });
const hmac = start('dev-hmac', { extraArgs: ['--config', join(dir, 'hmac.json')] });

const topic = (dev: string, kind: string): string => `edgefit/${dev}/${kind}`;
async function ask(dev: string, verb: string, body: unknown): Promise<any> {
  const from = w.msgs.length;
  await w.publish(topic(dev, `request/${verb}`), body);
  const txn = typeof body === 'object' && body ? (body as { txn?: string }).txn : undefined;
  return (
    await w.waitFor(
      (m) => m.topic === topic(dev, `response/${verb}`) && m.json().txn === (txn ?? null),
      15_000,
      from,
      `${dev} ${verb} response`,
    )
  ).json();
}
const events = (dev: string, type: string): any[] =>
  w.msgs.filter((m) => m.topic === topic(dev, 'events') && m.json().type === type).map((m) => m.json());
/** The fit's deploy: the agent is fully up (first run and fit done). */
const settled = (dev: string): Promise<unknown> =>
  w.waitFor(
    (m) => m.topic === topic(dev, 'events') && m.json().type === 'deployed' && m.json().data.fitId !== null,
    120_000,
    0,
    `${dev} fit deployed`,
  );
const pointer = (dev: string): string => JSON.parse(readFileSync(join(dir, dev, 'models/current.json'), 'utf8')).current.version;

t.test('default config: read-only; anonymous deploy, fit, set-budget, rollback refused; ping and get-frontier answered', async (t) => {
  await settled('dev-open');
  const status = (await w.waitFor((m) => m.topic === topic('dev-open', 'status') && m.json().state === 'online', 10_000)).json();
  t.equal(status.control, 'read-only', 'the status says so');
  t.match(open.output(), /read-only: no operator key is pinned/, 'and one line at start');
  const before = pointer('dev-open');
  const fitsBefore = events('dev-open', 'fit-started').length;

  // a 'model' that ignores its input: x * 0, valid and runnable (so only the posture can stop it)
  const b = new ModelBuilder();
  b.output(b.scalarOp('Mul', b.input('x', [1, 3, 48, 192]), 0));
  const bytes = serializeModel(b.build());
  t.ok(bytes.length < 400, `a tiny model (${bytes.length} bytes)`);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const refused = {
    ok: false,
    error: { code: 'INTEGRITY', message: /^read-only: no operator key is pinned \(security\.operatorKeys; see README Security\)/ },
  };
  t.match(await ask('dev-open', 'deploy', { txn: 'evil-1', args: { modelB64: Buffer.from(bytes).toString('base64'), sha256 } }), refused);
  t.match(await ask('dev-open', 'fit', { txn: 'evil-2', args: {} }), refused);
  t.match(await ask('dev-open', 'set-budget', { txn: 'evil-3', args: { latencyMs: 1 } }), refused);
  t.match(await ask('dev-open', 'rollback', { txn: 'evil-4', args: {} }), refused);
  // signed by a key the device does not pin: still nothing to check it against
  t.match(await ask('dev-open', 'set-budget', op.signed('dev-open', 'set-budget', 'evil-5', { latencyMs: 1 })), refused);

  const ping = await ask('dev-open', 'ping', { txn: 'p1' });
  t.match(ping, { ok: true, result: { pong: true, deployed: before } });
  t.match(await ask('dev-open', 'get-frontier', { txn: 'g1' }), { ok: true, result: { frontier: [{ id: 'reference' }] } });
  t.equal(pointer('dev-open'), before, 'the deployed version is unchanged');
  t.same(events('dev-open', 'budgets-changed'), [], 'budgets unchanged');
  t.equal(events('dev-open', 'fit-started').length, fitsBefore, 'no fit started');
  t.equal(events('dev-open', 'deploy-started').filter((e) => e.txn?.startsWith('evil')).length, 0, 'no deploy started');
});

t.test('pinned key: signed set-budget obeyed once; replays (also after a restart), other device, other key refused', async (t) => {
  await settled('dev-keyed');
  const status = (await w.waitFor((m) => m.topic === topic('dev-keyed', 'status') && m.json().state === 'online', 10_000)).json();
  t.equal(status.control, 'operator-key');
  const body = op.signed('dev-keyed', 'set-budget', 'sb-1', { latencyMs: 500 });
  t.match(await ask('dev-keyed', 'set-budget', body), { ok: true, result: { budgets: { latencyMs: 500 } } }, 'obeyed');
  for (let i = 1; i <= 2; i++)
    t.match(
      await ask('dev-keyed', 'set-budget', body),
      { ok: false, error: { code: 'INTEGRITY', message: /already accepted/ } },
      `replay ${i}`,
    );
  t.equal(events('dev-keyed', 'budgets-changed').length, 1, 'applied once');

  t.match(
    await ask('dev-keyed', 'set-budget', op.signed('dev-other', 'set-budget', 'sb-2', { latencyMs: 1 })),
    { ok: false, error: { code: 'INTEGRITY', message: /does not verify/ } },
    'signed for another device',
  );
  t.match(
    await ask('dev-keyed', 'set-budget', stranger.signed('dev-keyed', 'set-budget', 'sb-3', { latencyMs: 1 })),
    { ok: false, error: { code: 'INTEGRITY', message: /does not verify/ } },
    'signed by a key that is not pinned',
  );
  t.match(await ask('dev-keyed', 'set-budget', { txn: 'sb-4', args: { latencyMs: 1 } }), { ok: false, error: { message: /not signed/ } });
  t.match(await ask('dev-keyed', 'ping', { txn: 'p2' }), { ok: true }, 'read-only verbs stay open');

  // a restart does not reopen the window: the record is in state.db
  keyed.child.kill('SIGTERM');
  t.equal(await keyed.exited, 0);
  const from = w.msgs.length;
  start('dev-keyed', { operatorKey: op.pubFile });
  await w.waitFor((m) => m.topic === topic('dev-keyed', 'status') && m.json().state === 'online', 30_000, from, 'restarted');
  // budgets are judged against the profile: set-budget is answered once the box is profiled
  await w.waitFor((m) => m.topic === topic('dev-keyed', 'events') && m.json().type === 'profiled', 30_000, from, 'profiled');
  t.match(
    await ask('dev-keyed', 'set-budget', body),
    { ok: false, error: { code: 'INTEGRITY', message: /already accepted/ } },
    'replay after restart',
  );
  t.equal(events('dev-keyed', 'budgets-changed').length, 1, 'still applied once');
  const fresh = await ask('dev-keyed', 'set-budget', op.signed('dev-keyed', 'set-budget', 'sb-5', { latencyMs: 600 }));
  t.match(fresh, { ok: true }, `a new one is obeyed: ${JSON.stringify(fresh.error ?? null)}`);
});

t.test('legacy HMAC: logged as legacy, device-bound and replay-proof too', async (t) => {
  await settled('dev-hmac');
  const status = (await w.waitFor((m) => m.topic === topic('dev-hmac', 'status') && m.json().state === 'online', 10_000)).json();
  t.equal(status.control, 'hmac-legacy');
  t.match(hmac.output(), /LEGACY shared-secret/);
  const key = { mode: 'hmac' as const, secret };
  const body = signedBody(key, 'dev-hmac', 'set-budget', 'h-1', { latencyMs: 700 });
  t.match(await ask('dev-hmac', 'set-budget', body), { ok: true });
  for (let i = 1; i <= 2; i++)
    t.match(
      await ask('dev-hmac', 'set-budget', body),
      { ok: false, error: { code: 'INTEGRITY', message: /already accepted/ } },
      `replay ${i}`,
    );
  // what a device sharing the fleet secret would have accepted before issue 20
  t.match(await ask('dev-hmac', 'set-budget', signedBody(key, 'dev-other', 'set-budget', 'h-2', { latencyMs: 1 })), {
    ok: false,
    error: { code: 'INTEGRITY', message: /does not verify/ },
  });
  t.match(
    await ask(
      'dev-hmac',
      'set-budget',
      signedBody({ mode: 'hmac', secret: 'another-secret-of-32-characters!' }, 'dev-hmac', 'set-budget', 'h-3', { latencyMs: 1 }),
    ),
    {
      ok: false,
      error: { code: 'INTEGRITY' },
    },
  );
  // signed for other args: a replayed signature cannot carry a changed payload
  const moved = { ...signedBody(key, 'dev-hmac', 'set-budget', 'h-4', { latencyMs: 500 }), args: { latencyMs: 1 } };
  t.match(await ask('dev-hmac', 'set-budget', moved), { ok: false, error: { code: 'INTEGRITY' } });
  t.equal(events('dev-hmac', 'budgets-changed').length, 1, 'applied once');
  t.equal(hmac.child.exitCode, null, 'agent still running');
});
