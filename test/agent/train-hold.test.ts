// Training yields to served traffic: the policy holds on the first busy stats window and releases
// only after quiet ones; the gate parks waiters until released.
import t from 'tap';
import { HoldPolicy, TrainGate } from '../../src/agent/train-hold.js';

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
