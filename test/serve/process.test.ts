// The forked serve process as the agent drives it (ServeProcess: start, load resolved or rejected
// by txn, stats events, stop), and `edgefit serve` through the real CLI (listens, serves, stops
// cleanly on SIGTERM; refuses a public host without a token).
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, OCR_MODELS, ROOT, runCli } from '../../devkit/paths.js';
import { closeClients, infer, request } from '../../devkit/serve-client.js';
import { imageInput } from '../../devkit/calib.js';
import { ServeProcess } from '../../src/serve/process.js';
import type { ServeStats } from '../../src/serve/types.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-serveproc-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
t.teardown(closeClients);

const clsDir = join(ROOT, 'test/fixtures/ocr/cls');
const clsX = imageInput(join(clsDir, '0/page-01.png'), clsDir);

t.test('ServeProcess: listening, load and load-failed by txn, stats, stop', async (t) => {
  const sp = new ServeProcess();
  const sock = join(dir, 'p.sock');
  const where = await sp.start({ host: '127.0.0.1', port: 0, socket: sock, token: null, maxBodyMb: 8, name: 'cls', statsEveryS: 0.3 });
  t.match(where.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal(where.socket, sock);
  t.equal((await request({ url: where.url }, 'GET', '/v2/health/ready')).status, 503, 'nothing loaded yet');
  const model = {
    file: OCR_MODELS.cls.file,
    version: 'p1',
    sha256: 'h',
    level: 0,
    label: 'fp32',
    threads: 1,
    shapes: { x: [1, 3, 48, 192] },
  };
  const garbage = join(dir, 'bad.onnx');
  writeFileSync(garbage, 'nope');
  // two loads in flight at once: each promise gets its own answer
  const [ok, bad] = await Promise.allSettled([sp.load(model), sp.load({ ...model, file: garbage, version: 'p2' })]);
  t.equal(ok.status, 'fulfilled');
  if (ok.status === 'fulfilled') {
    t.equal(ok.value.version, 'p1');
    t.ok(ok.value.loadMs > 0 && ok.value.rssMb > 0);
  }
  t.equal(sp.current?.version, 'p1', 'current: the version last loaded, not the one that failed');
  t.equal(bad.status, 'rejected');
  if (bad.status === 'rejected') t.match(String(bad.reason), /version p2 did not load/);
  const stats = new Promise<ServeStats>((resolve) => sp.once('stats', resolve));
  for (let i = 0; i < 3; i++)
    t.equal((await infer({ socket: sock }, 'cls', { x: clsX })).json.model_version, 'p1', 'served over the socket');
  await request({ url: where.url }, 'POST', '/v2/models/cls/infer', '{bad');
  const s = await stats;
  t.ok(s.requests >= 1, `stats after requests: ${JSON.stringify(s)}`);
  t.ok(s.perVersion[0]?.version === 'p1' && s.perVersion[0].level === 0 && s.perVersion[0].runP50Ms > 0);
  const exited = new Promise((resolve) => sp.once('exit', resolve));
  await sp.stop();
  await exited;
  t.notOk(sp.running);
  t.equal(sp.current, null);
  await t.rejects(request({ url: where.url }, 'GET', '/v2/health/live'), 'no longer listening');
  await t.rejects(sp.load(model), /not running/);
});

t.test('ServeProcess: a public host without a token is refused at start', async (t) => {
  const sp = new ServeProcess();
  await t.rejects(sp.start({ host: '0.0.0.0', port: 0, socket: null, token: null, maxBodyMb: 8 }), /needs a token/);
});

t.test('edgefit serve: prints where it listens, serves, stops on SIGTERM', async (t) => {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', OCR_MODELS.cls.file, '--port', '0', '--socket', join(dir, 'cli.sock'), '--shape', 'x=1x3x48x192'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /at (http:\/\/127\.0\.0\.1:\d+) and /.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', () => reject(new Error(`exited early: ${out} ${err}`)));
  });
  t.match(out, /serving ch_ppocr_mobile_v2\.0_cls_infer\.onnx as 'default' version [0-9a-f]{12}/);
  const r = await infer({ url }, 'default', { x: clsX });
  t.equal(r.json.parameters.label, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
  t.equal(code, 0, err);
  t.match(out, /stopped\n$/);
});

t.test('edgefit serve: bad flags are one clear line', async (t) => {
  const pub = await runCli(['serve', OCR_MODELS.cls.file, '--host', '0.0.0.0', '--port', '0']);
  t.equal(pub.code, 2);
  t.match(pub.stderr, /--host 0\.0\.0\.0 is not loopback: give --token-file too/);
  t.equal(pub.stderr.trim().split('\n').length, 1, pub.stderr);
  const missing = await runCli(['serve', join(dir, 'none.onnx')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /no model file/);
  const tok = join(dir, 'short-token');
  writeFileSync(tok, 'abc\n');
  const short = await runCli(['serve', OCR_MODELS.cls.file, '--token-file', tok]);
  t.equal(short.code, 2);
  t.match(short.stderr, /shorter than 16 characters/);
});

t.test('stop() on a serve process that was killed returns, and raises nothing', async (t) => {
  // the agent stops a serve process that failed or died (the start after a kill -9); a send into
  // its closed pipe must neither throw nor leave stop() waiting
  for (let i = 0; i < 5; i++) {
    const sp = new ServeProcess();
    await sp.start({ host: '127.0.0.1', port: 0, socket: null, token: null, maxBodyMb: 8, statsEveryS: 1 });
    const child = (sp as unknown as { child: import('node:child_process').ChildProcess }).child;
    child.kill('SIGKILL');
    await sp.stop(2000);
    t.notOk(sp.running, `round ${i}: ended`);
  }
});
