// The command router and its verb table, without a broker: requests go in as 'command' on the
// bus, answers come out as 'response' echoing the txn; failures are error responses (and a
// command-rejected event) and the router keeps answering.
import t from 'tap';
import { AgentBus } from '../../src/agent/bus.js';
import { COMMANDS, CommandRouter, type CommandContext } from '../../src/agent/commands.js';
import { EdgefitError } from '../../src/errors.js';
import type { Budgets } from '../../src/fit/types.js';
import type { ResponsePayload } from '../../src/telemetry/payloads.js';
import { VERBS } from '../../src/telemetry/topics.js';
import { checkPayload } from '../../src/telemetry/validate.js';

function setup(over: Partial<CommandRouterContext> = {}) {
  const bus = new AgentBus();
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
  const router = new CommandRouter({ bus, deviceId: 'dev-cmd', signing: { mode: 'none' }, context });
  router.start();
  const events: Array<{ type: string; data: Record<string, unknown>; txn: string | undefined }> = [];
  bus.on('event', (type, _m, data, txn) => events.push({ type, data, txn }));
  const ask = (verb: string, body: unknown): Promise<ResponsePayload> =>
    new Promise((resolve) => {
      bus.once('response', (v, p) => resolve(checkPayload('response', { ...p, verb: v === p.verb ? p.verb : `${v} != ${p.verb}` })));
      bus.emit('command', verb, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
    });
  return {
    bus,
    router,
    ask,
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
  t.match(await ask('set-budget', { txn: 'b1', args: { latencyMs: -3 } }), {
    ok: false,
    txn: 'b1',
    error: { code: 'DATA', message: /latencyMs/ },
  });
});

t.test('a handler error is an error response; the router keeps answering', async (t) => {
  const { ask, events } = setup();
  t.match(await ask('rollback', { txn: 'r1' }), { ok: false, txn: 'r1', error: { code: 'USAGE', message: /no previous model/ } });
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
  const { ask, bus, calls, setRunning } = setup();
  const changed: Array<{ budgets: Budgets; txn: string | undefined }> = [];
  bus.on('budgets:changed', (b) => changed.push(b));
  t.match(await ask('set-budget', { txn: 's1', args: { latencyMs: 20 } }), {
    ok: true,
    txn: 's1',
    result: { budgets: { latencyMs: 20 }, refit: true },
  });
  t.same(changed, [{ budgets: { latencyMs: 20 }, txn: 's1' }]);
  t.same(calls, ['ensure:s1']);
  setRunning(false);
  t.match(
    await ask('set-budget', { txn: 's2', args: { latencyMs: 20 } }),
    { ok: true, result: { refit: false } },
    'same budgets: same key, no refit',
  );
  t.same(calls, ['ensure:s1']);
});

t.test('fit: forced; refused while one runs', async (t) => {
  const { ask, setRunning } = setup();
  t.match(await ask('fit', { txn: 'f1', args: {} }), { ok: true, txn: 'f1', result: { accepted: true } });
  setRunning(true);
  t.match(await ask('fit', { txn: 'f2', args: {} }), { ok: false, txn: 'f2', error: { code: 'USAGE', message: /already running/ } });
});

t.test('stop() detaches the router from the bus', async (t) => {
  const { bus, router } = setup();
  t.equal(bus.listenerCount('command'), 1);
  router.stop();
  t.equal(bus.listenerCount('command'), 0);
});
