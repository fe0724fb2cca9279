// The serve endpoint (issue 19) on a real server with real models: JSON and binary infer agree
// with a direct onnxruntime run (cls over TCP, det over the Unix socket, MNIST as JSON); bad input
// of every kind gets a 4xx with a one-line reason and the server keeps serving; health, readiness,
// metadata; a failed load keeps the old version; the SSE route announces swaps; tokens.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';
import { binaryBody, closeClients, decodeInfer, infer, jsonBody, request, type Target } from '../../devkit/serve-client.js';
import { imageInput } from '../../devkit/calib.js';
import type { NdArray } from '../../src/data/ndarray.js';
import { openSession, toTensor } from '../../src/runtime/session.js';
import { Engine } from '../../src/serve/engine.js';
import { ServeServer } from '../../src/serve/http.js';
import type { ServedModel, ServeOptions } from '../../src/serve/types.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-serve-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
t.teardown(closeClients);

const MNIST = join(ROOT, 'models/mnist-cnn.onnx');

function served(file: string, version: string, shapes: Record<string, number[]> = {}): ServedModel {
  return { file, version, sha256: 'test', level: null, label: `label-${version}`, threads: 2, shapes };
}

/** The model's outputs from a plain onnxruntime session, as the server would open it. */
async function direct(file: string, inputs: Record<string, NdArray>): Promise<Record<string, Float32Array>> {
  const s = await openSession(file, { threads: 2 });
  const feeds = Object.fromEntries(Object.entries(inputs).map(([k, a]) => [k, toTensor(a)]));
  const r = await s.run(feeds);
  await s.release();
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data as Float32Array]));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function start(opts: Partial<ServeOptions> = {}): Promise<{ engine: Engine; server: ServeServer; tcp: Target; unix: Target }> {
  const engine = new Engine();
  const server = new ServeServer(engine, { host: '127.0.0.1', port: 0, socket: null, token: null, maxBodyMb: 16, ...opts });
  const l = await server.listen();
  t.teardown(async () => {
    await server.close();
    await engine.close();
  });
  return { engine, server, tcp: { url: l.url, token: opts.token ?? null }, unix: { socket: l.socket, token: opts.token ?? null } };
}

const clsX = imageInput(join(ROOT, 'test/fixtures/ocr/cls/0/page-01.png'), join(ROOT, 'test/fixtures/ocr/cls'));

t.test('health and readiness before and after a load; metadata', async (t) => {
  const { engine, tcp } = await start({ name: 'cls' });
  t.equal((await request(tcp, 'GET', '/v2/health/live')).status, 200);
  t.equal((await request(tcp, 'GET', '/v2/health/ready')).status, 503, 'not ready with no model');
  t.equal((await request(tcp, 'GET', '/v2/models/cls/ready')).status, 503);
  const bad = await request(tcp, 'POST', '/v2/models/cls/infer', jsonBody({ x: clsX }).body);
  t.equal(bad.status, 503, 'infer with no model: 503');
  await engine.load(served(OCR_MODELS.cls.file, 'v1', { x: [1, 3, 48, 192] }));
  t.equal((await request(tcp, 'GET', '/v2/health/ready')).status, 200);
  t.equal((await request(tcp, 'GET', '/v2/models/cls/ready')).status, 200);
  t.equal((await request(tcp, 'GET', '/v2/models/cls/versions/v1/ready')).status, 200);
  t.equal((await request(tcp, 'GET', '/v2/models/cls/versions/v0/ready')).status, 503);
  const md = JSON.parse((await request(tcp, 'GET', '/v2/models/cls')).body.toString()) as Record<string, any>;
  t.same(md.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1, -1] }]);
  t.same(md.outputs, [{ name: 'softmax_0.tmp_0', datatype: 'FP32', shape: [-1, 2] }]);
  t.same(md.versions, ['v1']);
  t.equal(md.parameters.label, 'label-v1');
  t.equal((await request(tcp, 'GET', '/v2/models/cls/versions/v1')).status, 200);
  t.equal((await request(tcp, 'GET', '/v2/models/other')).status, 404, 'another model name: 404');
  const server = JSON.parse((await request(tcp, 'GET', '/v2')).body.toString()) as { extensions: string[] };
  t.ok(server.extensions.includes('binary_tensor_data'));
});

t.test('JSON and binary infer match a direct onnxruntime run (cls over TCP, det over the socket, MNIST JSON)', async (t) => {
  const sock = join(dir, 'a.sock');
  const { engine, tcp, unix } = await start({ socket: sock, maxBodyMb: 64 });
  await engine.load(served(OCR_MODELS.cls.file, 'cls-1'));
  const want = await direct(OCR_MODELS.cls.file, { x: clsX });
  const viaJson = await infer(tcp, 'default', { x: clsX }, false);
  const viaBin = await infer(tcp, 'default', { x: clsX }, true);
  t.equal(viaJson.json.model_version, 'cls-1');
  t.equal(viaJson.json.parameters.label, 'label-cls-1');
  t.ok(viaJson.json.parameters.run_ms > 0, 'run time measured in the worker');
  t.ok(maxDiff(viaJson.outputs['softmax_0.tmp_0']!.data as Float32Array, want['softmax_0.tmp_0']!) < 1e-6, 'JSON reply = direct run');
  t.ok(
    maxDiff(viaBin.outputs['softmax_0.tmp_0']!.data as Float32Array, want['softmax_0.tmp_0']!) === 0,
    'binary reply = direct run, bit for bit',
  );
  t.same(viaBin.outputs['softmax_0.tmp_0']!.shape, [1, 2]);

  const detX = imageInput(join(ROOT, 'assets/calib/det/judge/page-a.jpg'), join(ROOT, 'assets/calib/det/judge'));
  await engine.load(served(OCR_MODELS.det.file, 'det-1', { x: [1, 3, 640, 640] }));
  const wantDet = await direct(OCR_MODELS.det.file, { x: detX });
  const det = await infer(unix, 'default', { x: detX }, true);
  t.equal(det.json.model_version, 'det-1');
  const map = det.outputs['sigmoid_0.tmp_0']!;
  t.same(map.shape, [1, 1, 640, 640]);
  t.equal(maxDiff(map.data as Float32Array, wantDet['sigmoid_0.tmp_0']!), 0, 'det map over the socket = direct run');

  await engine.load(served(MNIST, 'mnist-1'));
  const digit: NdArray = { dtype: 'float32', shape: [1, 1, 28, 28], data: new Float32Array(784).map((_, i) => ((i * 37) % 100) / 100) };
  const wantM = await direct(MNIST, { x: digit });
  const m = await infer(tcp, 'default', { x: digit }, false);
  const out = Object.values(m.outputs)[0]!;
  t.ok(maxDiff(out.data as Float32Array, Object.values(wantM)[0]!) < 1e-5, 'MNIST JSON = direct run');
  // requested outputs, nested JSON data, an id
  const nested = {
    id: 'req-7',
    inputs: [
      {
        name: 'x',
        datatype: 'FP32',
        shape: [1, 1, 28, 28],
        data: [[Array.from({ length: 28 }, (_, r) => Array.from(digit.data.subarray(r * 28, r * 28 + 28) as Float32Array))]],
      },
    ],
    outputs: [{ name: Object.keys(m.outputs)[0], parameters: { binary_data: true } }],
  };
  const r = await request(tcp, 'POST', '/v2/models/default/infer', JSON.stringify(nested));
  t.equal(r.status, 200, r.body.toString().slice(0, 200));
  const d = decodeInfer(r);
  t.equal((d.json as unknown as { id: string }).id, 'req-7');
  t.ok(d.json.outputs[0]!.parameters?.binary_data_size === 40, 'that output came back binary');
  t.ok(maxDiff(Object.values(d.outputs)[0]!.data as Float32Array, Object.values(wantM)[0]!) < 1e-5);
});

t.test('bad requests: a 4xx with a one-line JSON reason, and the server keeps serving', async (t) => {
  const { engine, tcp } = await start({ maxBodyMb: 1 });
  await engine.load(served(OCR_MODELS.cls.file, 'v1'));
  const ok = async (): Promise<void> => {
    const r = await infer(tcp, 'default', { x: clsX }, true);
    t.equal(r.json.model_version, 'v1', 'still serving');
  };
  const goodParts = binaryBody({ x: clsX });
  const good = { body: Buffer.concat(goodParts.body), headers: goodParts.headers };
  const header = (doc: unknown): { body: Buffer; headers: Record<string, string> } => {
    const h = Buffer.from(JSON.stringify(doc));
    const raw = Buffer.from(clsX.data.buffer, clsX.data.byteOffset, clsX.data.byteLength);
    return { body: Buffer.concat([h, raw]), headers: { 'inference-header-content-length': String(h.length) } };
  };
  const size = clsX.data.byteLength;
  const binCase = (doc: unknown): [Buffer, Record<string, string>] => {
    const b = header(doc);
    return [b.body, b.headers];
  };
  const cases: [string, number, RegExp, Buffer | string, Record<string, string>?][] = [
    [
      'wrong input name',
      400,
      /unknown input 'y'/,
      ...binCase({ inputs: [{ name: 'y', datatype: 'FP32', shape: [1, 3, 48, 192], parameters: { binary_data_size: size } }] }),
    ],
    [
      'wrong rank',
      400,
      /shape \[3,48,192\]; the model takes \[-1,3,-1,-1\]/,
      JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 48, 192], data: [1] }] }),
    ],
    [
      'a zero dimension',
      400,
      /shape \[0,3,48,192\]: every dimension must be at least 1/,
      JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [0, 3, 48, 192], data: [] }] }),
    ],
    [
      'wrong channels',
      400,
      /shape \[1,4,48,192\]/,
      JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4, 48, 192], data: [1] }] }),
    ],
    [
      'wrong dtype',
      400,
      /datatype "INT64"; the model takes FP32/,
      JSON.stringify({ inputs: [{ name: 'x', datatype: 'INT64', shape: [1, 3, 48, 192], data: [1] }] }),
    ],
    [
      'too few values',
      400,
      /has 2 values; shape \[1,3,1,1\] needs 3/,
      JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 1, 1], data: [1, 2] }] }),
    ],
    [
      'non-number data',
      400,
      /data\[1\] is not a number/,
      JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 1, 1], data: [1, 'a', 3] }] }),
    ],
    [
      'binary size not the shape',
      400,
      /binary_data_size 100 bytes/,
      ...binCase({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 48, 192], parameters: { binary_data_size: 100 } }] }),
    ],
    ['body short of the binary size', 400, /ends \d+ bytes short/, good.body.subarray(0, good.body.length - 8), good.headers],
    ['bytes after the inputs', 400, /bytes after the last binary input/, Buffer.concat([good.body, Buffer.alloc(4)]), good.headers],
    ['malformed JSON', 400, /malformed JSON/, '{"inputs": [ {"name": "x",'],
    ['garbage bytes', 400, /malformed JSON/, Buffer.from([0xff, 0x00, 0x13, 0x37, 0x80, 0x81])],
    ['garbage with a header length', 400, /does not fit/, Buffer.from('xx'), { 'inference-header-content-length': '999' }],
    ['bad header length', 400, /not a byte count/, good.body, { 'inference-header-content-length': 'twelve' }],
    ['no inputs', 400, /non-empty "inputs"/, '{"inputs": []}'],
    [
      'unknown output',
      400,
      /unknown output 'z'/,
      JSON.stringify({ ...JSON.parse(jsonBody({ x: clsX }).body.toString()), outputs: [{ name: 'z' }] }),
    ],
    ['unknown route', 404, /no route/, ''],
    ['pinned old version', 404, /version 'v0' is not served/, jsonBody({ x: clsX }).body],
  ];
  for (const [what, status, re, body, headers] of cases) {
    const path =
      what === 'unknown route'
        ? '/v2/models/default/explode'
        : what === 'pinned old version'
          ? '/v2/models/default/versions/v0/infer'
          : '/v2/models/default/infer';
    const r = await request(tcp, 'POST', path, body, headers ?? {});
    t.equal(r.status, status, `${what}: ${status}`);
    const text = r.body.toString();
    t.notOk(text.includes('\n'), `${what}: one line`);
    const err = (JSON.parse(text) as { error: string }).error;
    t.match(err, re, `${what}: ${err}`);
    await ok();
  }
  // wrong method
  t.equal((await request(tcp, 'GET', '/v2/models/default/infer')).status, 405);

  // over the limit by Content-Length: refused before the body is read
  const big = Buffer.alloc(3 << 20, 32);
  const r413 = await request(tcp, 'POST', '/v2/models/default/infer', big);
  t.equal(r413.status, 413);
  t.match((JSON.parse(r413.body.toString()) as { error: string }).error, /over the 1 MiB limit/);
  await ok();
  // over the limit while streaming (chunked: no Content-Length to refuse by)
  const streamed = await new Promise<number>((resolve, reject) => {
    const u = new URL(tcp.url!);
    const req = httpRequest({ host: u.hostname, port: u.port, method: 'POST', path: '/v2/models/default/infer' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    let sent = 0;
    const push = (): void => {
      while (sent < 3 << 20) {
        sent += 64 << 10;
        if (!req.write(Buffer.alloc(64 << 10, 32))) return void req.once('drain', push);
      }
      req.end();
    };
    push();
  });
  t.equal(streamed, 413, 'streamed body over the limit: 413');
  await ok();
});

t.test('a load that fails leaves the old version serving; swaps are announced on the SSE route', async (t) => {
  const { engine, server, tcp } = await start();
  await engine.load(served(OCR_MODELS.cls.file, 'good'));
  const events: string[] = [];
  const u = new URL(tcp.url!);
  const sse = httpRequest({ host: u.hostname, port: u.port, path: '/v2/edgefit/events' });
  const gotTwo = new Promise<void>((resolve) => {
    sse.on('response', (res) => {
      t.equal(res.headers['content-type'], 'text/event-stream');
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (c: string) => {
        buf += c;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const m = /^event: model\ndata: (.*)$/m.exec(ev);
          if (m) events.push(m[1]!);
          if (events.length === 2) resolve();
        }
      });
    });
  });
  sse.end();
  const garbage = join(dir, 'garbage.onnx');
  writeFileSync(garbage, 'not a model at all');
  await t.rejects(engine.load(served(garbage, 'broken')), /version broken did not load: onnxruntime refused the model/);
  t.equal(engine.model?.version, 'good', 'old version still current');
  t.equal((await infer(tcp, 'default', { x: clsX })).json.model_version, 'good');
  await t.rejects(engine.load(served(join(dir, 'missing.onnx'), 'missing')), /did not load/);
  const slow = new Engine(5);
  await t.rejects(
    slow.load(served(OCR_MODELS.cls.file, 'slow')),
    /version slow did not load: not ready within 5 ms/,
    'a load past its timeout fails',
  );
  t.notOk(slow.ready);
  await slow.close();
  await engine.load({ ...served(OCR_MODELS.cls.file, 'next'), level: 2, sha256: 'abc' });
  await gotTwo;
  sse.destroy();
  const [first, second] = events.map((e) => JSON.parse(e) as Record<string, unknown>);
  t.equal(first!.version, 'good', 'the current model on connect');
  t.same(second, { version: 'next', level: 2, label: 'label-next', sha256: 'abc', file: OCR_MODELS.cls.file }, 'the swap');
  const st = server.stats.take(0);
  t.ok(
    st.requests >= 1 && st.perVersion.some((v) => v.version === 'good' && v.runP50Ms > 0 && v.totalP50Ms >= v.runP50Ms),
    'stats window per version',
  );
});

t.test('tokens: every route but health needs the bearer token; no token off loopback is refused', async (t) => {
  t.throws(() => new ServeServer(new Engine(), { host: '0.0.0.0', port: 0, socket: null, token: null, maxBodyMb: 1 }), /needs a token/);
  const { engine, tcp } = await start({ token: 'sekrit-token-1234' });
  await engine.load(served(OCR_MODELS.cls.file, 'v1'));
  const anon: Target = { url: tcp.url };
  t.equal((await request(anon, 'GET', '/v2/health/live')).status, 200, 'health is open');
  t.equal((await request(anon, 'GET', '/v2/health/ready')).status, 200);
  for (const path of ['/v2', '/v2/models/default', '/v2/models/default/ready', '/v2/edgefit/events']) {
    const r = await request(anon, 'GET', path);
    t.equal(r.status, 401, `${path} without a token: 401`);
    t.match(r.body.toString(), /^\{"error":"this server needs Authorization: Bearer <token>"\}$/);
  }
  const wrong = await request({ url: tcp.url, token: 'nope' }, 'POST', '/v2/models/default/infer', jsonBody({ x: clsX }).body);
  t.equal(wrong.status, 401);
  t.match(wrong.body.toString(), /wrong/);
  t.equal((await infer(tcp, 'default', { x: clsX })).json.model_version, 'v1', 'with the token: served');
});
