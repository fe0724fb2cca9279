// Sensitivity allocation (pure: drops given, no inference): fragile groups are left alone, the
// target is met, and the coarse probed ratios do not overshoot it (channels are handed back).
import t from 'tap';
import { FIXTURES } from '../../devkit/builder.js';
import { analyzeGroups } from '../../src/passes/prune/groups.js';
import { keepCount } from '../../src/passes/prune/select.js';
import { allocateBySensitivity, type GroupSensitivity } from '../../src/passes/prune/sensitivity.js';

t.test('fragile group kept whole, target met without overshoot', async (t) => {
  const ga = analyzeGroups(FIXTURES.concat());
  const prunable = ga.groups.map((g, index) => ({ g, index })).filter((x) => x.g.prunable);
  t.ok(prunable.length >= 3, `${prunable.length} prunable groups`);
  const ratios = [0.3, 0.5, 0.7, 0.85];
  // the first group is fragile (any cut costs 0.5), the others tolerate cuts in proportion
  const sens: GroupSensitivity[] = prunable.map(({ g, index }, i) => ({
    index,
    label: g.label,
    size: g.size,
    drops: ratios.map((r) => ({ ratio: r, drop: i === 0 ? 0.5 : r * 0.01 * (i + 1) })),
  }));
  const scores = new Map(ga.groups.map((g) => [g.id, Float64Array.from({ length: g.size }, (_, i) => i + 1)]));
  const total = prunable.reduce((a, { g }) => a + g.size, 0);
  const removedOf = (keep: Map<number, number[]>) =>
    [...keep].reduce((a, [id, k]) => a + ga.groups.find((g) => g.id === id)!.size - k.length, 0);
  const want = Math.round(total * 0.3);
  const res = allocateBySensitivity(ga, sens, scores, 1, (keep) => removedOf(keep) >= want)!;
  t.ok(res, 'an allocation meets the target');
  t.notOk(res.keep.has(prunable[0]!.g.id), 'the fragile group keeps every channel');
  const removed = removedOf(res.keep);
  t.ok(removed >= want, `removes ${removed} >= ${want} channels`);
  // handing any pruned group back one probed ratio would miss the target
  for (const [id, k] of res.keep) {
    const size = ga.groups.find((g) => g.id === id)!.size;
    const r = ratios.find((x) => keepCount(size, x) === k.length)!;
    const lower = [0, ...ratios.filter((x) => x < r)].pop()!;
    const back = keepCount(size, lower) - k.length;
    t.ok(removed - back < want, `group ${id} at ratio ${r}: handing back ${back} channels would miss the target`);
  }
  for (const [id, k] of res.keep)
    t.same(
      k,
      [...k].sort((a, b) => a - b),
      `group ${id}: kept indices sorted`,
    );
  t.equal(
    allocateBySensitivity(ga, sens, scores, 1, () => false),
    null,
    'unreachable target: null (caller falls back to uniform)',
  );
});
