// Adam over Float32Arrays: on a quadratic with a known minimum it converges there; bias
// correction makes the first step lr-sized whatever the gradient's scale; the schedule warms up
// and decays to zero.
import t from 'tap';
import { Adam, learningRate } from '../../src/passes/train/adam.js';

t.test('Adam converges to the minimum of an ill-conditioned quadratic', async (t) => {
  // f(x) = Σ a_i (x_i − c_i)², a spanning four orders of magnitude
  const a = [1e-2, 1, 10, 100];
  const c = [3, -2, 0.5, 7];
  const x = new Float32Array(4);
  const opt = new Adam(new Map([['x', x]]));
  for (let k = 0; k < 3000; k++) {
    const g = Float32Array.from(x, (xi, i) => 2 * a[i]! * (xi - c[i]!));
    opt.step(new Map([['x', g]]), learningRate(0.1, k / 3000, 'cosine'));
  }
  for (let i = 0; i < 4; i++) t.ok(Math.abs(x[i]! - c[i]!) < 1e-2, `x[${i}] = ${x[i]!.toFixed(4)}, minimum at ${c[i]}`);
  t.equal(opt.steps, 3000);
});

t.test('the first step moves every weight by lr, whatever its gradient scale (bias correction)', async (t) => {
  const p = new Float32Array([0, 0, 0]);
  new Adam(new Map([['p', p]])).step(new Map([['p', [1e-4, -5, 300]]]), 0.01);
  t.ok(Math.abs(p[0]! + 0.01) < 1e-5 && Math.abs(p[1]! - 0.01) < 1e-5 && Math.abs(p[2]! + 0.01) < 1e-5, `${[...p]}`);
});

t.test('a per-parameter learning-rate factor scales only its own step', async (t) => {
  const p = new Float32Array([0]);
  const q = new Float32Array([0]);
  const opt = new Adam(
    new Map([
      ['p', p],
      ['q', q],
    ]),
    { lrFactors: new Map([['q', 0.01]]) },
  );
  opt.step(
    new Map([
      ['p', [1]],
      ['q', [1]],
    ]),
    0.1,
  );
  t.ok(Math.abs(p[0]! + 0.1) < 1e-6, `p moved by lr: ${p[0]}`);
  t.ok(Math.abs(q[0]! + 0.001) < 1e-7, `q moved by lr x 0.01: ${q[0]}`);
});

t.test('weight decay shrinks weights without gradient; non-finite gradients are skipped', async (t) => {
  const p = new Float32Array([2, 2]);
  const opt = new Adam(new Map([['p', p]]), { weightDecay: 0.5 });
  opt.step(new Map([['p', [0, Number.NaN]]]), 0.1);
  t.ok(Math.abs(p[0]! - 2 * (1 - 0.05)) < 1e-6, `decayed to ${p[0]}`);
  t.ok(Number.isFinite(p[1]!), 'a NaN gradient leaves a finite weight');
});

t.test('the schedule warms up, peaks and decays to zero', async (t) => {
  t.ok(learningRate(1, 0, 'cosine') < 0.05, 'starts near zero');
  t.ok(Math.abs(learningRate(1, 0.05, 'cosine') - 1) < 1e-9, 'peak after the warm-up');
  t.ok(learningRate(1, 0.5, 'cosine') < 0.6 && learningRate(1, 0.5, 'cosine') > 0.4, 'half way: about half');
  t.ok(learningRate(1, 1, 'cosine') < 1e-9, 'zero at the end');
  t.equal(learningRate(1, 0.9, 'constant'), 1);
});
