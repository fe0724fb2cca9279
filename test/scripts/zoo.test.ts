// The zoo benchmark's judgement (devkit/zoo.ts) on fixed result rows: the issue 17 targets are
// logic, so they are checked here without timing anything; the zoo itself (~1 GB of ONNX) stays
// out of the suite (scripts/bench-zoo.ts runs it).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  firstErrorLine,
  judgeZoo,
  keptWholeReport,
  mergeRuns,
  latencyRatio,
  pairStats,
  parseCliJson,
  readManifest,
  speedup,
  zooSummary,
  zooTable,
  type ZooRow,
} from '../../devkit/zoo.js';

function row(model: string, ratio: number, originalMs: number | null, prunedMs: number | null, over: Partial<ZooRow> = {}): ZooRow {
  return {
    model,
    opset: 17,
    ratio,
    status: 'ok',
    exitCode: 0,
    error: null,
    pruneSeconds: 1,
    macsKept: 1 - ratio,
    paramsKept: 1 - ratio,
    groupsPruned: 3,
    groupsSkipped: 0,
    originalMs,
    prunedMs,
    runs: 15,
    ...over,
  };
}
const failed = (model: string, ratio: number, error: string): ZooRow =>
  row(model, ratio, null, null, { status: 'prune-failed', exitCode: 1, error, macsKept: null, paramsKept: null });
const byTarget = (rows: ZooRow[]) => Object.fromEntries(judgeZoo(rows).map((c) => [c.target, c]));
const V = 'valid, identical output shapes >= 90 %';
const S3 = 'speed-up >= 1.2x at 0.3';
const S5 = 'speed-up >= 1.6x at 0.5';
const NS = 'none slower than its original';

t.test('latency ratio and speed-up are inverse; absent timings give null', async (t) => {
  const r = row('a', 0.5, 10, 4);
  t.equal(latencyRatio(r), 0.4);
  t.equal(speedup(r), 2.5);
  t.equal(latencyRatio(row('a', 0.5, null, null)), null);
  t.equal(speedup(row('a', 0.5, 10, null)), null);
});

t.test('every target met', async (t) => {
  const rows = [row('a', 0.3, 10, 8), row('a', 0.5, 10, 6), row('b', 0.3, 20, 16.5), row('b', 0.5, 20, 12)];
  const c = byTarget(rows);
  for (const k of [V, S3, S5, NS]) t.ok(c[k]!.met, k);
  t.equal(c[V]!.detail, '4/4 (100.0 %)');
  t.equal(c[S3]!.detail, '2/2 rows');
  t.match(zooSummary(judgeZoo(rows)), /^MET {4} {2}valid/);
  t.notMatch(zooSummary(judgeZoo(rows)), /NOT MET/);
});

t.test('a speed-up just under a threshold misses it, and a slower model misses "none slower"', async (t) => {
  // 1.19x at 0.3 (under 1.2), 1.6x exactly at 0.5 (met: the target is >=), and c slower at 0.3
  const rows = [row('a', 0.3, 11.9, 10), row('a', 0.5, 16, 10), row('c', 0.3, 9, 10), row('c', 0.5, 20, 10)];
  const c = byTarget(rows);
  t.ok(c[V]!.met);
  t.notOk(c[S3]!.met);
  t.same(c[S3]!.misses, ['a op17 @0.3: 1.19x', 'c op17 @0.3: 0.90x']);
  t.ok(c[S5]!.met, '1.6x exactly meets >= 1.6x');
  t.notOk(c[NS]!.met);
  t.same(c[NS]!.misses, ['c op17 @0.3: 0.90x']);
  t.equal(c[NS]!.detail, '3/4 timed rows');
});

t.test('failures: count against validity and their ratio, not as "slower"; 9 of 10 valid is enough', async (t) => {
  const rows: ZooRow[] = [];
  for (let i = 0; i < 9; i++) rows.push(row(`m${i}`, 0.5, 10, 5));
  rows.push(failed('googlenet', 0.5, "edgefit: model: no pruning rule for op 'Foo'"));
  let c = byTarget(rows);
  t.ok(c[V]!.met, '90 % exactly');
  t.equal(c[V]!.detail, '9/10 (90.0 %)');
  t.same(c[V]!.misses, ["googlenet op17 @0.5: prune-failed: edgefit: model: no pruning rule for op 'Foo'"]);
  t.notOk(c[S5]!.met, 'a failed model is not 1.6x faster');
  t.same(c[S5]!.misses, ['googlenet op17 @0.5: prune-failed']);
  t.ok(c[NS]!.met, 'failed rows are not timed, so not slower');
  t.equal(c[NS]!.detail, '9/9 timed rows');
  rows.push(row('x', 0.5, 10, 5, { status: 'shape-mismatch', error: 'output shapes 1x1000 vs 1x999' }));
  c = byTarget(rows);
  t.notOk(c[V]!.met, '9 of 11 is under 90 %');
  t.ok(c[NS]!.met, 'a shape mismatch is invalid, not judged for speed');
});

t.test('a target with no rows is not met (no vacuous pass)', async (t) => {
  const c = byTarget([row('a', 0.5, 10, 5)]);
  t.notOk(c[S3]!.met);
  t.equal(c[S3]!.detail, 'no rows at this ratio');
  t.ok(c[S5]!.met);
  const none = byTarget([]);
  t.notOk(none[V]!.met);
  t.notOk(none[NS]!.met);
});

t.test('table: one line per row, pipes in errors escaped', async (t) => {
  const lines = zooTable([row('a', 0.3, 10, 8, { pairedRatio: 0.79, noise: 0.123 }), failed('b', 0.3, 'bad | thing')]).split('\n');
  t.equal(lines.length, 4);
  t.match(lines[2]!, /^\| a \| 17 \| 0.3 \| ok \| 0.700 \| 0.700 \| 3\/0 \| 10.0 \| 8.0 \| 0.800 \| 1.25x \| 0.790 \| 12% \|/);
  t.match(lines[3]!, /\| prune-failed \| - \| - \| 3\/0 \| - \| - \| - \| - \| - \| - \| 1.0 \| bad \\\| thing \|$/);
});

t.test("the CLI's --json report and first error line", async (t) => {
  t.same(parseCliJson('{"macs":{"before":4,"after":2}}\n'), { macs: { before: 4, after: 2 } });
  t.same(parseCliJson('edgefit: measured\n{\n  "a": 1\n}\n'), { a: 1 });
  t.equal(parseCliJson('no json here'), null);
  t.equal(
    firstErrorLine('\n(node:123) ExperimentalWarning: x\n(Use `node --trace-warnings ...`)\nedgefit: model: boom\nmore\n'),
    'edgefit: model: boom',
  );
  t.equal(firstErrorLine('  \n'), null);
});

t.test('manifest: the models list, or a clear error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-zoo-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const entry = {
    name: 'resnet18',
    opset: 17,
    file: 'resnet18-op17.onnx',
    bytes: 1,
    sha256: '0',
    input: { name: 'input', shape: [1, 3, 224, 224] },
    outputs: [{ name: 'output', shape: [1, 1000] }],
    params: 11689512,
  };
  writeFileSync(join(dir, 'm.json'), JSON.stringify({ models: [entry] }));
  t.same(readManifest(join(dir, 'm.json')), [entry]);
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ files: [] }));
  t.throws(() => readManifest(join(dir, 'bad.json')), /no "models" list/);
});

t.test('kept-whole report: once per model and opset, reasons grouped, most channels first', async (t) => {
  const kept = [
    { group: 'attn.0', size: 384, reason: 'reshape into heads' },
    { group: 'attn.1', size: 384, reason: 'reshape into heads' },
    { group: 'out', size: 1000, reason: 'graph output' },
    { group: 'in', size: 3, reason: 'graph input' },
  ];
  const text = keptWholeReport([
    row('vit', 0.3, 10, 8, { keptWhole: kept }),
    row('vit', 0.5, 10, 6, { keptWhole: kept }),
    row('old', 0.3, 10, 8),
  ]);
  t.same(text.split('\n'), [
    'vit op17: 4 kept whole',
    '  1 group(s), 1000 channels (e.g. out): graph output',
    '  2 group(s), 768 channels (e.g. attn.0): reshape into heads',
    '  1 group(s), 3 channels (e.g. in): graph input',
  ]);
});

t.test('pair stats: medians, the median per-round ratio, and the noise of the noisier model', async (t) => {
  // a drifts up 1 ms a round; b is always half of a in its round, with one burst (round 3)
  const ta = [10, 11, 12, 13, 14];
  const tb = [5, 5.5, 6, 30, 7];
  const s = pairStats(ta, tb);
  t.equal(s.originalMs, 12);
  t.equal(s.prunedMs, 6);
  t.equal(s.pairedRatio, 0.5, 'the burst round is one of five ratios: the median ignores it');
  // IQR / median: a (13 - 11) / 12 = 0.167; b (7 - 5.5) / 6 = 0.25
  t.equal(s.noise, 0.25);
  // two rounds (interpolated quartiles): a IQR 1 / median 3, b IQR 1 / median 2 -> the larger, 0.5
  t.same(pairStats([4, 2], [1, 3]), { originalMs: 3, prunedMs: 2, pairedRatio: (0.25 + 1.5) / 2, noise: 0.5 });
  t.throws(() => pairStats([1, 2], [1]), /2 and 1 times/);
  t.throws(() => pairStats([], []), /0 and 0 times/);
});

t.test('merging runs: pieces join, repeats become the median-speed-up run, a failure in any run stays', async (t) => {
  const runA = [row('a', 0.3, 10, 5), row('b', 0.3, 10, 12), row('c', 0.3, 10, 8)];
  const runB = [row('a', 0.3, 10, 4), row('b', 0.3, 10, 8), failed('c', 0.3, 'boom')];
  const runC = [row('a', 0.3, 10, 20), row('b', 0.3, 10, 9)];
  const piece = [row('d', 0.5, 10, 5)];
  const m = mergeRuns([...runA, ...runB, ...runC, ...piece]);
  t.same(
    m.map((r) => [r.model, r.repeats ?? 1, r.status, r.prunedMs]),
    [
      ['a', 3, 'ok', 5], // speed-ups 2, 2.5, 0.5: the median 2x
      ['b', 3, 'ok', 9], // 0.83, 1.25, 1.11: the median 1.11x
      ['c', 2, 'prune-failed', null],
      ['d', 1, 'ok', 5],
    ],
  );
  // two runs: the lower middle (the slower), so a lucky run cannot pass a target alone
  t.equal(mergeRuns([row('e', 0.5, 10, 5), row('e', 0.5, 10, 4)])[0]!.prunedMs, 5);
  // the same model at another opset or ratio is another row
  t.equal(mergeRuns([row('a', 0.3, 10, 5), row('a', 0.5, 10, 5), row('a', 0.3, 10, 5, { opset: 13 })]).length, 3);
  t.match(zooTable(m).split('\n')[2]!, /^\| a \| 17 \| 0.3 \| ok \(3 runs\) \|/);
});
