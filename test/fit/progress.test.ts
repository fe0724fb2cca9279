// A fit's progress while a candidate trains: the fraction moves with the training's clock and the
// time left counts the training, where it sat at the search's last figure for all of its minutes;
// and the figure a fit reports never goes back.
import t from 'tap';
import { forwardOnly, trainingProgress } from '../../src/fit/progress.js';
import type { FitProgress } from '../../src/fit/types.js';

t.test('a training run moves the fit from where the search stood toward its end', async (t) => {
  // the agent's training fit on det: the search at 78 %, about 30 s of measuring left, 12 min of training
  const at: FitProgress = { fraction: 0.78, stage: 'measure', etaS: 30 };
  t.same(trainingProgress(at, 0, 720), { fraction: 0.78, etaS: 750 }, 'at its start: where the search stood, the training ahead');
  const mid = trainingProgress(at, 375, 720);
  t.equal(mid.fraction.toFixed(4), (0.78 + (0.22 * 375) / 750).toFixed(4), 'half way: half of the time then left');
  t.equal(mid.etaS, 375);
  const end = trainingProgress(at, 720, 720);
  t.ok(end.fraction > 0.99 && end.fraction < 1, `at its end: short of done by the measuring still to come (${end.fraction.toFixed(4)})`);
  t.equal(end.etaS, 30);
  t.same(trainingProgress(at, 800, 720), end, 'a run past its budget (the last step ends late) is where its end is');
  // a search with no estimate yet (the training of the first candidate it measures)
  const fresh = trainingProgress({ fraction: 0, stage: 'measure' }, 60, 120);
  t.same(fresh, { fraction: 0.5, etaS: 60 });
  // readings every 30 s rise at every one
  const seen = Array.from({ length: 25 }, (_, i) => trainingProgress(at, i * 30, 720).fraction);
  t.ok(
    seen.every((f, i) => i === 0 || f > seen[i - 1]!),
    'every report is further on',
  );
});

t.test('the fraction a fit reports never goes back', async (t) => {
  const got: FitProgress[] = [];
  const show = forwardOnly((p) => got.push(p));
  for (const [fraction, stage] of [
    [0.1, 'measured'],
    [0.5, 'measured'],
    [0.3, 'measured'], // the search planned more candidates
    [0.97, 'training'],
    [0.89, 'measured'], // the search resumes after the training at its own figure
    [1, 'done'],
  ] as const)
    show({ fraction, stage, message: stage });
  t.same(
    got.map((p) => p.fraction),
    [0.1, 0.5, 0.5, 0.97, 0.97, 1],
  );
  t.same(
    got.map((p) => p.stage),
    ['measured', 'measured', 'measured', 'training', 'measured', 'done'],
    'everything else as reported',
  );
});
