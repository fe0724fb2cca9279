// Augmentation of NCHW samples: seeded, crops of the requested size taken from the image, flips
// mirror, scale resizes, brightness shifts; the held-out rows are never touched (train.ts).
import t from 'tap';
import { rng } from '../../devkit/builder.js';
import { augmenter, otsu } from '../../src/data/augment.js';
import { compactSamples, packedWindow } from '../../src/data/compact.js';
import type { Sample } from '../../src/data/inputs.js';

const H = 6,
  W = 8;
const img: Sample = {
  x: { dtype: 'float32', shape: [1, 2, H, W], data: Float32Array.from({ length: 2 * H * W }, (_, i) => i) },
};
const at = (s: Sample, c: number, y: number, x: number): number => {
  const [, , h, w] = s.x!.shape as number[];
  return (s.x!.data as Float32Array)[c * h! * w! + y * w! + x]!;
};

t.test('a crop is a window of the image, the same for every channel, and seeded', async (t) => {
  const aug = augmenter({ crop: [3, 4] });
  const a = aug(img, rng(1));
  t.same(a.x!.shape, [1, 2, 3, 4]);
  // find its origin from channel 0 and check every pixel of both channels
  const v = at(a, 0, 0, 0);
  const y0 = Math.floor(v / W),
    x0 = v % W;
  let ok = true;
  for (let c = 0; c < 2; c++)
    for (let y = 0; y < 3; y++) for (let x = 0; x < 4; x++) ok &&= at(a, c, y, x) === c * H * W + (y0 + y) * W + x0 + x;
  t.ok(ok, `window at (${y0}, ${x0})`);
  t.same(aug(img, rng(1)).x!.data, a.x!.data, 'same seed, same crop');
  const origins = new Set(Array.from({ length: 40 }, (_, i) => at(aug(img, rng(i + 2)), 0, 0, 0)));
  t.ok(origins.size > 4, `${origins.size} different origins over 40 draws`);
  t.throws(() => augmenter({ crop: [7, 4] })(img, rng(1)), /does not fit/);
});

t.test('flip mirrors rows; brightness shifts by at most its fraction of the range; scale resizes', async (t) => {
  const aug = augmenter({ flip: true });
  let flipped = 0;
  for (let i = 0; i < 20; i++) {
    const a = aug(img, rng(i));
    if (at(a, 1, 2, 0) === at(img, 1, 2, W - 1)) flipped++;
    else t.equal(at(a, 1, 2, 0), at(img, 1, 2, 0));
  }
  t.ok(flipped > 3 && flipped < 17, `${flipped} of 20 flipped`);
  const b = augmenter({ brightness: 0.2 })(img, rng(3));
  const d = at(b, 0, 0, 0) - at(img, 0, 0, 0);
  t.ok(Math.abs(d) <= 0.2 * (2 * H * W - 1) + 1e-4 && d !== 0, `shift ${d}`);
  t.ok(
    (b.x!.data as Float32Array).every((v, i) => Math.abs(v - i - d) < 1e-3),
    'the same shift everywhere',
  );
  const s = augmenter({ scale: [2, 2], crop: [H, W] })(img, rng(4));
  t.same(s.x!.shape, [1, 2, H, W], 'scaled 2x then cropped back to the input size');
  const up = augmenter({ scale: [2, 2] })(img, rng(4));
  t.same(up.x!.shape, [1, 2, 2 * H, 2 * W]);
  t.ok(Math.abs(at(up, 0, 0, 0) - at(img, 0, 0, 0)) < 1e-6, 'bilinear keeps the corner');
});

t.test('binarise makes print black and white: text pixels dark, paper light, each channel at its own extremes', async (t) => {
  // a "page": paper ~0.8 with texture, a dark stroke ~0.2 in rows 2-3, in a normalised-looking
  // space (channel 1 scaled and shifted, as a model's per-channel normalisation does)
  const next = rng(5);
  const h = 16,
    w = 16;
  const ink = (y: number): boolean => y === 2 || y === 3 || y === 9;
  const data = new Float32Array(2 * h * w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const v = (ink(y) ? 0.2 : 0.8) + 0.1 * (next() - 0.5);
      data[y * w + x] = v;
      data[h * w + y * w + x] = 3 * v - 1;
    }
  const page: Sample = { x: { dtype: 'float32', shape: [1, 2, h, w], data } };
  const bw = augmenter({ binarise: 1 })(page, rng(2));
  const out = bw.x!.data as Float32Array;
  for (let c = 0; c < 2; c++) {
    const ch = data.subarray(c * h * w, (c + 1) * h * w);
    const lo = Math.min(...ch),
      hi = Math.max(...ch);
    const got = out.subarray(c * h * w, (c + 1) * h * w);
    t.same(new Set(got), new Set([lo, hi]), `channel ${c}: only its darkest and brightest values`);
    t.ok(
      [...got].every((v, i) => (ink(Math.floor(i / w)) ? v === lo : v === hi)),
      `channel ${c}: every ink pixel black, every paper pixel white`,
    );
  }
  t.same(augmenter({ binarise: 0 })(page, rng(2)).x!.data, data, 'probability 0: unchanged');
  // at 0.5 some draws binarise and some do not, and a run without the option draws as before
  const half = augmenter({ binarise: 0.5 });
  const g = rng(9);
  // binarised, the two channels hold two values each
  const n = Array.from({ length: 40 }, () => new Set(half(page, g).x!.data as Float32Array).size === 4).filter(Boolean).length;
  t.ok(n > 5 && n < 35, `${n} of 40 crops binarised at 0.5`);
  const withOpt = augmenter({ crop: [8, 8], flip: true, binarise: 0 });
  const without = augmenter({ crop: [8, 8], flip: true });
  t.same(withOpt(page, rng(4)).x!.data, without(page, rng(4)).x!.data, 'the other draws are unchanged by the option');
  const cut = otsu(Float32Array.from([0.1, 0.1, 0.12, 0.9, 0.88, 0.9, 0.9]));
  t.ok(cut > 0.12 && cut <= 0.88, `otsu cuts between the two clusters (${cut})`);
});

t.test('bad options are refused', async (t) => {
  t.throws(() => augmenter({ crop: [0, 3] }), /crop must be two positive integers/);
  t.throws(() => augmenter({ scale: [1.2, 0.8] }), /scale range/);
  t.throws(() => augmenter({ brightness: 1.5 }), /brightness must be a fraction/);
  t.throws(() => augmenter({ binarise: 1.5 }), /binarise is a probability in \[0, 1\], got 1.5/);
});

t.test('a sample held as bytes is augmented from its crop window alone, as its decoded copy is', async (t) => {
  // 2 images x 3 channels of 40x48, values off the 8-bit grid; the copy is what a full decode gives
  const shape = [2, 3, 40, 48];
  const next = rng(5);
  const data = Float32Array.from({ length: 2 * 3 * 40 * 48 }, () => next() * 4 - 2);
  const [packed] = compactSamples([{ x: { dtype: 'float32', shape, data } }]);
  const win = packedWindow(packed!, 'x');
  t.ok(win, 'the packed input has a window reader');
  t.equal(packedWindow({ x: packed!.x! }, 'x'), undefined, 'a decoded copy has none');
  const decoded: Sample = { x: packed!.x! };
  const all = decoded.x!.data as Float32Array;
  t.same(win!.range(), [Math.min(...all), Math.max(...all)], "the window's range is the decoded image's");
  for (const o of [{ crop: [16, 20] as const }, { crop: [16, 20] as const, flip: true, brightness: 0.2, binarise: 0.5 }, { flip: true }]) {
    const aug = augmenter(o);
    let same = true;
    for (let seed = 1; seed <= 12; seed++) {
      const a = aug(packed!, rng(seed)).x!;
      const b = aug(decoded, rng(seed)).x!;
      same &&= a.shape.join() === b.shape.join() && Buffer.from(a.data.buffer).equals(Buffer.from(b.data.buffer));
    }
    t.ok(same, `${JSON.stringify(o)}: bit for bit the same over 12 draws`);
  }
  // scale jitter needs the whole image: decoded first, as before
  const scaled = augmenter({ crop: [16, 20], scale: [0.8, 1.2] });
  t.same(scaled(packed!, rng(3)).x!.data, scaled(decoded, rng(3)).x!.data, 'scale jitter: the same as the decoded copy');
});
