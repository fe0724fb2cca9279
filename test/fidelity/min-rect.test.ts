// The rotated rectangles PP-OCR's box scoring uses (cv2.minAreaRect and box_score_fast), on
// hand-made point sets whose answers are known.
import t from 'tap';
import { convexHull, corners, meanInRect, minAreaRect } from '../../src/fidelity/min-rect.js';

t.test('convexHull keeps the outer points only', async (t) => {
  const xs = [0, 4, 4, 0, 2, 1, 3];
  const ys = [0, 0, 4, 4, 2, 3, 1];
  const hull = convexHull(xs, ys);
  t.same(new Set(hull.map((p) => p.join(','))), new Set(['0,0', '4,0', '4,4', '0,4']), 'the square, without its inner points');
  t.same(
    convexHull([3, 1], [0, 2]),
    [
      [1, 2],
      [3, 0],
    ],
    'fewer than three points come back sorted',
  );
});

t.test('minAreaRect: upright, slanted and degenerate point sets', async (t) => {
  // pixel centres of a 8 x 4 block: 7 x 3 between centres
  const xs: number[] = [],
    ys: number[] = [];
  for (let y = 2; y <= 5; y++)
    for (let x = 2; x <= 9; x++) {
      xs.push(x);
      ys.push(y);
    }
  const r = minAreaRect(xs, ys);
  t.same([Math.min(r.width, r.height), Math.max(r.width, r.height)], [3, 7]);
  t.same([r.cx, r.cy], [5.5, 3.5], 'centred on the block');

  // a thin band along 30 degrees: its rectangle is long and thin, the upright box is not
  const a = Math.PI / 6;
  const bx: number[] = [],
    by: number[] = [];
  for (let s = 0; s <= 40; s++)
    for (const o of [-1, 0, 1]) {
      bx.push(s * Math.cos(a) - o * Math.sin(a));
      by.push(s * Math.sin(a) + o * Math.cos(a));
    }
  const b = minAreaRect(bx, by);
  t.ok(
    Math.abs(Math.max(b.width, b.height) - 40) < 1e-6 && Math.abs(Math.min(b.width, b.height) - 2) < 1e-6,
    `40 x 2: ${b.width} x ${b.height}`,
  );
  const angle = Math.atan2(b.width >= b.height ? b.uy : b.ux, b.width >= b.height ? b.ux : -b.uy);
  t.ok(Math.abs(Math.abs(Math.tan(angle)) - Math.tan(a)) < 1e-6, 'its long side along the band');

  const line = minAreaRect([0, 1, 2, 3], [0, 0, 0, 0]);
  t.equal(Math.min(line.width, line.height), 0, 'a one-pixel line has no height');
  t.equal(minAreaRect([5], [7]).width, 0, 'one point');
});

t.test('meanInRect averages the map over the rectangle, background included', async (t) => {
  const h = 10,
    w = 12;
  const m = new Float32Array(h * w).fill(0.1);
  for (let y = 3; y <= 6; y++) for (let x = 2; x <= 8; x++) m[y * w + x] = 0.9;
  const r = minAreaRect([2, 8, 8, 2], [3, 3, 6, 6]);
  t.ok(Math.abs(meanInRect(m, 0, h, w, r) - 0.9) < 1e-6, 'a rectangle through pixel centres covers exactly its pixels');
  // grown by one pixel on every side: 9 x 6 pixels, 28 of them 0.9
  const grown = { ...r, width: r.width + 2, height: r.height + 2 };
  t.ok(Math.abs(meanInRect(m, 0, h, w, grown) - (28 * 0.9 + 26 * 0.1) / 54) < 1e-6, 'and its border when grown');
  t.equal(corners(r).length, 4);
  // an offset into a stack of maps
  const two = new Float32Array(2 * h * w).fill(0.5);
  two.set(m, h * w);
  t.ok(Math.abs(meanInRect(two, h * w, h, w, r) - 0.9) < 1e-6, 'reads from the offset');
});
