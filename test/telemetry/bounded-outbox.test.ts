// The outbox share reserved for metrics and important events (issue 20), on a real SQLite file
// and the real publisher: a flood of low-value rows (command-rejected) can neither push metrics
// and important events out of the bounded outbox nor make them wait behind it.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { OutboxPublisher } from '../../src/telemetry/outbox-publisher.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-bounded-outbox-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const body = (kind: string) => (seq: number) => JSON.stringify({ kind, seq });

t.test('low-value rows are capped at outboxLowMax and evicted first; the others keep their share', async (t) => {
  const s = new Store(join(dir, 'a.db'), { outboxMax: 100, outboxLowMax: 10 });
  s.enqueue('events', 'e', body('deployed'));
  for (let i = 0; i < 1000; i++) s.enqueue('events', 'e', body('command-rejected'), { low: true });
  for (let i = 0; i < 50; i++) s.enqueue('metrics', 'm', body('metrics'));
  const kinds = (): string[] => s.peek(1000).map((r) => (JSON.parse(r.payload) as { kind: string }).kind);
  let k = kinds();
  t.equal(k.filter((x) => x === 'command-rejected').length, 10, 'at most outboxLowMax low rows');
  t.equal(k.filter((x) => x === 'metrics').length, 50, 'every metric kept');
  t.equal(k[0], 'deployed', 'the important event is kept and goes first');
  t.same(k.slice(0, 51), ['deployed', ...Array(50).fill('metrics')], 'metrics and important events go before low rows');
  t.equal(s.counter('outbox_dropped'), 990, 'the evicted low rows are counted');
  // the whole bound: low rows go before any of the others
  for (let i = 0; i < 45; i++) s.enqueue('metrics', 'm', body('metrics'));
  k = kinds();
  t.equal(k.length, 100);
  t.equal(k.filter((x) => x === 'command-rejected').length, 4, 'the overflow evicted low rows first');
  t.equal(k[0], 'deployed', 'no important row went while low rows were there');
  for (let i = 0; i < 10; i++) s.enqueue('metrics', 'm', body('metrics'));
  k = kinds();
  t.equal(k.length, 100);
  t.equal(k.filter((x) => x === 'command-rejected').length, 0);
  t.equal(k[0], 'metrics', 'then the oldest of the rest');
  s.close();
});

t.test('the publisher sends a new metric next, ahead of a backlog of low-value rows', async (t) => {
  const s = new Store(join(dir, 'b.db'), { outboxLowMax: 500 });
  for (let i = 0; i < 300; i++) s.enqueue('events', 'e', body('command-rejected'), { low: true });
  const sent: string[] = [];
  let release: (() => void) | undefined;
  const pub = new OutboxPublisher(
    s,
    {
      connected: true,
      // each publish waits for the test: the order of sends is then exact
      publish: (_topic, payload) =>
        new Promise<void>((resolve) => {
          sent.push((JSON.parse(payload) as { kind: string }).kind);
          release = resolve;
        }),
    },
    10_000,
  );
  const next = async (): Promise<void> => {
    while (!release) await new Promise((r) => setTimeout(r, 1));
    const r = release;
    release = undefined;
    r();
  };
  pub.start();
  await next();
  await next();
  s.enqueue('metrics', 'm', body('metrics'));
  pub.kick();
  await next();
  await next();
  t.same(
    sent.slice(0, 4),
    ['command-rejected', 'command-rejected', 'command-rejected', 'metrics'],
    'the metric went next (the one in flight first)',
  );
  pub.stop();
  await next();
  await pub.idle();
  t.ok(s.outboxPending() > 290, `while ${s.outboxPending()} low rows still wait`);
  s.close();
});

t.test('a version-2 state file gains the column; its rows count as important', async (t) => {
  const p = join(dir, 'old.db');
  const old = new Database(p);
  old.exec('CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (2);');
  old.exec(MIGRATIONS[0]!);
  old.exec(MIGRATIONS[1]!);
  old.prepare(`INSERT INTO outbox (stream, seq, topic, payload, created_at) VALUES ('events', 1, 'e', '{"kind":"deployed"}', 'x')`).run();
  old.close();
  const s = new Store(p, { outboxLowMax: 1 });
  t.equal(s.schemaVersion, MIGRATIONS.length);
  s.enqueue('events', 'e', body('command-rejected'), { low: true });
  s.enqueue('events', 'e', body('command-rejected'), { low: true });
  t.same(
    s.peek(10).map((r) => (JSON.parse(r.payload) as { kind: string }).kind),
    ['deployed', 'command-rejected'],
  );
  s.close();
});
