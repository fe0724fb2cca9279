import t from 'tap';
import { TensorStats, HIST_BINS } from '../../src/passes/quantize/stats.js';
import { computeRange, activationParams } from '../../src/passes/quantize/calibrate.js';

// deterministic pseudo-normal values (Box-Muller over a fixed LCG)
function gaussian(n: number, seed = 1): Float32Array {
  let s = seed;
  const u = (): number => ((s = (s * 1103515245 + 12345) % 2147483648) + 1) / 2147483649;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

t.test('histogram keeps every count when its range doubles, bins merge exactly', async (t) => {
  const s = new TensorStats(true);
  s.add(Float32Array.from([0.5, -0.5, 0.25, 1]));
  t.equal(s.range, 1);
  const before = s.hist!.reduce((a, b) => a + b, 0);
  s.add(Float32Array.from([3.5])); // range 1 -> 2 -> 4
  t.equal(s.range, 4);
  t.equal(
    s.hist!.reduce((a, b) => a + b, 0),
    before + 1,
  );
  // 0.5 sat in bin floor((0.5+1)*1024) = 1536 of [-1,1]; over [-4,4] it is bin floor((0.5+4)*256) = 1152
  t.equal(s.hist![Math.floor((0.5 + 4) * (HIST_BINS / 8))], 1);
  t.equal(s.min, -0.5);
  t.equal(s.max, 3.5);
});

t.test('minmax covers everything; percentile and entropy clip rare outliers', async (t) => {
  const x = gaussian(200_000);
  x[17] = 40; // one outlier
  x[99] = -35;
  const s = new TensorStats(true);
  s.add(x);
  const mm = computeRange(s, 'minmax');
  t.equal(mm.max, 40);
  t.equal(mm.min, -35);
  const p = computeRange(s, 'percentile', { percentile: 99.99 });
  t.ok(p.max < 10 && p.max > 3, `percentile max ${p.max} between 3 and 10 sigma`);
  t.ok(p.min > -10 && p.min < -3, `percentile min ${p.min}`);
  const e = computeRange(s, 'entropy');
  t.ok(e.max < 20 && e.max > 2, `entropy threshold ${e.max} well inside the outlier`);
  t.equal(e.min, -e.max, 'signed tensor: symmetric threshold');
});

t.test('non-negative tensors (ReLU outputs) get a range starting at exactly 0', async (t) => {
  const x = gaussian(50_000, 7).map(Math.abs);
  const s = new TensorStats(true);
  s.add(x);
  for (const m of ['minmax', 'percentile', 'entropy', 'mse'] as const) {
    const r = computeRange(s, m);
    t.equal(r.min, 0, `${m} min`);
    const q = activationParams(r, 'uint8');
    t.equal(q.zeroPoint, 0, `${m}: zero point 0 so 0.0 is exact`);
  }
});

/** Mean squared error of fake-quantizing x to 256 levels over r (clip, round, dequantize). */
function quantMse(x: Float32Array, r: { min: number; max: number }): number {
  const q = activationParams(r, 'uint8');
  let e = 0;
  for (const v of x) {
    const k = Math.min(255, Math.max(0, Math.round(v / q.scale) + q.zeroPoint));
    e += ((k - q.zeroPoint) * q.scale - v) ** 2;
  }
  return e / x.length;
}

t.test('mse picks the range of least real quantization error, clipping a sparse tail only where it pays', async (t) => {
  // a large tensor (like a conv output over a calibration set) whose range a few outliers set:
  // clipping them costs less than the resolution the other million values gain
  const x = gaussian(1_000_000, 3);
  x[17] = 40;
  x[5003] = 31;
  const s = new TensorStats(true);
  s.add(x);
  const m = computeRange(s, 'mse');
  const errs = Object.fromEntries((['minmax', 'percentile', 'entropy', 'mse'] as const).map((k) => [k, quantMse(x, computeRange(s, k))]));
  const mm = computeRange(s, 'minmax');
  t.ok(m.max < mm.max * 0.5, `mse clips the sparse upper tail: max ${m.max} of ${mm.max}`);
  t.ok(m.min < -3, `and keeps the dense lower side: min ${m.min} of ${mm.min}`);
  for (const k of ['minmax', 'percentile', 'entropy'] as const)
    t.ok(errs.mse! <= errs[k]! * 1.02, `mse error ${errs.mse} vs ${k} ${errs[k]}`);
  t.ok(errs.mse! < errs.minmax! * 0.6, `well below minmax on a heavy tail (${errs.mse} vs ${errs.minmax})`);
  // a tensor without outliers keeps (nearly) its full extent: clipping would cost more than it buys
  const u = Float32Array.from({ length: 50_000 }, (_, i) => (i / 50_000) * 2 - 1);
  const su = new TensorStats(true);
  su.add(u);
  const ru = computeRange(su, 'mse');
  t.ok(ru.max > 0.97 && ru.min < -0.97, `uniform data keeps its range: [${ru.min}, ${ru.max}]`);
});

t.test('activation params: 0 maps to an integer, range fits the type', async (t) => {
  const q = activationParams({ min: -1.3, max: 2.9 }, 'uint8');
  t.ok(q.zeroPoint >= 0 && q.zeroPoint <= 255);
  t.ok(Math.abs(q.scale - 4.2 / 255) < 1e-9);
  const back = (255 - q.zeroPoint) * q.scale;
  t.ok(Math.abs(back - 2.9) < q.scale, 'top of range representable');
  const s8 = activationParams({ min: -1, max: 1 }, 'int8');
  t.ok(s8.zeroPoint >= -128 && s8.zeroPoint <= 127);
});
