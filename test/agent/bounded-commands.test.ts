// Bounded work per request (issue 20), on the command router without a broker: a flood of junk
// requests makes one event per interval (not one each) and a bounded number of error responses;
// handlers run a bounded number at a time with a bounded queue (the excess refused BUSY, counted);
// a request over its verb's size limit is refused by its declared size, payload never read.
import t from 'tap';
import { AgentBus } from '../../src/agent/bus.js';
import { CommandRouter, DEFAULT_COMMAND_LIMITS, type CommandContext, type CommandLimits } from '../../src/agent/commands.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import { RejectionReporter } from '../../src/agent/rejections.js';
import { EdgefitError } from '../../src/errors.js';
import type { ResponsePayload } from '../../src/telemetry/payloads.js';
import { readFileSync } from 'node:fs';
import { loadPublicKey, type SigningConfig } from '../../src/telemetry/signing.js';
import { makeOperator } from '../helpers/operator.js';

// the concurrency test needs handlers that run: its requests are signed by a pinned operator key
const op = makeOperator();
const pinned: SigningConfig = { mode: 'ed25519', publicKeys: [loadPublicKey(readFileSync(op.pubFile, 'utf8'))], maxSkewMs: 300_000 };

type Ctx = Omit<CommandContext, 'txn' | 'bus' | 'signing'>;

function setup(limits: Partial<CommandLimits>, over: Partial<Ctx> = {}, signing: SigningConfig = { mode: 'none' }) {
  const bus = new AgentBus();
  const context: Ctx = {
    uptimeS: () => 1,
    fits: { ensure: () => true, key: () => 'k', current: () => undefined, level: () => null },
    budgets: { set: (b) => b },
    deployer: {
      current: () => undefined,
      exclusive: (fn) => fn(),
      deployEntry: () => Promise.reject(new Error('not here')),
      deployBytes: () => Promise.reject(new Error('not here')),
      rollback: () => Promise.reject(new EdgefitError('USAGE', 'nothing to roll back to')),
    },
    shapes: {},
    maxModelMb: 1,
    ...over,
  };
  const router = new CommandRouter({ bus, deviceId: 'dev-b', signing, replay: { accept: () => true }, context, limits });
  router.start();
  const events: Array<{ type: string; message: string; data: Record<string, unknown>; txn: string | undefined }> = [];
  const responses: ResponsePayload[] = [];
  bus.on('event', (type, message, data, txn) => events.push({ type, message, data, txn }));
  bus.on('response', (_v, p) => responses.push(p));
  return { bus, router, events, responses };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('a flood of 5,000 junk requests: one event at once, then one aggregated event per interval', async (t) => {
  const { router, events, responses } = setup({ rejectedReportS: 0.3, rejectedResponsesPerS: 50 });
  const work: Array<Promise<void>> = [];
  for (let i = 0; i < 5000; i++) {
    // unsigned, so most are refused as this read-only agent's (INTEGRITY); some name no verb we have (USAGE)
    const [verb, body] = i % 100 === 99 ? ['reboot', { txn: `j${i}` }] : ['set-budget', { txn: `j${i}`, args: { latencyMs: -1 } }];
    work.push(router.handle(verb, Buffer.from(JSON.stringify(body))));
  }
  await Promise.all(work);
  t.equal(events.length, 1, 'only the first rejection is reported at once');
  t.match(events[0], { type: 'command-rejected', txn: 'j0', data: { verb: 'set-budget', code: 'INTEGRITY' } });
  await sleep(450);
  t.equal(events.length, 2, 'then one event for the rest of the interval');
  const agg = events[1]!;
  // error responses: a burst of two seconds at 50/s (plus what refills while the flood is handled)
  t.ok(responses.length >= 100 && responses.length < 200, `${responses.length} error responses`);
  const unanswered = 5000 - responses.length;
  t.match(agg.data, { count: 4999, byCode: { INTEGRITY: 4949, USAGE: 50 }, firstTxn: 'j1', lastTxn: 'j4999', unanswered });
  t.match(agg.message, /^4,999 requests rejected in the last 0\.3 s: 4,949 INTEGRITY, 50 USAGE; first txn j1; 4,\d{3} not answered/);
  t.equal(router.rejections.totals.rejected, 5000);
  await sleep(700);
  t.equal(events.length, 2, 'an interval without rejections sends nothing and ends the spell');
  await router.handle('reboot', Buffer.from('{"txn":"later"}'));
  t.equal(events.length, 3, 'after a quiet interval a rejection is reported at once again');
  t.match(events[2], { txn: 'later', data: { verb: 'reboot', code: 'USAGE' } });
  router.stop();
});

t.test('an aggregate names at most 16 verbs (any 32-character string can be one): the rest count as other', async (t) => {
  const { router, events } = setup({ rejectedReportS: 0.2 });
  await router.handle('first', Buffer.from('{}'));
  for (let i = 0; i < 1000; i++) await router.handle(`v${i}`, Buffer.from('{"txn":"x"}'));
  await router.handle('__proto__', Buffer.from('{}'));
  await sleep(300);
  const byVerb = events[1]?.data.byVerb as Record<string, number>;
  t.equal(Object.keys(byVerb).length, 17);
  t.equal(byVerb.other, 1000 - 16 + 1);
  t.ok(JSON.stringify(events[1]).length < 2000, 'the event stays small');
  router.stop();
});

t.test('the response budget refills with time', async (t) => {
  let now = 0;
  const r = new RejectionReporter(
    () => undefined,
    10,
    5,
    () => now,
  );
  let ok = 0;
  for (let i = 0; i < 30; i++) if (r.mayAnswer()) ok++;
  t.equal(ok, 10, 'burst: two seconds at 5/s');
  now += 1000;
  ok = 0;
  for (let i = 0; i < 30; i++) if (r.mayAnswer()) ok++;
  t.equal(ok, 5, 'one second later: five more');
  r.stop();
});

t.test('handlers run at most maxConcurrent at a time; at most maxQueued wait; the rest are refused BUSY', async (t) => {
  const gates: Array<() => void> = [];
  let started = 0;
  const { router, responses } = setup(
    { maxConcurrent: 1, maxQueued: 2, rejectedResponsesPerS: 1000 },
    {
      deployer: {
        current: () => undefined,
        exclusive: (fn) => fn(),
        deployEntry: () => Promise.reject(new Error('not here')),
        deployBytes: () => Promise.reject(new Error('not here')),
        rollback: () => {
          started++;
          return new Promise((resolve) => gates.push(() => resolve({ version: 'v1', sha256: 'ab' } as never)));
        },
      },
    },
    pinned,
  );
  const all = Array.from({ length: 6 }, (_, i) =>
    router.handle('rollback', Buffer.from(JSON.stringify(op.signed('dev-b', 'rollback', `r${i}`)))),
  );
  await sleep(20);
  t.equal(started, 1, 'one handler runs');
  const busy = responses.filter((r) => r.error?.code === 'BUSY');
  t.same(
    busy.map((r) => r.txn),
    ['r3', 'r4', 'r5'],
    'two wait, three are refused at once',
  );
  t.match(busy[0]?.error?.message, /agent busy: 1 commands running, 2 waiting/);
  t.equal(router.busy, 3);
  while (gates.length) {
    gates.shift()!();
    await sleep(10);
  }
  await Promise.all(all);
  t.equal(started, 3, 'the waiting ones ran in turn');
  t.same(
    responses.filter((r) => r.ok).map((r) => r.txn),
    ['r0', 'r1', 'r2'],
  );
  router.stop();
});

t.test("a request over its verb's size limit is refused by its declared size", async (t) => {
  const { router, responses } = setup({});
  // what the MQTT guard hands on for a 90 MB message it never buffered: an empty payload and the size
  await router.handle('deploy', Buffer.alloc(0), 90 * 1048576);
  t.match(responses[0], {
    ok: false,
    txn: null,
    error: { code: 'DATA', message: /request of 94371840 bytes exceeds the \d+ byte limit for 'deploy'/ },
  });
  await router.handle('ping', Buffer.from(JSON.stringify({ txn: 'p', pad: 'x'.repeat(70_000) })));
  t.match(responses[1], { ok: false, error: { code: 'DATA', message: /exceeds the 65536 byte limit for 'ping'/ } });
  router.stop();
});

t.test('config: the bounds have documented defaults (the router defaults) and are validated', async (t) => {
  const cfg = loadAgentConfig({});
  t.same(cfg.commands, DEFAULT_COMMAND_LIMITS, 'schema defaults = the router defaults');
  t.equal(cfg.mqtt.protocolVersion, 5);
  t.equal(cfg.mqtt.outboxLowMax, 500);
  t.throws(() => loadAgentConfig({ flags: { mqtt: { protocolVersion: 3 } } }), { code: 'CONFIG', message: /protocolVersion/ });
  t.throws(() => loadAgentConfig({ flags: { commands: { maxConcurrent: 0 } } }), { code: 'CONFIG', message: /maxConcurrent/ });
});
