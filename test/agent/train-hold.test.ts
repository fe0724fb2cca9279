// Training yields to served traffic: the policy holds on the first busy stats window and releases
// only after quiet ones; the gate parks waiters until released.
import t from 'tap';
import { HoldPolicy, TrainGate } from '../../src/agent/train-hold.js';

t.test('the hold policy: busy holds at once, quiet releases after two windows, no flapping', async (t) => {
  const p = new HoldPolicy(2);
  const w = (requests: number, inFlight = 0) => p.update({ requests, inFlight });
  t.equal(w(0), undefined, 'quiet and not held: no change');
  t.equal(w(3), true, 'a request holds');
  t.equal(w(1), undefined, 'still busy: no change');
  t.equal(w(0), undefined, 'one quiet window: still held');
  t.equal(w(0, 1), undefined, 'a request in flight keeps it held');
  t.equal(w(0), undefined);
  t.equal(w(0), false, 'two quiet windows in a row release');
  t.notOk(p.isHeld);
  t.equal(w(0), undefined);
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
