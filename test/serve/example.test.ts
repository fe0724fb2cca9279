// examples/ocr-client.mjs (issue 19) against a real server with PP-OCRv4 det: the plain-Node
// client's boxes are the ones edgefit's own text-detection task finds in a direct run's map.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';
import { decodeImage, parsePreprocessSpec, preprocessImage } from '../../src/data/image.js';
import { textBoxes } from '../../src/fidelity/task-textdet.js';
import { openSession, toTensor } from '../../src/runtime/session.js';
import { Engine } from '../../src/serve/engine.js';
import { ServeServer } from '../../src/serve/http.js';

t.test('the example client prints the text boxes of a real image', async (t) => {
  const engine = new Engine();
  const server = new ServeServer(engine, { host: '127.0.0.1', port: 0, socket: null, token: 'example-token-0123', maxBodyMb: 16 });
  const { url } = await server.listen();
  t.teardown(async () => {
    await server.close();
    await engine.close();
  });
  await engine.load({
    file: OCR_MODELS.det.file,
    version: 'det-v1',
    sha256: 'x',
    level: null,
    label: 'original',
    threads: 2,
    shapes: { x: [1, 3, 640, 640] },
  });
  const judge = join(ROOT, 'assets/calib/det/judge');
  const image = join(judge, 'page-a.jpg');
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [join(ROOT, 'examples/ocr-client.mjs'), image, '--url', url!, '--token', 'example-token-0123'],
    {
      cwd: ROOT,
    },
  );
  const m = /: (\d+) text boxes from model version det-v1 \(original, [\d.]+ ms\)/.exec(stdout);
  t.ok(m, stdout.split('\n')[0]);
  const printed = [...stdout.matchAll(/\[(\d+), (\d+), (\d+), (\d+)\]/g)].map((r) => r.slice(1).map(Number));
  t.equal(printed.length, Number(m?.[1]));

  // edgefit's own preprocessing and box extraction on a direct run
  const spec = parsePreprocessSpec(JSON.parse(readFileSync(join(judge, 'preprocess.json'), 'utf8')), judge);
  const img = decodeImage(image);
  const x = preprocessImage(img, spec);
  const s = await openSession(OCR_MODELS.det.file, { threads: 2 });
  const map = Object.values(await s.run({ x: toTensor(x) }))[0]!;
  await s.release();
  const want = textBoxes(map.data as Float32Array, 0, 640, 640);
  t.ok(want.length > 5, `${want.length} boxes on a page of text`);
  t.equal(printed.length, want.length, 'as many boxes as edgefit finds');
  const sx = img.width / 640,
    sy = img.height / 640;
  const scaled = want.map((b) => [b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy]).sort((a, b) => a[1]! - b[1]! || a[0]! - b[0]!);
  const worst = Math.max(...printed.flatMap((p, i) => p.map((v, k) => Math.abs(v - scaled[i]![k]!))));
  t.ok(worst <= 2, `boxes agree within ${worst.toFixed(1)} px`);

  // --shm: the image and the map through a /dev/shm file, the same boxes; the client cleans up
  if (existsSync('/dev/shm')) {
    const shm = await promisify(execFile)(
      process.execPath,
      [join(ROOT, 'examples/ocr-client.mjs'), image, '--url', url!, '--token', 'example-token-0123', '--shm'],
      { cwd: ROOT },
    );
    t.equal(shm.stdout.split('\n').slice(1).join('\n'), stdout.split('\n').slice(1).join('\n'), '--shm prints the same boxes');
    t.same(server.shm.status(), [], 'its regions unregistered');
    t.notOk(
      readdirSync('/dev/shm').some((f) => f.startsWith('ocr-client-')),
      'its file removed',
    );
  }
});
