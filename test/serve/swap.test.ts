// Hot swaps under load (issue 19): 20 swaps between cls fp32 and its dynamic-int8 copy while 4
// clients send requests back to back. No request fails, every answer names a version that was
// current at some moment while that request was out, and retired workers are gone afterwards.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';
import { closeClients, infer, type Target } from '../../devkit/serve-client.js';
import { imageInput } from '../../devkit/calib.js';
import { quantizeModel } from '../../src/fit/quantize/plan.js';
import { loadModel } from '../../src/onnx/index.js';
import { Engine } from '../../src/serve/engine.js';
import { ServeServer } from '../../src/serve/http.js';
import type { ServedModel } from '../../src/serve/types.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-swap-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
t.teardown(closeClients);

const clsDir = join(ROOT, 'test/fixtures/ocr/cls');
const clsX = imageInput(join(clsDir, '0/page-01.png'), clsDir);

t.test('20 hot swaps under 4 clients: 0 failed requests, each answered by a version current while it ran', async (t) => {
  const int8 = join(dir, 'cls-int8.onnx');
  const q = await quantizeModel(loadModel(OCR_MODELS.cls.file), { mode: 'dynamic' });
  t.ok(q.report.layers.quantized > 0, 'the int8 copy has int8 layers');
  writeFileSync(int8, q.bytes);
  const files = [OCR_MODELS.cls.file, int8];
  const model = (i: number): ServedModel => ({
    file: files[i % 2]!,
    version: `v${i}`,
    sha256: 'x',
    level: i % 2,
    label: i % 2 ? 'int8' : 'fp32',
    threads: 1,
    shapes: { x: [1, 3, 48, 192] },
  });

  const engine = new Engine();
  const server = new ServeServer(engine, { host: '127.0.0.1', port: 0, socket: join(dir, 's.sock'), token: null, maxBodyMb: 8 });
  const where = await server.listen();
  t.teardown(async () => {
    await server.close();
    await engine.close();
  });
  const timeline: { at: number; version: string }[] = [];
  engine.on('swap', (m) => timeline.push({ at: performance.now(), version: m.version }));
  await engine.load(model(0));

  const SWAPS = 20;
  const loadMs: number[] = [];
  let done = false;
  const results: { start: number; end: number; version: string }[] = [];
  const failures: string[] = [];
  const targets: Target[] = [{ url: where.url }, { socket: where.socket }];
  const client = async (c: number): Promise<void> => {
    while (!done) {
      const start = performance.now();
      try {
        const r = await infer(targets[c % 2]!, 'default', { x: clsX }, c % 2 === 0);
        results.push({ start, end: performance.now(), version: r.json.model_version });
      } catch (e) {
        failures.push(String(e));
      }
    }
  };
  const clients = [0, 1, 2, 3].map(client);
  for (let i = 1; i <= SWAPS; i++) {
    await new Promise((r) => setTimeout(r, 40));
    const l = await engine.load(model(i));
    loadMs.push(Math.round(l.loadMs));
  }
  await new Promise((r) => setTimeout(r, 100));
  done = true;
  await Promise.all(clients);

  t.same(failures, [], '0 failed requests');
  t.comment(`load ms: ${loadMs.join(' ')}`);
  t.equal(timeline.length, SWAPS + 1);
  /** Versions current at some moment in [a, b]: the one current at a, and each swapped in before b. */
  const currentDuring = (a: number, b: number): Set<string> => {
    const s = new Set<string>();
    let atA = timeline[0]!.version;
    for (const e of timeline) {
      if (e.at <= a) atA = e.version;
      else if (e.at <= b) s.add(e.version);
    }
    s.add(atA);
    return s;
  };
  const wrong = results.filter((r) => !currentDuring(r.start, r.end).has(r.version));
  t.same(wrong, [], 'every answer came from a version current while it was out');
  const versions = new Set(results.map((r) => r.version));
  t.ok(results.length > SWAPS * 2, `${results.length} requests answered`);
  t.ok(versions.size > SWAPS / 2, `${versions.size} versions answered requests`);
  t.equal(engine.model?.version, `v${SWAPS}`);
  // terminating a worker is asynchronous: give a loaded box a few seconds
  for (let i = 0; i < 50 && engine.workers > 1; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(engine.workers, 1, 'retired workers terminated');
  t.equal(engine.inFlight, 0);
});
