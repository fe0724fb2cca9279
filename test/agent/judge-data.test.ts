// The agent's fits judge candidates on data that did not calibrate them (issue 16): the bundled
// det model's default is the bundled calibrate/ and judge/ sets; model.judge (or --judge) names
// another judge set; a configured model.calib alone leaves the split to the fit. A model's dynamic
// dims take the calibration data's shape, for the fit and the live probe alike.
import t from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { ROOT } from '../../devkit/paths.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { writeNpy } from '../../src/data/npy.js';
import { Agent } from '../../src/agent/index.js';
import { DEFAULT_MODEL } from '../../src/agent/agent.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import type { Fitter, FitRequest } from '../../src/fit/types.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-judge-'));
const broker = await startBroker();
t.teardown(async () => {
  await broker.stop();
  cleanupDir(dir);
});

/** Start an agent whose fitter records its request and returns the original model, then stop it. */
async function requestFor(name: string, model: Record<string, unknown>, modelPath: string): Promise<FitRequest> {
  let seen: FitRequest | undefined;
  const bytes = readFileSync(modelPath);
  const fitter: Fitter = async (req) => {
    seen = req;
    return {
      chosenId: 'orig',
      referenceLatencyP50Ms: 1,
      fitter: 'test-record',
      frontier: [
        {
          id: 'orig',
          config: { structured: 0, unstructured: 0, quant: 'none', threads: 1 },
          modelPath,
          sha256: createHash('sha256').update(bytes).digest('hex'),
          sizeBytes: bytes.length,
          latencyP50Ms: 1,
          latencyP95Ms: 1,
          modelRssMb: 1,
          fidelity: 1,
          meets: { latency: true, ram: true, fidelity: true },
        },
      ],
    };
  };
  const cfg = loadAgentConfig({
    flags: {
      deviceId: `dev-judge-${name}`,
      stateDir: join(dir, name),
      // one fit: the training fit after it has its own test (test/agent/train-phase.test.ts)
      train: { minutes: 0 },
      model,
      budgets: { latencyMs: 10_000 },
      threads: 1,
      probe: { intervalS: 60, runs: 1, stepDownAfter: 100, stepUpAfter: 100, headroom: 0.9, maxCpuPercent: 100 },
      // serving has its own tests (test/agent/serve-*.test.ts)
      serve: { enabled: false },
      mqtt: { url: broker.url },
      dashboard: { port: 0 },
    },
  });
  const agent = new Agent(cfg, { fitter, log: () => undefined });
  await agent.start();
  for (let i = 0; i < 600 && !seen; i++) await new Promise((r) => setTimeout(r, 100));
  await agent.stop();
  if (!seen) throw new Error('the fitter was never called');
  return seen;
}

t.test('config: model.judge is a nullable path, null by default', async (t) => {
  t.equal(loadAgentConfig({ flags: {} }).model.judge, null);
  t.equal(loadAgentConfig({ flags: { model: { judge: '/data/judge' } } }).model.judge, '/data/judge');
});

t.test('the bundled model is calibrated on the bundled calibrate set and judged on the bundled judge set', async (t) => {
  const req = await requestFor('default', {}, DEFAULT_MODEL);
  t.equal(req.calibDataPath, join(ROOT, 'assets/calib/det/calibrate'));
  t.equal(req.judgeDataPath, join(ROOT, 'assets/calib/det/judge'));
});

t.test('model.judge names the judge set; model.calib alone leaves the split to the fit', async (t) => {
  const cls = join(ROOT, 'test/fixtures/ocr/cls');
  const bw = join(ROOT, 'test/fixtures/ocr/cls-bw');
  const shapes = { x: [1, 3, 48, 192] };
  const both = await requestFor('both', { path: CLS_MODEL, calib: cls, judge: bw, shapes }, CLS_MODEL);
  t.equal(both.calibDataPath, resolve(cls));
  t.equal(both.judgeDataPath, resolve(bw));
  const calibOnly = await requestFor('calib', { path: CLS_MODEL, calib: cls, shapes }, CLS_MODEL);
  t.equal(calibOnly.judgeDataPath, undefined);
});

t.test("a model's dynamic dims take model.calib's shape when the config gives none", async (t) => {
  const npy = join(dir, 'det64.npy');
  writeNpy(npy, { dtype: 'float32', shape: [2, 3, 64, 64], data: new Float32Array(2 * 3 * 64 * 64).fill(0.5) });
  const req = await requestFor('dyn', { path: DEFAULT_MODEL, calib: npy }, DEFAULT_MODEL);
  t.same(req.shapes, { x: [1, 3, 64, 64] });
  const given = await requestFor(
    'given',
    { path: DEFAULT_MODEL, calib: join(ROOT, 'assets/calib/det/calibrate'), shapes: { x: [1, 3, 96, 96] } },
    DEFAULT_MODEL,
  );
  t.same(given.shapes, { x: [1, 3, 96, 96] }, 'configured shapes win (the images are resized to them)');
});
