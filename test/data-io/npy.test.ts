// npy/npz reader and writer against files numpy itself writes and reads (when /usr/bin/python3
// has numpy), plus our own round trips and the corrupt-file errors.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseNpy, readNpy, writeNpy, encodeNpy } from '../../src/data/npy.js';
import { readNpz, writeNpz, parseNpz, encodeNpz } from '../../src/data/npz.js';
import type { NdArray } from '../../src/data/ndarray.js';
import { EdgefitError } from '../../src/errors.js';

const PY = '/usr/bin/python3';
const dir = mkdtempSync(join(tmpdir(), 'edgefit-npy-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function py(code: string): Promise<{ ok: boolean; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(PY, ['-c', code], { timeout: 60_000 }, (e, out, err) => resolve({ ok: !e, out, err }));
  });
}

const hasNumpy = (await py('import numpy')).ok;

t.test(
  'numpy-written .npy and .npz files read back exactly',
  { skip: hasNumpy ? false : 'no numpy in /usr/bin/python3: numpy interop not checked' },
  async (t) => {
    // values are functions of the index so both sides can compute them independently
    const r = await py(`
import numpy as np, os
d = ${JSON.stringify(dir)}
a = (np.arange(2*3*4, dtype=np.float32).reshape(2,3,4) * 0.5 - 3)
np.save(os.path.join(d, 'f4.npy'), a)
np.save(os.path.join(d, 'f8.npy'), np.linspace(-1, 1, 7))
np.save(os.path.join(d, 'i8.npy'), np.arange(-5, 5, dtype=np.int64).reshape(2, 5))
np.save(os.path.join(d, 'u1.npy'), np.arange(0, 256, 5, dtype=np.uint8))
np.save(os.path.join(d, 'b1.npy'), np.array([True, False, True]))
np.save(os.path.join(d, 'i4s.npy'), np.int32(42))
with open(os.path.join(d, 'v2.npy'), 'wb') as f:
    np.lib.format.write_array(f, a, version=(2, 0))
np.save(os.path.join(d, 'fortran.npy'), np.asfortranarray(np.ones((3, 2), dtype=np.float32)))
np.savez(os.path.join(d, 'stored.npz'), x=a, y=np.arange(3, dtype=np.int64))
np.savez_compressed(os.path.join(d, 'deflated.npz'), x=a, labels=np.arange(10, dtype=np.int32))
`);
    t.ok(r.ok, r.err);
    const want = Float32Array.from({ length: 24 }, (_, i) => i * 0.5 - 3);
    const f4 = readNpy(join(dir, 'f4.npy'));
    t.equal(f4.dtype, 'float32');
    t.same(f4.shape, [2, 3, 4]);
    t.same(Array.from(f4.data as Float32Array), Array.from(want));
    const f8 = readNpy(join(dir, 'f8.npy'));
    t.equal(f8.dtype, 'float64');
    t.same(f8.shape, [7]);
    t.equal((f8.data as Float64Array)[0], -1);
    t.equal((f8.data as Float64Array)[6], 1);
    const i8 = readNpy(join(dir, 'i8.npy'));
    t.same([i8.dtype, i8.shape], ['int64', [2, 5]]);
    t.same(Array.from(i8.data as BigInt64Array, Number), [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4]);
    const u1 = readNpy(join(dir, 'u1.npy'));
    t.same([u1.dtype, u1.shape[0], (u1.data as Uint8Array)[51]], ['uint8', 52, 255]);
    const b1 = readNpy(join(dir, 'b1.npy'));
    t.same([b1.dtype, Array.from(b1.data as Uint8Array)], ['bool', [1, 0, 1]]);
    const s = readNpy(join(dir, 'i4s.npy'));
    t.same([s.dtype, s.shape, (s.data as Int32Array)[0]], ['int32', [], 42], '0-d array');
    const v2 = readNpy(join(dir, 'v2.npy'));
    t.same(Array.from(v2.data as Float32Array), Array.from(want), 'format 2.0');
    t.same(Buffer.from(encodeNpy(f4)), readFileSync(join(dir, 'f4.npy')), 'our encoding is byte-identical to np.save');
    t.throws(() => readNpy(join(dir, 'fortran.npy')), /Fortran-ordered/);

    const st = readNpz(join(dir, 'stored.npz'));
    t.same([...st.keys()], ['x', 'y']);
    t.same(Array.from(st.get('x')!.data as Float32Array), Array.from(want));
    t.same(Array.from(st.get('y')!.data as BigInt64Array, Number), [0, 1, 2]);
    const df = readNpz(join(dir, 'deflated.npz'));
    t.same(Array.from(df.get('x')!.data as Float32Array), Array.from(want), 'deflated member');
    t.same(Array.from(df.get('labels')!.data as Int32Array), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  },
);

t.test(
  'numpy reads what our writers write',
  { skip: hasNumpy ? false : 'no numpy in /usr/bin/python3: numpy interop not checked' },
  async (t) => {
    const x: NdArray = { dtype: 'float32', shape: [2, 2, 3], data: Float32Array.from({ length: 12 }, (_, i) => i / 4 - 1) };
    const ids: NdArray = { dtype: 'int64', shape: [4], data: BigInt64Array.from([7n, -1n, 0n, 123456789012n]) };
    writeNpy(join(dir, 'ours.npy'), x);
    writeNpz(join(dir, 'ours.npz'), { x, ids });
    writeNpz(join(dir, 'ours-c.npz'), { x, ids }, { compress: true });
    const r = await py(`
import numpy as np, json, os
d = ${JSON.stringify(dir)}
a = np.load(os.path.join(d, 'ours.npy'))
out = {'npy': [str(a.dtype), list(a.shape), a.ravel().tolist()]}
for n in ('ours.npz', 'ours-c.npz'):
    z = np.load(os.path.join(d, n))
    out[n] = {k: [str(z[k].dtype), list(z[k].shape), z[k].ravel().tolist()] for k in sorted(z.files)}
print(json.dumps(out))
`);
    t.ok(r.ok, r.err);
    const o = JSON.parse(r.out) as Record<string, unknown>;
    const xs = Array.from(x.data as Float32Array);
    t.same(o.npy, ['float32', [2, 2, 3], xs]);
    for (const n of ['ours.npz', 'ours-c.npz']) {
      t.same(o[n], { ids: ['int64', [4], [7, -1, 0, 123456789012]], x: ['float32', [2, 2, 3], xs] }, n);
    }
  },
);

t.test('own round trip, header layout as numpy writes it', async (t) => {
  const a: NdArray = { dtype: 'float32', shape: [3], data: Float32Array.of(1, 2, 3) };
  const b = encodeNpy(a);
  const hl = b[8]! | (b[9]! << 8);
  t.equal((10 + hl) % 64, 0, 'data starts on a 64-byte boundary');
  t.equal(b[10 + hl - 1], 0x0a, 'header ends with a newline');
  t.match(Buffer.from(b.subarray(10, 10 + hl)).toString('latin1'), /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(3,\), \}/);
  t.same(Array.from(parseNpy(b).data as Float32Array), [1, 2, 3]);
  const z = parseNpz(encodeNpz({ a, c: { dtype: 'uint8', shape: [2, 2], data: Uint8Array.of(1, 2, 3, 4) } }, { compress: true }));
  t.same(Array.from(z.get('c')!.data as Uint8Array), [1, 2, 3, 4]);
  t.same(z.get('c')!.shape, [2, 2]);
});

t.test('corrupt files fail with one clear DATA error', async (t) => {
  const good = encodeNpy({ dtype: 'float32', shape: [4, 4], data: new Float32Array(16) });
  const cases: [string, Uint8Array, RegExp][] = [
    ['bad magic', Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), /bad magic/],
    ['truncated data', good.subarray(0, good.length - 5), /needs 64/],
    ['big-endian', Buffer.from(Buffer.from(good).toString('latin1').replace("'<f4'", "'>f4'"), 'latin1'), /unsupported numpy dtype '>f4'/],
  ];
  for (const [name, bytes, re] of cases) {
    const p = join(dir, `${name}.npy`);
    writeFileSync(p, bytes);
    t.throws(() => readNpy(p), re, name);
    try {
      readNpy(p);
    } catch (e) {
      t.ok(e instanceof EdgefitError && e.code === 'DATA' && !e.message.includes('\n'), `${name}: DATA, one line`);
    }
  }
  const z = Buffer.from(encodeNpz({ x: { dtype: 'float32', shape: [8], data: new Float32Array(8).fill(1) } }));
  const flip = Buffer.from(z);
  flip[60] = flip[60]! ^ 0xff; // inside the stored member
  t.throws(() => parseNpz(flip), /CRC|bad magic|needs|header/, 'a flipped byte is detected');
  t.throws(() => parseNpz(z.subarray(0, z.length - 30)), /end-of-central-directory|corrupt/, 'truncated zip');
  t.throws(() => readNpz(join(dir, 'missing.npz')), /cannot read .*ENOENT/);
  t.equal(readFileSync(join(dir, 'bad magic.npy')).length, 11, 'reader never writes');
});
