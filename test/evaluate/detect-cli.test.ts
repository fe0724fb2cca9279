// `edgefit eval --task detect` end to end on the generated box detector (devkit/detector.ts):
// auto-detected in raw YOLOv8 layout and with built-in NMS (whose box count differs between the
// reference and a candidate), known answers (itself 1, a silent copy 0) and the dimmed copy's
// hand-counted 158/180 F1, which raw cosine (near 1) does not show.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../devkit/paths.js';
import { writeDetectorFixture } from '../../devkit/detector.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-detcli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const fx = writeDetectorFixture(dir);

const evalJson = async (model: string, ref: string, extra: string[] = []) => {
  const r = await runCli(['eval', model, '--reference', ref, '--data', fx.images, '--json', ...extra]);
  t.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { fidelity: { task: string; metric: string; value: number; taskFigures: Record<string, number> } };
};

for (const layout of ['yolov8', 'nms'] as const) {
  t.test(`${layout}: detected as a box detector, judged by detection F1`, async (t) => {
    const m = fx.models[layout];
    const self = await evalJson(m.ref, m.ref);
    t.same([self.fidelity.task, self.fidelity.metric, self.fidelity.value], ['detect', 'detF1', 1]);
    const dim = await evalJson(m.dimmed, m.ref);
    t.equal(dim.fidelity.value, 158 / 180, 'dimmed class 0: 79 of 101 boxes kept, all matched');
    t.equal(dim.fidelity.taskFigures.precision, 1);
    const silent = await evalJson(m.silent, m.ref, ['--task', 'detect']);
    t.same([silent.fidelity.value, silent.fidelity.taskFigures.mAP50], [0, 0]);
  });
}

t.test('text output names the metric; a detector judged as text-det is a one-line usage error', async (t) => {
  const m = fx.models.nms;
  const r = await runCli(['eval', m.dimmed, '--reference', m.ref, '--data', fx.images]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /task {7}detect \(auto-detected.*detection F1 0\.8778, precision 1, recall 0\.7822, mAP@0\.5 1/);
  t.match(r.stdout, /outputs differ in shape: no raw figures/);
  const bad = await runCli(['eval', m.dimmed, '--reference', m.ref, '--data', fx.images, '--task', 'text-det']);
  t.not(bad.code, 0);
  t.match(bad.stderr, /^edgefit: task text-det does not fit this model's outputs/);
  t.equal(bad.stderr.trim().split('\n').length, 1);
});
