// The real fit child (src/agent/fit-worker.ts) says when a held training has stopped at its gate:
// a live probe times the served model only then, since before its first step and after its last
// the trainer builds graphs and measures candidates that no gate stops (the agent's first run on
// det stepped its choice down for its own training's start and never returned). A real fit of
// the MNIST CNN trains the model named to it (int8, as the agent names its first fit's choice)
// for 0.25 min; held once training reports progress, the child must tell the hold it parked, and
// answer only the hold it was given.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDir } from '../../devkit/broker.js';
import { ROOT } from '../../devkit/paths.js';
import { writeMnistLabelled } from '../../devkit/mnist-to-labelled.js';
import { childFitter } from '../../src/agent/reference-fitter.js';
import type { FitProgress } from '../../src/fit/types.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-park-'));
const fit = childFitter('test-park');
t.teardown(() => {
  fit.close();
  cleanupDir(dir);
});

t.test('a held training fit tells its hold once it has stopped at its gate, and goes on when released', async (t) => {
  // 8 unlabelled batches of 64 digits, as test/fit/fit.test.ts's training fit
  const batches = join(dir, 'mnist64');
  writeMnistLabelled(batches, { split: 'test', limit: 512 });
  rmSync(join(batches, 'labels.txt'));
  let heldAt: number | undefined;
  let parkedAt: number | undefined;
  let releasedAt: number | undefined;
  const steps: { at: number; message: string }[] = [];
  const onProgress = (p: FitProgress): void => {
    if (p.stage !== 'training') return;
    steps.push({ at: Date.now(), message: p.message ?? '' });
    if (heldAt !== undefined) return;
    heldAt = Date.now();
    // a hold taken back before the child answers it: its word that it parked must not count
    fit.hold(true, () => t.fail('a released hold was answered'));
    fit.hold(false);
    fit.hold(true, () => {
      parkedAt ??= Date.now();
      setTimeout(() => {
        releasedAt = Date.now();
        fit.hold(false);
      }, 1500);
    });
  };
  const result = await fit.fitter(
    {
      modelPath: join(ROOT, 'models/mnist-cnn.onnx'),
      shapes: { x: [64, 1, 28, 28] },
      budgets: { latencyFactor: 0.8, minFidelity: 0.9 },
      profile: 'generic',
      calibDataPath: batches,
      outputDir: join(dir, 'fit'),
      threads: 1,
      trainMinutes: 0.25,
      // as the agent's training fit asks: train the model its first fit deployed (int8 here), which
      // crosses the child's IPC and is trained whatever this box's timings make of the search
      trainFrom: { structured: 0, unstructured: 0, quant: 'int8-static', threads: 1 },
    },
    onProgress,
  );
  t.match(
    (result.trained ?? []).map((c) => c.id),
    [/^s0\.000-u0\.00-int8-static-t1-train0\.25$/],
    'the named model was the one trained (quantization-aware)',
  );
  t.ok(heldAt !== undefined, 'the fit trained a candidate (training progress came)');
  t.ok(parkedAt !== undefined, 'the child said it had stopped at its gate');
  t.ok(parkedAt! - heldAt! < 10_000, `within ${parkedAt! - heldAt!} ms of the hold`);
  const during = steps.filter((s) => s.at > parkedAt! + 300 && s.at < releasedAt!);
  t.same(during, [], 'no training progress while parked');
  t.ok(
    steps.some((s) => s.at > releasedAt!),
    'training went on once released',
  );
  t.ok(result.frontier.length > 0, `the fit finished (${result.chosenId})`);
});
