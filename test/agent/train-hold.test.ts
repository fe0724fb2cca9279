// Training yields to served traffic: the policy holds on the first busy stats window and releases
// only after quiet ones; the gate parks waiters until released.
import t from 'tap';
import { AgentBus } from '../../src/agent/bus.js';
import { HoldPolicy, TrainGate, TrainingHold, type FitActivity } from '../../src/agent/train-hold.js';

t.test('the hold policy: a busy window holds at once, quiet time releases, no flapping', async (t) => {
  const p = new HoldPolicy(15_000);
  t.equal(p.update({ requests: 0, inFlight: 0 }, 0), undefined, 'an idle window does not hold');
  t.equal(p.tick(1000), undefined, 'not held: nothing to release');
  t.equal(p.update({ requests: 3, inFlight: 0 }, 1000), true, 'a request holds');
  t.equal(p.update({ requests: 1, inFlight: 0 }, 6000), undefined, 'still busy: no change');
  t.equal(p.tick(20_000), undefined, '14 s after the last busy window: still held');
  t.equal(p.update({ requests: 0, inFlight: 1 }, 20_500), undefined, 'a request in flight counts as busy');
  t.equal(p.tick(35_000), undefined);
  t.equal(p.tick(35_500), false, '15 s quiet: released');
  t.notOk(p.isHeld);
  t.equal(p.tick(40_000), undefined, 'released once');
});

t.test('the gate parks waiters while held and frees them all on release', async (t) => {
  const g = new TrainGate();
  let done = 0;
  await g.wait();
  g.set(true);
  const a = g.wait().then(() => done++);
  const b = g.wait().then(() => done++);
  await new Promise((r) => setTimeout(r, 20));
  t.equal(done, 0, 'held: nobody passes');
  g.set(false);
  await Promise.all([a, b]);
  t.equal(done, 2, 'released: all pass');
  t.notOk(g.isHeld);
});

t.test('the gate says once per hold when training has stopped at it, and only then', async (t) => {
  let told = 0;
  const g = new TrainGate(() => told++);
  await g.wait();
  t.equal(told, 0, 'not held: passing the gate is no stop');
  g.set(true);
  t.equal(told, 0, 'held, but the trainer is still inside a step');
  const a = g.wait();
  t.equal(told, 1, 'the trainer reached the gate: told');
  const b = g.wait();
  t.equal(told, 1, 'told once per hold');
  g.set(false);
  await Promise.all([a, b]);
  // a hold that finds the trainer already at the gate tells at once
  g.set(true);
  const c = g.wait();
  t.equal(told, 2, 'the next hold tells again');
  g.set(false);
  await c;
  const d = g.wait(); // not held: passes
  await d;
  g.set(true);
  t.equal(told, 2, 'nobody waiting: nothing to tell');
});

t.test('a probe waits for the training to stop at its gate; the agent says when its own fit kept the cores busy', async (t) => {
  const bus = new AgentBus();
  let activity: FitActivity = { kind: 'idle' };
  let parks = true;
  const sent: boolean[] = [];
  const hold = new TrainingHold(bus, () => activity, 200);
  hold.start((on, parked) => {
    sent.push(on);
    if (on && parks) setTimeout(() => parked?.(), 30);
  });
  t.teardown(() => hold.stop());
  t.same(await hold.quietFor(async () => 1), { value: 1 }, 'no fit: quiet, nothing held');
  t.same(sent, []);
  activity = { kind: 'measuring', fitId: 3 };
  t.same(
    await hold.quietFor(async () => 2),
    { value: 2, busy: 'fit 3 is measuring candidates on this box' },
    'a measuring fit cannot be held',
  );
  activity = { kind: 'training', fitId: 4 };
  let parkedWhenTimed: string | undefined = 'not run';
  const q = await hold.quietFor(async () => {
    parkedWhenTimed = hold.busy();
    return 3;
  });
  t.same(q, { value: 3 }, 'the training stopped at its gate: quiet');
  t.equal(parkedWhenTimed, undefined, 'timed only after the training said it had stopped');
  t.same(sent, [true, false], 'held for the probe, released after it');
  t.equal(hold.busy(), 'fit 4 is training on this box', 'released: the training uses the cores again');
  // a training that does not stop in time (building its graph, measuring): timed, and marked
  parks = false;
  const started = Date.now();
  const late = await hold.quietFor(async () => 4);
  t.ok(Date.now() - started >= 190, 'waited its 200 ms for the stop');
  t.same(late, { value: 4, busy: 'fit 4 is training on this box' });
  t.same(sent, [true, false, true, false]);
});
