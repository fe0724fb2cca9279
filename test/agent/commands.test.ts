// The command router and its verb table, without a broker: requests go in as 'command' on the
// bus, answers come out as 'response' echoing the txn; failures are error responses (and a
// command-rejected event) and the router keeps answering.
import t from 'tap';
import { AgentBus } from '../../src/agent/bus.js';
import { COMMANDS, CommandRouter, READ_ONLY_REFUSAL, STATE_CHANGING, type CommandContext } from '../../src/agent/commands.js';
import { EdgefitError } from '../../src/errors.js';
import type { Budgets } from '../../src/fit/types.js';
import type { ResponsePayload } from '../../src/telemetry/payloads.js';
import { VERBS } from '../../src/telemetry/topics.js';
import { checkPayload } from '../../src/telemetry/validate.js';
import { loadPublicKey, type SigningConfig } from '../../src/telemetry/signing.js';
import { Store } from '../../src/store/index.js';
import { readFileSync } from 'node:fs';
import { makeOperator, signedBody } from '../helpers/operator.js';

// the router pins this operator's key unless a test says otherwise; state-changing verbs are signed with it
const op = makeOperator();
const pinned: SigningConfig = { mode: 'ed25519', publicKeys: [loadPublicKey(readFileSync(op.pubFile, 'utf8'))], maxSkewMs: 300_000 };

function setup(over: Partial<CommandRouterContext> = {}, signing: SigningConfig = pinned) {
  const bus = new AgentBus();
  // the agent's replay record: a real (in-memory) store
  const store = new Store(':memory:');
  let budgets: Budgets = { latencyMs: 50 };
  const calls: string[] = [];
  let running = false;
  const context: CommandRouterContext = {
    uptimeS: () => 42,
    fits: {
      ensure: (txn) => {
        calls.push(`ensure:${txn ?? ''}`);
        if (running) return false;
        running = true;
        return true;
      },
      key: () => JSON.stringify(budgets),
      current: () => undefined,
      level: () => null,
    },
    budgets: { set: (b) => (budgets = { ...budgets, ...b }) },
    deployer: {
      current: () => undefined,
      exclusive: (fn) => fn(),
      deployEntry: () => Promise.reject(new Error('not in this test')),
      deployBytes: () => Promise.reject(new Error('not in this test')),
      rollback: () => Promise.reject(new EdgefitError('USAGE', 'there is no previous model to roll back to')),
    },
    shapes: {},
    maxModelMb: 1,
    ...over,
  };
  const router = new CommandRouter({
    bus,
    deviceId: 'dev-cmd',
    signing,
    replay: { accept: (txn, ts) => store.acceptTxn(txn, ts, 300_000) },
    context,
  });
  router.start();
  const events: Array<{ type: string; data: Record<string, unknown>; txn: string | undefined }> = [];
  bus.on('event', (type, _m, data, txn) => events.push({ type, data, txn }));
  const ask = (verb: string, body: unknown): Promise<ResponsePayload> =>
    new Promise((resolve) => {
      bus.once('response', (v, p) => resolve(checkPayload('response', { ...p, verb: v === p.verb ? p.verb : `${v} != ${p.verb}` })));
      bus.emit('command', verb, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
    });
  /** A request signed by the pinned operator for this device. */
  const signed = (verb: string, txn: string, args: Record<string, unknown> = {}): Promise<ResponsePayload> =>
    ask(verb, op.signed('dev-cmd', verb, txn, args));
  return {
    bus,
    router,
    ask,
    signed,
    store,
    events,
    calls,
    setRunning: (r: boolean) => {
      running = r;
    },
  };
}
type CommandRouterContext = Omit<CommandContext, 'txn' | 'bus' | 'signing'>;

t.test('the table answers every verb of the wire format, and only those', async (t) => {
  t.same(Object.keys(COMMANDS).sort(), [...VERBS].sort());
});

t.test('ping: ok response echoing the txn', async (t) => {
  const { ask } = setup();
  t.match(await ask('ping', { txn: 'p1' }), {
    ok: true,
    txn: 'p1',
    verb: 'ping',
    deviceId: 'dev-cmd',
    result: { pong: true, uptimeS: 42, deployed: null },
  });
});

t.test('unknown verb: USAGE error response with the txn, and a command-rejected event', async (t) => {
  const { ask, events } = setup();
  const r = await ask('reboot', { txn: 'u1' });
  t.match(r, { ok: false, txn: 'u1', verb: 'reboot', error: { code: 'USAGE', message: /unknown verb 'reboot'/ } });
  t.notOk('result' in r);
  t.match(events, [{ type: 'command-rejected', data: { verb: 'reboot', code: 'USAGE' }, txn: 'u1' }]);
  const odd = await ask('../../etc', { txn: 'u2' });
  t.match(odd, { ok: false, txn: 'u2', verb: 'invalid' }, 'a verb that is not a plain name is not echoed');
});

t.test('broken requests: txn null when none can be read', async (t) => {
  const { ask } = setup();
  t.match(await ask('ping', '{not json'), { ok: false, txn: null, error: { code: 'DATA', message: /not valid JSON/ } });
  t.match(await ask('ping', { txn: 'x1', extra: 1 }), { ok: false, txn: 'x1', error: { code: 'DATA' } });
  t.match(await setup().signed('set-budget', 'b1', { latencyMs: -3 }), {
    ok: false,
    txn: 'b1',
    error: { code: 'DATA', message: /latencyMs/ },
  });
});

t.test('a handler error is an error response; the router keeps answering', async (t) => {
  const { ask, signed, events } = setup();
  t.match(await signed('rollback', 'r1'), { ok: false, txn: 'r1', error: { code: 'USAGE', message: /no previous model/ } });
  t.equal(events.at(-1)?.type, 'command-rejected');
  const boom = setup({
    uptimeS: () => {
      throw new TypeError('boom');
    },
  });
  t.match(
    await boom.ask('ping', { txn: 'p2' }),
    { ok: false, txn: 'p2', error: { code: 'INTERNAL', message: /boom/ } },
    'a bug in a handler: INTERNAL',
  );
  t.match(await ask('ping', { txn: 'p3' }), { ok: true, txn: 'p3' }, 'still answering');
});

t.test('set-budget: budgets:changed on the bus with the txn; refit only when the fit key changed', async (t) => {
  const { signed, bus, calls, setRunning } = setup();
  const changed: Array<{ budgets: Budgets; txn: string | undefined }> = [];
  bus.on('budgets:changed', (b) => changed.push(b));
  t.match(await signed('set-budget', 's1', { latencyMs: 20 }), {
    ok: true,
    txn: 's1',
    result: { budgets: { latencyMs: 20 }, refit: true },
  });
  t.same(changed, [{ budgets: { latencyMs: 20 }, txn: 's1' }]);
  t.same(calls, ['ensure:s1']);
  setRunning(false);
  t.match(await signed('set-budget', 's2', { latencyMs: 20 }), { ok: true, result: { refit: false } }, 'same budgets: same key, no refit');
  t.same(calls, ['ensure:s1']);
});

t.test('fit: forced; refused while one runs', async (t) => {
  const { signed, setRunning } = setup();
  t.match(await signed('fit', 'f1'), { ok: true, txn: 'f1', result: { accepted: true } });
  setRunning(true);
  t.match(await signed('fit', 'f2'), { ok: false, txn: 'f2', error: { code: 'USAGE', message: /already running/ } });
});

t.test('stop() detaches the router from the bus', async (t) => {
  const { bus, router } = setup();
  t.equal(bus.listenerCount('command'), 1);
  router.stop();
  t.equal(bus.listenerCount('command'), 0);
});

t.test('default posture: no key pinned, every state-changing verb is refused as read-only; read-only verbs answer', async (t) => {
  const { ask, calls, events } = setup({}, { mode: 'none' });
  const changing = Object.entries(STATE_CHANGING)
    .filter(([, v]) => v)
    .map(([k]) => k);
  t.same(changing.sort(), ['deploy', 'fit', 'rollback', 'set-budget']);
  for (const verb of changing) {
    // even a body signed by some key: nothing is pinned to check it against
    const r = await ask(verb, op.signed('dev-cmd', verb, `ro-${verb}`, verb === 'deploy' ? { candidateId: 'x' } : {}));
    t.match(r, { ok: false, txn: `ro-${verb}`, error: { code: 'INTEGRITY' } }, `${verb} refused`);
    t.equal(r.error?.message, READ_ONLY_REFUSAL);
  }
  t.same(calls, [], 'no handler ran');
  // reported at once, then aggregated per interval (bounded under a flood: test/agent/bounded-commands)
  t.equal(events.filter((e) => e.type === 'command-rejected').length, 1, 'the first refusal is reported at once');
  t.match(await ask('ping', { txn: 'p' }), { ok: true });
  t.match(await ask('get-frontier', { txn: 'g' }), { ok: true, result: { frontier: [] } });
});

t.test('pinned key: a signed request is obeyed once; its replay, another device, another key, a stale ts are refused', async (t) => {
  const { ask, signed, calls, store } = setup();
  const body = op.signed('dev-cmd', 'fit', 'once');
  t.match(await ask('fit', body), { ok: true, txn: 'once' });
  for (let i = 0; i < 2; i++)
    t.match(
      await ask('fit', body),
      { ok: false, txn: 'once', error: { code: 'INTEGRITY', message: /already accepted/ } },
      `replay ${i + 1}`,
    );
  t.same(calls, ['ensure:once'], 'the handler ran once');
  t.equal(store.acceptedTxns(), 1);

  t.match(await ask('fit', op.signed('dev-other', 'fit', 'other-dev')), {
    ok: false,
    error: { code: 'INTEGRITY', message: /does not verify/ },
  });
  const stranger = makeOperator();
  t.match(await ask('fit', stranger.signed('dev-cmd', 'fit', 'stranger')), {
    ok: false,
    error: { code: 'INTEGRITY', message: /does not verify/ },
  });
  t.match(await ask('fit', op.signed('dev-cmd', 'fit', 'old', {}, Date.now() - 3_600_000)), {
    ok: false,
    error: { code: 'INTEGRITY', message: /away from the device clock/ },
  });
  t.match(await ask('fit', { txn: 'anon', args: {} }), { ok: false, error: { code: 'INTEGRITY', message: /not signed/ } });
  t.same(calls, ['ensure:once'], 'none of them reached the handler');
  t.equal(store.acceptedTxns(), 1, 'refused requests are not recorded');
  t.match(await signed('rollback', 'r9'), { ok: false, error: { code: 'USAGE' } }, 'a new txn is still obeyed');
});

t.test('legacy HMAC: the same device binding and replay record', async (t) => {
  const secret = 'a-legacy-secret-of-32-characters';
  const { ask, calls } = setup({}, { mode: 'hmac', secret, maxSkewMs: 300_000 });
  const body = signedBody({ mode: 'hmac', secret }, 'dev-cmd', 'fit', 'h1');
  t.match(await ask('fit', body), { ok: true });
  t.match(await ask('fit', body), { ok: false, error: { code: 'INTEGRITY', message: /already accepted/ } });
  t.match(await ask('fit', signedBody({ mode: 'hmac', secret }, 'dev-b', 'fit', 'h2')), { ok: false, error: { code: 'INTEGRITY' } });
  t.same(calls, ['ensure:h1']);
});

t.test('replay records outlive their window only: pruned by the signed ts', async (t) => {
  const store = new Store(':memory:');
  const now = Date.now();
  t.ok(store.acceptTxn('a', now - 10_000, 5_000, now));
  t.ok(store.acceptTxn('b', now, 5_000, now));
  t.notOk(store.acceptTxn('b', now, 5_000, now), 'b seen');
  t.equal(store.acceptedTxns(), 1, 'a (older than the window) was pruned');
});
