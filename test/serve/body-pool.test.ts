// Request-body reuse (issue 19): the pool hands out the smallest free buffer that fits, holds no
// more than its bounds, empties when idle; and on a real server a body read into a reused buffer
// (stale bytes of a larger earlier request behind it) answers exactly as a direct run would.
import t from 'tap';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';
import { binaryBody, closeClients, decodeInfer, infer, type Reply } from '../../devkit/serve-client.js';
import { imageInput } from '../../devkit/calib.js';
import type { NdArray } from '../../src/data/ndarray.js';
import { openSession, toTensor } from '../../src/runtime/session.js';
import { BodyPool } from '../../src/serve/body-pool.js';
import { Engine } from '../../src/serve/engine.js';
import { ServeServer } from '../../src/serve/http.js';

t.teardown(closeClients);

t.test('the pool: smallest fit, bounds, detached buffers, idle clear', async (t) => {
  const pool = new BodyPool(2, 1000, 50);
  const a = new ArrayBuffer(300);
  const b = new ArrayBuffer(500);
  pool.give(b);
  pool.give(a);
  pool.give(a);
  t.same(pool.stats, { buffers: 2, bytes: 800 }, 'a buffer given twice is held once');
  pool.give(new ArrayBuffer(100));
  t.same(pool.stats, { buffers: 2, bytes: 800 }, 'no more than maxBuffers');
  t.equal(pool.take(200), a, 'the smallest that fits');
  t.equal(pool.take(200), b);
  const c = pool.take(200);
  t.not(c, a);
  t.equal(c.byteLength, 200, 'a new one when none is free');
  pool.give(new ArrayBuffer(1200));
  t.same(pool.stats, { buffers: 0, bytes: 0 }, 'no more than maxBytes');
  const moved = new ArrayBuffer(64);
  structuredClone(moved, { transfer: [moved] });
  pool.give(moved);
  t.same(pool.stats, { buffers: 0, bytes: 0 }, 'a detached buffer is ignored');
  pool.give(a);
  await new Promise((r) => setTimeout(r, 120));
  t.same(pool.stats, { buffers: 0, bytes: 0 }, 'emptied after idleMs without a give');
});

t.test('a reused body never leaks into the next answer (cls, widths 192 then 96, binary and JSON)', async (t) => {
  const engine = new Engine();
  const server = new ServeServer(engine, { host: '127.0.0.1', port: 0, socket: null, token: null, maxBodyMb: 16 });
  const { url } = await server.listen();
  t.teardown(async () => {
    await server.close();
    await engine.close();
  });
  await engine.load({ file: OCR_MODELS.cls.file, version: 'v', sha256: 'v', level: null, label: 'cls', threads: 2, shapes: {} });
  const dir = join(ROOT, 'test/fixtures/ocr/cls');
  const wide = imageInput(join(dir, '0/page-01.png'), dir);
  const flipped = imageInput(join(dir, '180/page-02.png'), dir);
  // the flipped image's left half: a smaller body than the one before it
  const [n, c, h, w] = flipped.shape as [number, number, number, number];
  const half = new Float32Array(n * c * h * (w / 2));
  for (let r = 0; r < n * c * h; r++) half.set((flipped.data as Float32Array).subarray(r * w, r * w + w / 2), (r * w) / 2);
  const narrow: NdArray = { dtype: 'float32', shape: [n, c, h, w / 2], data: half };
  const s = await openSession(OCR_MODELS.cls.file, { threads: 2 });
  const direct = async (x: NdArray): Promise<Float32Array> => Object.values(await s.run({ x: toTensor(x) }))[0]!.data as Float32Array;
  const want = { wide: await direct(wide), narrow: await direct(narrow), flipped: await direct(flipped) };
  await s.release();
  const got = async (x: NdArray, binary = true): Promise<Float32Array> =>
    Object.values((await infer({ url }, 'default', { x }, binary)).outputs)[0]!.data as Float32Array;

  t.same(Array.from(await got(wide)), Array.from(want.wide), 'first request (a fresh body)');
  t.equal(server.bodies.stats.buffers, 1, 'its body came back from the worker for reuse');
  t.same(Array.from(await got(narrow)), Array.from(want.narrow), 'a smaller body in the reused buffer = direct run');
  t.same(Array.from(await got(flipped)), Array.from(want.flipped), 'then a full-size one again');
  const viaJson = await infer({ url }, 'default', { x: wide }, false);
  t.ok(Math.abs((Object.values(viaJson.outputs)[0]!.data as Float32Array)[0]! - want.wide[0]!) < 1e-6, 'JSON after binary');
  const p = viaJson.json.parameters as unknown as Record<string, number>;
  t.ok(p.receive_ms! >= 0 && p.queue_ms! >= 0 && p.run_ms! > 0, 'the answer says where its time went');
  t.ok(server.bodies.stats.buffers >= 1 && server.bodies.stats.buffers <= 4, 'the pool stays bounded');

  // a streamed body (chunked, no Content-Length) fills a reused buffer whole, growing only when it must
  const { body, headers } = binaryBody({ x: flipped });
  const u = new URL(url!);
  const reply = await new Promise<Reply>((resolve, reject) => {
    const req = httpRequest({ method: 'POST', host: u.hostname, port: u.port, path: '/v2/models/default/infer', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    const all = Buffer.concat(body);
    for (let o = 0; o < all.length; o += 10_000) req.write(all.subarray(o, o + 10_000));
    req.end();
  });
  t.equal(reply.status, 200, reply.status === 200 ? 'a chunked body is served' : reply.body.toString());
  t.same(
    Array.from(Object.values(decodeInfer(reply).outputs)[0]!.data as Float32Array),
    Array.from(want.flipped),
    'and answered as a direct run',
  );
});
