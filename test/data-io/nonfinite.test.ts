// NaN or infinite values in calibration or judge data are refused by the one loader (issue 20:
// an all-NaN .npy gave "cosine mean NaN" and a fully int8 model), naming how many samples and
// the first; a finite set loads as before.
import t from 'tap';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasNonFinite, loadInputSet, type ModelInput } from '../../src/data/inputs.js';
import { writeNpy } from '../../src/data/npy.js';
import { writeNpz } from '../../src/data/npz.js';
import { ROOT } from '../../devkit/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-nonfinite-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const mnist: ModelInput[] = [{ name: 'x', dtype: 'float32', shape: ['N', 1, 28, 28] }];

function stack(n: number, poison: (i: number, d: Float32Array) => void): string {
  const data = new Float32Array(n * 784).map((_, i) => (i % 97) / 97);
  for (let i = 0; i < n; i++) poison(i, data.subarray(i * 784, (i + 1) * 784));
  const p = join(dir, `s${Math.random().toString(36).slice(2)}.npy`);
  writeNpy(p, { dtype: 'float32', shape: [n, 1, 28, 28], data });
  return p;
}

t.test('finite data loads; all-NaN, some-NaN and infinite samples are refused', async (t) => {
  t.equal(
    loadInputSet(
      stack(4, () => undefined),
      mnist,
    ).samples.length,
    4,
  );
  const all = stack(4, (_, d) => d.fill(NaN));
  t.throws(() => loadInputSet(all, mnist), {
    code: 'DATA',
    message: /4 of 4 sample\(s\) hold NaN or infinite values \(first: sample 0, input 'x'\)/,
  });
  t.throws(
    () =>
      loadInputSet(
        stack(5, (i, d) => i === 3 && (d[700] = NaN)),
        mnist,
      ),
    { message: /1 of 5 .*first: sample 3/ },
  );
  t.throws(
    () =>
      loadInputSet(
        stack(2, (i, d) => i === 1 && (d[0] = -Infinity)),
        mnist,
      ),
    { code: 'DATA', message: /1 of 2/ },
  );
  // within --limit only what is used is judged
  t.equal(
    loadInputSet(
      stack(4, (i, d) => i === 3 && (d[0] = NaN)),
      mnist,
      { limit: 2 },
    ).samples.length,
    2,
  );
});

t.test('npz, float64 and float16 arrays are checked too', async (t) => {
  const npz = join(dir, 'x.npz');
  const d64 = new Float64Array(2 * 784);
  d64[900] = Infinity;
  writeNpz(npz, new Map([['x', { dtype: 'float64', shape: [2, 1, 28, 28], data: d64 }]]));
  t.throws(() => loadInputSet(npz, [{ name: 'x', dtype: 'float64', shape: ['N', 1, 28, 28] }]), { message: /1 of 2/ });
  t.ok(hasNonFinite({ dtype: 'float16', data: Uint16Array.of(0x3c00, 0x7e00) }), 'float16 NaN');
  t.ok(hasNonFinite({ dtype: 'float16', data: Uint16Array.of(0xfc00) }), 'float16 -inf');
  t.notOk(hasNonFinite({ dtype: 'float16', data: Uint16Array.of(0x3c00, 0x7bff) }), 'float16 max is finite');
  t.notOk(hasNonFinite({ dtype: 'int32', data: Int32Array.of(1, 2) }));
});

t.test('an image folder whose preprocess.json divides by a zero std is refused', async (t) => {
  const imgs = join(dir, 'imgs');
  cpSync(join(ROOT, 'test/fixtures/ocr/det'), imgs, { recursive: true });
  writeFileSync(
    join(imgs, 'preprocess.json'),
    JSON.stringify({ size: [64, 64], layout: 'NCHW', color: 'BGR', scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0, 1, 1] }),
  );
  t.throws(() => loadInputSet(imgs, [{ name: 'x', dtype: 'float32', shape: ['N', 3, 64, 64] }]), { code: /DATA|CONFIG/ });
});
