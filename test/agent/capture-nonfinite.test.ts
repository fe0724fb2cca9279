// Captured request inputs holding NaN or infinity are left out of a fit's snapshot (issue 20):
// the loader refuses such data, so one bad request captured would otherwise fail every fit on
// captured inputs. Real capture-format files (the serve process's .npy of a real cls input).
import t from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../devkit/paths.js';
import { imageInput } from '../../devkit/calib.js';
import { CAPTURE_MIN_SAMPLES, snapshotCapture } from '../../src/agent/capture.js';
import { encodeNpy } from '../../src/data/npy.js';
import { loadInputSet } from '../../src/data/inputs.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-capnan-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('the snapshot holds the newest finite samples; the fit data loads', async (t) => {
  const clsDir = join(ROOT, 'test/fixtures/ocr/cls');
  const x = imageInput(join(clsDir, '0/page-01.png'), clsDir);
  const ring = join(dir, 'capture');
  mkdirSync(ring);
  const total = CAPTURE_MIN_SAMPLES + 2;
  for (let i = 0; i < total; i++) {
    const data = Float32Array.from(x.data as Float32Array);
    if (i === total - 1) data[10] = NaN; // the newest, and one in the middle
    if (i === total - 10) data.fill(Infinity);
    writeFileSync(join(ring, `${1_700_000_000_000 + i}-${String(i).padStart(6, '0')}.npy`), encodeNpy({ ...x, data }));
  }
  const snap = join(dir, 'capture-fit');
  const n = snapshotCapture(ring, snap);
  t.equal(n, CAPTURE_MIN_SAMPLES - 2, 'the two non-finite ones of the newest are left out');
  t.equal(readdirSync(snap).length, n);
  t.equal(readdirSync(ring).length, total, 'the ring itself is untouched');
  const set = loadInputSet(snap, [{ name: 'x', dtype: 'float32', shape: [null, 3, 48, 192] }]);
  t.equal(set.samples.length, n, 'and the snapshot loads as fit data');
});
