// Box matching on hand-made boxes: IoU worked out by hand, greedy matching by score that counts
// duplicates as false positives and never matches across classes, the empty cases of P/R/F1, and
// per-class NMS.
import t from 'tap';
import { iou, matchBoxes, nms, prf, type Box } from '../../src/fidelity/boxes.js';

const box = (x0: number, y0: number, x1: number, y1: number, score = 1, cls?: number): Box => ({
  x0,
  y0,
  x1,
  y1,
  score,
  ...(cls === undefined ? {} : { cls }),
});

t.test('iou: identical 1, disjoint 0, half-overlapping squares 1/3', async (t) => {
  t.equal(iou(box(0, 0, 2, 2), box(0, 0, 2, 2)), 1);
  t.equal(iou(box(0, 0, 1, 1), box(2, 2, 3, 3)), 0);
  t.equal(iou(box(0, 0, 2, 2), box(1, 0, 3, 2)), 2 / 6);
  t.equal(iou(box(0, 0, 0, 0), box(0, 0, 0, 0)), 0, 'empty boxes overlap nothing');
});

t.test('matchBoxes: the higher-scored duplicate takes the match, the other is a false positive', async (t) => {
  const ref = [box(0, 0, 10, 10), box(20, 0, 30, 10)];
  const got = [box(0, 0, 10, 9, 0.5), box(0, 0, 10, 10, 0.9), box(50, 50, 60, 60, 0.8)];
  const m = matchBoxes(ref, got);
  t.same({ tp: m.tp, fp: m.fp, fn: m.fn }, { tp: 1, fp: 2, fn: 1 });
  t.same(m.matchOf, [-1, 0, -1]);
  t.equal(matchBoxes(ref, [box(0, 0, 10, 4)]).tp, 0, 'IoU 0.4 is below the 0.5 a match needs');
  t.equal(matchBoxes(ref, [box(0, 0, 10, 4)], 0.4).tp, 1);
});

t.test('matchBoxes: classes must agree when both boxes have one', async (t) => {
  t.equal(matchBoxes([box(0, 0, 1, 1, 1, 3)], [box(0, 0, 1, 1, 1, 4)]).tp, 0);
  t.equal(matchBoxes([box(0, 0, 1, 1, 1, 3)], [box(0, 0, 1, 1, 1, 3)]).tp, 1);
});

t.test('prf: nothing to find and nothing found is perfect; finding nothing of something is 0', async (t) => {
  t.same(prf(0, 0, 0), { precision: 1, recall: 1, f1: 1 });
  t.same(prf(0, 0, 3), { precision: 0, recall: 0, f1: 0 });
  t.same(prf(0, 2, 0), { precision: 0, recall: 0, f1: 0 });
  t.same(prf(3, 1, 1), { precision: 0.75, recall: 0.75, f1: 0.75 });
});

t.test('nms: overlapping boxes of one class collapse to the best; other classes survive', async (t) => {
  const kept = nms([box(0, 0, 10, 10, 0.6, 0), box(0, 0, 10, 9, 0.9, 0), box(0, 0, 10, 10, 0.7, 1), box(40, 40, 50, 50, 0.1, 0)]);
  t.same(
    kept.map((b) => [b.score, b.cls]),
    [
      [0.9, 0],
      [0.7, 1],
      [0.1, 0],
    ],
  );
  t.equal(nms([box(0, 0, 1, 1, 0.9), box(5, 5, 6, 6, 0.8)], 0.45, 1).length, 1, 'limit caps the kept boxes');
});
