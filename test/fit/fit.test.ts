// edgefit fit end to end on the real MNIST CNN (small enough for the test suite); PP-OCR det
// fits are run by scripts/bench-fit.ts.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { runCli, ROOT } from '../../devkit/paths.js';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import { testDir } from '../helpers/tmp.js';
import { isMeasurementFile } from '../../src/fit/cache.js';

const dir = testDir('edgefit-fit-');
// the candidate cache (shared by fits of one model) lives in the test's folder, not in ~/.cache
process.env.EDGEFIT_CACHE_DIR = join(dir, 'cache');
const data = join(dir, 'mnist');
writeMnistLabelled(data, { split: 'test', limit: 200 });
const model = join(ROOT, 'models/mnist-cnn.onnx');

t.test('a generous budget keeps the original; frontier, report and cache are written', async (t) => {
  const out = join(dir, 'ok.onnx');
  const args = [
    'fit',
    model,
    '-o',
    out,
    '--shape',
    'x=1x1x28x28',
    '--calib',
    data,
    '--latency-ms',
    '5000',
    '--report',
    join(dir, 'ok.html'),
    '--json',
  ];
  const r = await runCli(args);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  t.equal(j.chosen.config.structured, 0);
  t.equal(j.chosen.config.quant, 'none');
  t.equal(j.chosen.fidelity, 1, 'the original against itself');
  t.same([j.task, j.fidelityMetric], ['classify', 'top1'], 'judged as a classifier (auto-detected), by label agreement');
  t.match(j.notes.join('\n'), /fidelity judged as task classify \(auto-detected: \[N,C\] class scores 'logits'\) by top1/);
  t.ok(existsSync(out));
  t.same(readFileSync(out), readFileSync(model), 'chosen = original bytes');
  const frontier = JSON.parse(readFileSync(join(dir, 'ok.frontier.json'), 'utf8'));
  t.ok(frontier.frontier.length >= 1);
  t.match(readFileSync(join(dir, 'ok.html'), 'utf8'), /<svg[\s\S]*latency budget[\s\S]*<table>/);
  const again = await runCli(args);
  t.equal(again.code, 0);
  t.equal(JSON.parse(again.stdout).cacheHits, j.candidates, 'a re-fit re-uses every measurement');
});

t.test('an impossible budget ends with exit 3, the fidelity floor kept and the shortfall stated in one line', async (t) => {
  // issue 16: nothing meets 0.01x; the model written must still meet the floor (the original at
  // worst), never the fastest candidate whatever its fidelity
  const out = join(dir, 'impossible.onnx');
  const r = await runCli([
    'fit',
    model,
    '-o',
    out,
    '--shape',
    'x=1x1x28x28',
    '--calib',
    data,
    '--latency',
    '0.01x',
    '--min-fidelity',
    '0.98',
  ]);
  t.equal(r.code, 3, r.stderr);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('edgefit: no candidate'));
  t.equal(lines.length, 1);
  t.match(lines[0], /latency misses by [\d.]+ ms \(budget [\d.]+ ms, best p50 [\d.]+ ms\)/);
  t.match(lines[0], /wrote the best model that keeps the fidelity floor/);
  t.notMatch(lines[0], /fidelity misses/);
  t.match(r.stderr, /edgefit: measured .*left\)/, 'progress lines carry the time left');
  t.match(r.stderr, /edgefit: latency tables measuring the layers on this box/, 'the table build is not a silent minute');
  t.ok(existsSync(out), 'the best floor-keeping model is still written');
  const frontier = JSON.parse(readFileSync(join(dir, 'impossible.frontier.json'), 'utf8'));
  const chosen = frontier.candidates.find((c: { id: string }) => c.id === frontier.chosenId);
  t.ok(chosen.fidelity >= 0.98, `chosen ${chosen.id} at fidelity ${chosen.fidelity}`);
  t.notOk(frontier.shortfall.fidelity, 'no fidelity shortfall');
  t.ok(frontier.shortfall.latencyMs > 0);
  t.ok(
    frontier.frontier.every((e: { fidelity: number }) => e.fidelity >= 0.98),
    'the frontier the agent steps along holds nothing below the floor',
  );
  t.ok(frontier.candidates.length <= 15, `${frontier.candidates.length} candidates`);
  t.ok(frontier.candidates.length >= 3, 'it tried pruning and int8 before giving up');
  const pruned = frontier.candidates.filter((c: { config: { structured: number } }) => c.config.structured > 0);
  t.ok(
    pruned.every((c: { latencyRatio?: number; rounds?: unknown[] }) => c.latencyRatio! > 0 && c.rounds!.length >= 3),
    'every candidate was timed in side-by-side rounds, its ratio to the original stated',
  );
  // --prefer latency: the user trades the floor knowingly, and the message says so
  const fast = await runCli([
    'fit',
    model,
    '-o',
    join(dir, 'fast.onnx'),
    '--shape',
    'x=1x1x28x28',
    '--calib',
    data,
    '--latency',
    '0.01x',
    '--min-fidelity',
    '0.98',
    '--prefer',
    'latency',
  ]);
  t.equal(fast.code, 3, fast.stderr);
  t.match(fast.stderr, /--prefer latency: the fidelity floor traded/);
  const ff = JSON.parse(readFileSync(join(dir, 'fast.frontier.json'), 'utf8'));
  const fc = ff.candidates.find((c: { id: string }) => c.id === ff.chosenId);
  // by each fit's ratio to the original timed beside it: two fits' raw sub-ms p50s differ with the load
  const ratio = (e: { latencyRatio?: number; latencyP50Ms: number; referenceP50Ms?: number }) =>
    e.latencyRatio ?? (e.referenceP50Ms ? e.latencyP50Ms / e.referenceP50Ms : 1);
  t.ok(
    ratio(fc) <= ratio(chosen) * 1.5,
    `closer to the budget, or as close (${fc.id} ${ratio(fc).toFixed(2)}x, ${chosen.id} ${ratio(chosen).toFixed(2)}x)`,
  );
  const bad = await runCli(['fit', model, '-o', join(dir, 'x.onnx'), '--prefer', 'speed']);
  t.equal(bad.code, 2, bad.stderr);
});

t.test('bad budgets are usage errors', async (t) => {
  const r = await runCli(['fit', model, '-o', join(dir, 'x.onnx'), '--latency', 'fast']);
  t.equal(r.code, 2);
  t.match(
    r.stderr,
    /a relative latency budget must look like 0\.5x, got 'fast' \(--latency\)/,
    'the domain message, then the flag to correct',
  );
  const r2 = await runCli(['fit', model, '-o', join(dir, 'x.onnx'), '--profile', 'toaster']);
  t.equal(r2.code, 2);
  t.match(r2.stderr, /raspberry-pi-4/);
  const r3 = await runCli(['fit', model, '-o', join(dir, 'x.onnx'), '--shape', 'x=1x1x28x28', '--calib', data, '--task', 'ctc']);
  t.equal(r3.code, 2, 'a task the outputs do not fit is a usage error');
  t.match(r3.stderr, /task ctc does not fit this model's outputs \(logits 1x10\).*\(--task\)/);
  const r4 = await runCli(['fit', model, '-o', join(dir, 'x.onnx'), '--task', 'ocr']);
  t.equal(r4.code, 2);
  t.match(r4.stderr, /unknown task 'ocr': expected auto or one of classify, text-det, detect, ctc, embed, raw/);
});

t.test('a compressed-size budget is met with unstructured sparsity, measured on the real model', async (t) => {
  // MNIST CNN: 396 kB file, ~366 kB gzip; int8 ~84 kB gzip (no faster here, so kept out of the
  // latency search, yet the cheapest start for a size budget); sparsity shrinks the gzip further
  const out = join(dir, 'small.onnx');
  const r = await runCli(
    [
      'fit',
      model,
      '-o',
      out,
      '--shape',
      'x=1x1x28x28',
      '--calib',
      data,
      '--latency-ms',
      '5000',
      '--size-mb',
      '0.07',
      '--min-fidelity',
      '0.9',
      '--json',
    ],
    { timeoutMs: 600_000 },
  );
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  t.ok(j.chosen.config.unstructured > 0, `chosen ${j.chosen.id}`);
  t.equal(j.chosen.config.quant, 'int8-static', 'sparsity starts from the 4x smaller int8 model');
  t.ok(j.chosen.compressedBytes <= 0.07e6, `${j.chosen.compressedBytes} bytes gzip`);
  const gz = gzipSync(readFileSync(out)).byteLength;
  t.ok(gz <= 0.07e6, `the written model compresses to ${gz} bytes`);
  t.ok(j.chosen.fidelity >= 0.9, `fidelity ${j.chosen.fidelity}`);
  const bad = await runCli(['fit', model, '-o', out, '--shape', 'x=1x1x28x28', '--size-mb', '-1']);
  t.equal(bad.code, 2, bad.stderr);
  t.match(bad.stderr, /the size budget \(MB\) must be above 0 and at most 1048576, got -1 \(--size-mb\)/);
});

t.test('--train-minutes: the best candidate is trained on the box and judged like any other', async (t) => {
  // batches of 64 digits, 8 of them (at batch 1 the CNN's 0.05 ms is all overhead: nothing pruned
  // is faster; at batch 16 its 0.27 ms let a loaded CI box time every pruned candidate no faster,
  // twice; at 64 the pruned ones measure 0.6-0.7x of 1.1 ms, and still did with two fits running
  // side by side), unlabelled: fidelity is agreement with the original's labels
  const batches = join(dir, 'mnist64');
  writeMnistLabelled(batches, { split: 'test', limit: 512 });
  rmSync(join(batches, 'labels.txt'));
  const out = join(dir, 'trained.onnx');
  const fitArgs = [
    'fit',
    model,
    '-o',
    out,
    '--shape',
    'x=64x1x28x28',
    '--calib',
    batches,
    // 0.8x, not tighter: the pruned candidates that keep the floor measure 0.57-0.80x, so at
    // 0.6x the fit often chose nothing to train
    '--latency',
    '0.8x',
    '--min-fidelity',
    '0.9',
    '--train-minutes',
    '0.25',
    '--report',
    join(dir, 'trained.html'),
    '--json',
  ];
  const r = await runCli(fitArgs, { timeoutMs: 900_000 });
  // on a loaded shared box MNIST's sub-ms timings can leave every pruned candidate no faster than
  // the original (CI once: best 0.38 ms against a 0.31 ms budget); then nothing meets the budget and
  // nothing is trained, which is the fit's right answer, not what this test is about: said, not hidden
  if (r.code === 3 && /no candidate meets every budget: latency misses/.test(r.stderr)) {
    t.ok(true, 'nothing to train here', { skip: `this box's timings met no latency budget: ${r.stderr.trim()}` });
    return;
  }
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { notes: string[]; chosen: { id: string; config: { quant: string; structured: number } } };
  const trainNotes = j.notes.filter((n) => n.startsWith('training:'));
  // likewise when the folded original alone measures under the budget (MNIST's folds make it
  // faster, and a loaded box's timings move by a quarter): the fit chooses it and has nothing to
  // recover; that note must then be true of the choice, and the rest is not what this box showed
  if (trainNotes.some((n) => n.startsWith('training: no pruned or int8 candidate to train'))) {
    const cfg = j.chosen.config;
    t.notOk(
      cfg.quant === 'int8-static' || (cfg.quant === 'none' && cfg.structured > 0),
      `${j.chosen.id} is not a candidate training recovers`,
    );
    t.ok(true, 'nothing to train here', { skip: `this box's timings chose ${j.chosen.id}: ${trainNotes.join('; ')}` });
    return;
  }
  const frontier = JSON.parse(readFileSync(join(dir, 'trained.frontier.json'), 'utf8'));
  const trained = (
    frontier.candidates as {
      id: string;
      modelPath: string;
      config: { train?: number; quant: string };
      training?: { steps: number; heldOutBefore: number; heldOutAfter: number; curve: unknown[] };
    }[]
  ).filter((c) => c.config.train);
  t.ok(trained.length >= 1, `a candidate was trained (${trainNotes.join('; ') || 'no training note'})`);
  t.equal(new Set(trained.map((c) => c.modelPath)).size, 1, 'once: another thread count times the same file');
  const c = trained[0]!;
  t.equal(c.config.train, 0.25);
  // which candidate is best depends on this box's timings: MNIST int8 is usually no faster at batch
  // 64 (1.4x float here), so the float pruned model is distilled, but CI once measured the pruned ones no faster and
  // trained static int8 quantization-aware; either is right, and the notes must say which
  t.ok(['none', 'int8-static'].includes(c.config.quant), `trained ${c.config.quant}`);
  const how = c.config.quant === 'none' ? 'distilled from the original' : 'trained quantization-aware';
  t.ok(c.training && c.training.steps > 0, `trained ${c.training?.steps} steps`);
  t.ok(c.training!.heldOutAfter <= c.training!.heldOutBefore, 'never worse on held-out samples than before training');
  t.ok(c.training!.curve.length >= 2, 'with its loss curve');
  t.match(j.notes.join('\n'), new RegExp(`training: \\S+ ${how} for up to 0.25 min`));
  t.match(readFileSync(join(dir, 'trained.html'), 'utf8'), /<h2>Training on this box<\/h2>/);
  // the choice is re-timed beside the original before it is returned; the cache keeps those rounds
  // beside its measurement, so a later fit of the same model (the agent's training fit re-uses the
  // first fit's measurements) judges it on every round it was timed in (test/fit/cache.test.ts)
  type Round = { referenceP50Ms: number; candidateP50Ms: number };
  type Timed = { id: string; modelPath: string; rounds?: Round[] };
  const chosen = (frontier.candidates as Timed[]).find((e) => e.id === j.chosen.id)!;
  if (chosen.rounds && chosen.rounds.length > 3) {
    const files = readdirSync(join(dir, 'cache'), { recursive: true, encoding: 'utf8' }).map((f) => join(dir, 'cache', f));
    const measured = files
      .filter((f) => isMeasurementFile(basename(f)))
      .find((f) => {
        const m = JSON.parse(readFileSync(f, 'utf8')) as Timed;
        return m.modelPath === chosen.modelPath && m.rounds?.[0]?.candidateP50Ms === chosen.rounds![0]!.candidateP50Ms;
      });
    t.ok(measured, `${chosen.id}'s measurement is cached`);
    const own = (JSON.parse(readFileSync(measured!, 'utf8')) as Timed).rounds!;
    const retimedFile = join(dirname(measured!), `retimed-${basename(measured!)}`);
    const more = existsSync(retimedFile) ? (JSON.parse(readFileSync(retimedFile, 'utf8')) as { rounds: Round[] }).rounds : [];
    t.same(
      [...own, ...more],
      chosen.rounds,
      `the cache holds all ${chosen.rounds.length} of its rounds (${own.length} measured, ${more.length} re-timed)`,
    );
  } else t.comment(`the choice ${chosen.id} was not re-timed here (${chosen.rounds?.length ?? 0} rounds)`);
  const bad = await runCli(['fit', model, '-o', out, '--shape', 'x=1x1x28x28', '--train-minutes', '-1']);
  t.equal(bad.code, 2, bad.stderr);
  t.match(bad.stderr, /the training time must be 0 to 1440 minutes, got -1/);
});
