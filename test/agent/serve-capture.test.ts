// Opt-in input capture (issue 19): the real serve process keeps 1 in N request inputs as .npy in a
// ring bounded by maxMb (oldest deleted first, each file whole), and an agent with
// serve.capture.enabled fits on the captured inputs once it holds enough of them
// (CAPTURE_MIN_SAMPLES: 16 to calibrate, 16 to judge), from a frozen snapshot of the newest.
import t from 'tap';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { ROOT } from '../../devkit/paths.js';
import { closeClients, infer } from '../../devkit/serve-client.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { makeOperator } from '../helpers/operator.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { Agent } from '../../src/agent/index.js';
import { CAPTURE_MIN_SAMPLES } from '../../src/agent/capture.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import { imageInput } from '../../devkit/calib.js';
import { readNpy } from '../../src/data/npy.js';
import { referenceOnlyFitter } from '../../src/agent/reference-fitter.js';
import type { FitRequest, Fitter } from '../../src/fit/types.js';
import { ServeProcess } from '../../src/serve/process.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-capture-'));
// state-changing commands are signed by a pinned operator key (issue 20)
const op = makeOperator(join(dir, 'op'));
const broker = await startBroker();
t.teardown(async () => {
  closeClients();
  await broker.stop();
  cleanupDir(dir);
});

const clsDir = join(ROOT, 'test/fixtures/ocr/cls');
const images = ['0/page-01.png', '0/page-03.png', '0/page-05.png'].map((f) => imageInput(join(clsDir, f), clsDir));
const SAMPLE_BYTES = images[0]!.data.byteLength + 128; // .npy header: 128 bytes

t.test('the serve process keeps 1 in N inputs in a ring bounded by maxMb', async (t) => {
  const ring = join(dir, 'ring');
  const sp = new ServeProcess();
  const maxMb = (SAMPLE_BYTES * 5.5) / 2 ** 20; // room for 5 samples
  const where = await sp.start({
    host: '127.0.0.1',
    port: 0,
    socket: null,
    token: null,
    maxBodyMb: 8,
    capture: { dir: ring, every: 3, maxMb },
  });
  t.teardown(() => sp.stop());
  await sp.load({ file: CLS_MODEL, version: 'v1', sha256: 'h', level: 0, label: 'fp32', threads: 1, shapes: { x: [1, 3, 48, 192] } });
  const files = (): string[] => readdirSync(ring).sort();
  // requests one after another: a sample is written before the next 1-in-3 comes (none skipped)
  for (let i = 0; i < 9; i++) {
    await infer({ url: where.url }, 'default', { x: images[i % 3]! });
    await new Promise((r) => setTimeout(r, 30));
  }
  const first = files();
  t.equal(first.length, 3, '9 requests, every 3rd kept');
  // the third request of each three was images[2]: what is kept is what was sent
  const a = readNpy(join(ring, first[0]!));
  t.same(a.shape, [1, 3, 48, 192]);
  t.same(
    Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength),
    Buffer.from(images[2]!.data.buffer, images[2]!.data.byteOffset, images[2]!.data.byteLength),
    'the request input, byte for byte',
  );
  for (let i = 0; i < 30; i++) {
    await infer({ url: where.url }, 'default', { x: images[i % 3]! });
    await new Promise((r) => setTimeout(r, 30));
  }
  const after = files();
  t.equal(after.length, 5, 'bounded by maxMb: 13 kept, the oldest 8 deleted');
  t.notOk(after.includes(first[0]!), 'oldest first');
  t.ok(
    after.every((f) => /^\d{13}-\d{6}\.npy$/.test(f)),
    'only whole samples (no temp files)',
  );
  const total = after.reduce((s, f) => s + readFileSync(join(ring, f)).length, 0);
  t.ok(total <= maxMb * 2 ** 20, `${total} bytes <= ${Math.round(maxMb * 2 ** 20)}`);
});

t.test('an agent with capture on fits on the captured inputs once there are enough', async (t) => {
  const state = join(dir, 'box');
  const seen: FitRequest[] = [];
  const fitter: Fitter = async (req, progress) => {
    seen.push(req);
    return referenceOnlyFitter(req, progress);
  };
  const agent = new Agent(
    loadAgentConfig({
      flags: {
        deviceId: 'capture-box',
        stateDir: state,
        train: { minutes: 0 },
        model: { path: CLS_MODEL, shapes: { x: [1, 3, 48, 192] } },
        threads: 1,
        metricsIntervalS: 0.5,
        probe: { intervalS: 5 },
        mqtt: { url: broker.url },
        security: { operatorKeys: [op.pubFile] },
        serve: { port: 0, capture: { enabled: true, every: 2, maxMb: 16 } },
      },
    }),
    { fitter, log: () => undefined },
  );
  t.teardown(() => agent.stop());
  const watch = await Watcher.connect(broker.url, ['edgefit/capture-box/#']);
  t.teardown(() => watch.close());
  await agent.start();
  await watch.waitFor((m) => m.topic.endsWith('/events') && m.json().type === 'deployed' && m.json().data.fitId !== null, 60_000);
  t.equal(seen.length, 1, 'the first fit');
  t.not(seen[0]!.calibDataPath, join(state, 'capture-fit'), 'before capture: the model data');
  const met = await watch.waitFor((m) => m.topic.endsWith('/metrics') && m.json().served?.on === true, 20_000);
  t.equal(met.json().served.capture, true, 'metrics say capture is on');

  const url = agent.serving!.url!;
  for (let i = 0; i < CAPTURE_MIN_SAMPLES * 2 + 4; i++) {
    await infer({ url }, 'default', { x: images[i % 3]! });
    await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(readdirSync(join(state, 'capture')).length >= CAPTURE_MIN_SAMPLES, 'enough captured');

  // the next fit (asked for by command here; a restart does the same): on the captured inputs
  const from = watch.msgs.length;
  await watch.publish('edgefit/capture-box/request/fit', op.signed('capture-box', 'fit', 'f2'));
  const started = await watch.waitFor(
    (m) => m.topic.endsWith('/events') && m.json().type === 'fit-started',
    60_000,
    from,
    'the second fit',
  );
  t.match(started.json().message, `on ${CAPTURE_MIN_SAMPLES} captured inputs`);
  await watch.waitFor((m) => m.topic.endsWith('/events') && m.json().type === 'fit-done', 60_000, from, 'fit-done');
  const req = seen.at(-1)!;
  t.equal(req.calibDataPath, join(state, 'capture-fit'), 'calibrated on the snapshot of the captured inputs');
  t.equal(req.judgeDataPath, undefined, 'and judged on them (the fit splits the flat set)');
  t.equal(readdirSync(join(state, 'capture-fit')).length, CAPTURE_MIN_SAMPLES);
});
