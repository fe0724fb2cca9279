import t from 'tap';
import { Tensor } from '../../src/ir/tensor.js';
import { quantizeWeight, quantizeBias } from '../../src/passes/quantize/weights.js';
import { detectPlatform } from '../../src/passes/quantize/platform.js';
import { featuresFromFlags } from '../../src/profile/cpuinfo.js';
import { recommendInt8 } from '../../src/profile/int8.js';

// a conv weight [3 out, 2 in, 1, 2] whose channels differ by 100x in magnitude, one all zero
const w = Tensor.fromFloat32('w', [3, 2, 1, 2], [0.01, -0.02, 0.005, 0.015, 1, -2, 0.5, 1.5, 0, 0, 0, 0]);

t.test('per-channel symmetric int8: each channel uses its own scale, error within half a step', async (t) => {
  const q = quantizeWeight(w, 'w', { axis: 0, reduceRange: false });
  t.same([...q.scale.dims], [3]);
  t.same(Array.from(q.zeroPoint.toFloat32()), [0, 0, 0], 'symmetric: zero points 0');
  const s = q.scale.toFloat32();
  t.ok(Math.abs(s[0]! - 0.02 / 127) < 1e-9);
  t.ok(Math.abs(s[1]! - 2 / 127) < 1e-7);
  t.equal(s[2], 1, 'all-zero channel gets a usable scale');
  const qs = q.q.toFloat32();
  const f = w.toFloat32();
  for (let i = 0; i < f.length; i++) {
    const c = Math.floor(i / 4);
    t.ok(Math.abs(qs[i]! * s[c]! - f[i]!) <= s[c]! / 2 + 1e-9, `element ${i}`);
  }
  t.equal(Math.max(...Array.from(qs, Math.abs)), 127);
});

t.test('per tensor loses the small channel; reduce range keeps 7 bits', async (t) => {
  const pt = quantizeWeight(w, 'w', { reduceRange: false });
  t.same([...pt.scale.dims], []);
  const qs = pt.q.toFloat32();
  t.equal(qs[2], 0, 'a 0.005 weight rounds to 0 with a per-tensor scale of 2/127');
  const rr = quantizeWeight(w, 'w', { axis: 0, reduceRange: true });
  t.equal(Math.max(...Array.from(rr.q.toFloat32(), Math.abs)), 63);
});

t.test('bias: int32 on input scale x weight scale', async (t) => {
  const b = Tensor.fromFloat32('b', [3], [0.1, -3, 0]);
  const q = quantizeWeight(w, 'w', { axis: 0, reduceRange: false });
  const qb = quantizeBias(b, 'b', 0.05, q.scales);
  t.equal(qb.q.dtype, 'int32');
  const sc = qb.scale.toFloat32();
  const v = qb.q.toFloat32();
  for (let c = 0; c < 3; c++) {
    t.ok(Math.abs(sc[c]! - 0.05 * q.scales[c]!) <= 1e-6 * sc[c]!, `bias scale ${c}`);
    t.ok(Math.abs(v[c]! * sc[c]! - b.toFloat32()[c]!) <= sc[c]! / 2 + 1e-9);
  }
});

t.test('platform choice follows onnxruntime guidance', async (t) => {
  t.match(detectPlatform(new Set(['avx2']), 'x64'), { activation: 'uint8', reduceRange: true, feature: 'avx2' });
  t.match(detectPlatform(new Set(['avx2', 'avx512_vnni']), 'x64'), { activation: 'uint8', reduceRange: false });
  t.match(detectPlatform(new Set(['asimd', 'asimddp']), 'arm64'), { activation: 'int8', feature: 'asimddp' });
  t.match(detectPlatform(new Set(['asimd']), 'arm64'), { activation: 'uint8', feature: 'none' });
  t.match(detectPlatform(['sse4_2'], 'x64'), { activation: 'uint8', reduceRange: true, feature: 'none' });
  t.match(detectPlatform(['neon'], 'arm'), { activation: 'uint8', reduceRange: false });
});

t.test("quantize's int8 flavour is the hardware profile's (one table, src/profile/int8.ts)", async (t) => {
  const boxes: [string, string][] = [
    ['x64', 'sse4_2'],
    ['x64', 'sse4_2 avx avx2 fma'],
    ['x64', 'avx2 avx512f'],
    ['x64', 'avx2 avx_vnni'],
    ['x64', 'avx2 avx512f avx512_vnni amx_int8'],
    ['arm64', 'fp asimd'],
    ['arm64', 'fp asimd asimddp'],
    ['arm64', 'fp asimd asimddp i8mm'],
    ['arm', 'neon vfpv4'],
    ['riscv64', ''],
  ];
  for (const [arch, flags] of boxes) {
    const words = flags.split(' ').filter(Boolean);
    const p = detectPlatform(words, arch);
    const r = recommendInt8(arch, featuresFromFlags(words));
    t.same([p.activation, p.reduceRange, p.why], [r.activation === 's8' ? 'int8' : 'uint8', r.reduceRange, r.reason], `${arch} ${flags}`);
  }
});
