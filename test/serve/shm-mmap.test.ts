// Mapped shared memory (issue 19): the native/shm-map addon is built and behaves (a CI whose build
// broke fails here, not silently on the pread path); PP-OCRv4 det's outputs are bit-identical
// through a binary body, pread shared memory and mapped shared memory; the session worker's
// mappings go when a region is unregistered (also while a request still held it), cleared, or
// its worker retired by a swap (/proc/self/maps: the server runs in this process); and the Python
// example (examples/shm-client.py, the standard library's mmap) gets the same output.
import t from 'tap';
import { execFile } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { OCR_MODELS, ROOT } from '../../devkit/paths.js';
import { closeClients, infer, request, ShmClient, type Target } from '../../devkit/serve-client.js';
import { Engine } from '../../src/serve/engine.js';
import { ServeServer } from '../../src/serve/http.js';
import { SHM_DIR } from '../../src/serve/shm.js';
import { shmMap, shmMapError, SHM_MAP_ADDON } from '../../src/serve/shm-map.js';
import type { NdArray } from '../../src/data/ndarray.js';
import { readNpy } from '../../src/data/npy.js';
import { capturedSamples } from '../../src/serve/capture.js';

const addon = shmMap();
/** Mappings of `file` in this process (the server's workers are threads of it). */
const mapsOf = (file: string): number =>
  readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.endsWith(` ${file}`)).length;
const until = async (ok: () => boolean, ms = 3000): Promise<boolean> => {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (ok()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return ok();
};

if (!addon || !existsSync(SHM_DIR)) {
  t.comment('no addon or no /dev/shm: the mapped-path tests are skipped');
} else {
  t.teardown(closeClients);
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-shm-mmap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  /** A server in this process with det loaded; `pread`: started with EDGEFIT_SHM_MMAP=0. */
  const start = async (name: string, pread: boolean, capture: { dir: string; every: number; maxMb: number } | null = null) => {
    if (pread) process.env.EDGEFIT_SHM_MMAP = '0';
    const engine = new Engine();
    const server = new ServeServer(engine, {
      host: '127.0.0.1',
      port: 0,
      socket: join(dir, `${name}.sock`),
      token: null,
      maxBodyMb: 16,
      name: 'det',
      capture,
    });
    delete process.env.EDGEFIT_SHM_MMAP;
    const l = await server.listen();
    t.teardown(async () => {
      await server.close();
      await engine.close();
    });
    const det = (version: string) => ({
      file: OCR_MODELS.det.file,
      version,
      sha256: version,
      level: null,
      label: 'fp32',
      threads: 2,
      shapes: { x: [1, 3, 640, 640] },
    });
    await engine.load(det('v1'));
    return { engine, server, det, tcp: { url: l.url } as Target, unix: { socket: l.socket } as Target };
  };
  const mm = await start('mmap', false);
  const pr = await start('pread', true);
  // a fixed, varied input (not a real page: bit-identity is the point)
  const data = new Float32Array(3 * 640 * 640);
  for (let i = 0; i < data.length; i++) data[i] = (((i * 2654435761) >>> 0) % 2001) / 1000 - 1;
  const x: NdArray = { dtype: 'float32', shape: [1, 3, 640, 640], data };
  const OUT = mm.engine.meta!.outputs[0]!.name;
  const OUT_BYTES = 640 * 640 * 4;
  const bytesOf = (a: NdArray): Buffer => Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const client = (to: Target, mmap: boolean) =>
    new ShmClient(to, 'det', [{ name: 'x', dtype: 'float32', shape: x.shape }], [{ name: OUT, bytes: OUT_BYTES }], undefined, mmap);
  const want = bytesOf((await infer(mm.tcp, 'det', { x })).outputs[OUT]!);

  t.test('det: bit-identical outputs through a binary body, pread shared memory and mapped shared memory', async (t) => {
    t.equal(want.length, OUT_BYTES);
    t.ok(bytesOf((await infer(pr.unix, 'det', { x })).outputs[OUT]!).equals(want), 'binary body, the other server');
    for (const [what, c, access] of [
      ['pread server, file client', client(pr.tcp, false), 'pread'],
      ['mmap server, file client', client(mm.unix, false), 'mmap'],
      ['mmap server, mmap client', client(mm.tcp, true), 'mmap'],
    ] as const) {
      await c.open();
      const st = JSON.parse((await request(mm.tcp, 'GET', '/v2/systemsharedmemory/status')).body.toString()) as { access: string }[];
      if (access === 'mmap') t.ok(st.length > 0 && st.every((s) => s.access === 'mmap'), `${what}: the server maps`);
      for (let i = 0; i < 2; i++)
        t.ok(bytesOf((await c.infer({ x })).outputs[OUT]!).equals(want), `${what}, request ${i + 1}: bit-identical`);
      await c.close();
    }
    // an input filled in place in the client's mapping: nothing to copy
    const c = client(mm.unix, true);
    await c.open();
    (c.inputView('x') as Float32Array).set(data);
    t.ok(bytesOf((await c.infer({ x: { ...x, data: c.inputView('x') } })).outputs[OUT]!).equals(want), 'input filled in place');
    await c.close();
  });

  t.test("the worker's mapping goes on unregister, on clear and with its worker on a swap", async (t) => {
    // a file client: the only mappings of the file are the server's
    const c = client(mm.unix, false);
    await c.open();
    t.teardown(() => c.close());
    t.equal(mapsOf(c.file), 0, 'registered, not yet mapped');
    await c.infer({ x });
    t.equal(mapsOf(c.file), 2, 'mapped by the worker: its input and its output region');
    t.equal((await request(mm.unix, 'POST', `/v2/systemsharedmemory/region/${c.region('in')}/unregister`)).status, 200);
    t.ok(await until(() => mapsOf(c.file) === 1), 'the input region unmapped on unregister');
    t.equal((await request(mm.unix, 'POST', '/v2/systemsharedmemory/unregister')).status, 200);
    t.ok(await until(() => mapsOf(c.file) === 0), 'the output region unmapped on clear');
    const c2 = client(mm.unix, false);
    await c2.open();
    t.teardown(() => c2.close());
    await c2.infer({ x });
    t.equal(mapsOf(c2.file), 2);
    await mm.engine.load(mm.det('v2'));
    t.ok(await until(() => mapsOf(c2.file) === 0), 'a swap retires the old worker, and its mappings with it (the new one maps on demand)');
    t.ok(bytesOf((await c2.infer({ x })).outputs[OUT]!).equals(want), 'the new version serves the regions');
    t.equal(mapsOf(c2.file), 2);
  });

  t.test('a region unregistered while a request naming it waits: the request is served, then the mapping goes', async (t) => {
    const c = client(mm.unix, false);
    await c.open();
    t.teardown(() => c.close());
    // one request runs det, the shared-memory one waits behind it (held), then both regions go
    const first = infer(mm.tcp, 'det', { x });
    t.ok(await until(() => mm.engine.inFlight === 1));
    const held = c.infer({ x });
    t.ok(await until(() => mm.engine.inFlight === 2), 'the shared-memory request is queued');
    t.equal((await request(mm.tcp, 'POST', '/v2/systemsharedmemory/unregister')).status, 200, 'unregistered at once');
    t.same(JSON.parse((await request(mm.tcp, 'GET', '/v2/systemsharedmemory/status')).body.toString()), [], 'the names are free');
    await first;
    t.ok(bytesOf((await held).outputs[OUT]!).equals(want), 'the held request is served from its regions');
    t.ok(await until(() => mapsOf(c.file) === 0), 'then the worker unmaps them');
  });

  t.test('with input capture on, mapped inputs are read so the capture ring gets them (outputs still mapped)', async (t) => {
    const cdir = join(dir, 'capture');
    const cap = await start('capture', false, { dir: cdir, every: 1, maxMb: 64 });
    const c = client(cap.unix, false);
    await c.open();
    t.teardown(() => c.close());
    t.ok(bytesOf((await c.infer({ x })).outputs[OUT]!).equals(want), 'served');
    await cap.server.capture!.idle();
    const files = capturedSamples(cdir);
    t.equal(files.length, 1, 'one sample captured');
    t.ok(bytesOf(readNpy(join(cdir, files[0]!.name))).equals(bytesOf(x)), "it is the request's input");
    t.equal(mapsOf(c.file), 1, 'only the output region is mapped');
  });

  const python = await promisify(execFile)('python3', ['--version']).then(
    () => true,
    () => false,
  );
  t.test(
    'examples/shm-client.py (Python, the standard mmap module) gets the binary body output',
    { skip: !python && 'no python3' },
    async (t) => {
      const input = join(dir, 'x.f32');
      const saved = join(dir, 'y.f32');
      writeFileSync(input, bytesOf(x));
      for (const args of [
        ['--url', mm.tcp.url!],
        ['--socket', mm.unix.socket!],
      ]) {
        const { stdout } = await promisify(execFile)('python3', [
          join(ROOT, 'examples/shm-client.py'),
          ...args,
          '--model',
          'det',
          '--input',
          input,
          '--shape',
          '1,3,640,640',
          '--output-bytes',
          String(OUT_BYTES),
          '--save',
          saved,
        ]);
        const r = JSON.parse(stdout) as { version: string; shape: number[]; bytes: number };
        t.same(r.shape, [1, 1, 640, 640], `${args[0]}: the output's shape`);
        t.equal(r.bytes, OUT_BYTES);
        t.ok(readFileSync(saved).equals(want), `${args[0]}: bit-identical to the binary body`);
      }
      t.same(JSON.parse((await request(mm.tcp, 'GET', '/v2/systemsharedmemory/status')).body.toString()), [], 'it unregistered');
    },
  );
}

// after the servers' setup above: a test queued before top-level awaits lets tap end the root early
t.test('the shm-map addon is built and loads', async (t) => {
  t.ok(addon, `${SHM_MAP_ADDON} loads (${shmMapError ?? 'no error'}); npm ci builds it (scripts/build-native.mjs)`);
  if (!addon || !existsSync(SHM_DIR)) return;
  const file = join(SHM_DIR, `edgefit-addon-test-${process.pid}`);
  t.teardown(() => rmSync(file, { force: true }));
  const fd = openSync(file, 'w+', 0o600);
  ftruncateSync(fd, 3 * 4096);
  // an offset inside a page: the buffer starts exactly there, the mapping under it is page-aligned
  const ab = addon.map(fd, 5000, 100, true);
  t.equal(ab.byteLength, 100);
  new Uint8Array(ab).set([1, 2, 3], 0);
  t.same([...readFileSync(file).subarray(5000, 5003)], [1, 2, 3], 'writes land in the file at the offset');
  t.equal(mapsOf(file), 1, 'listed in /proc/self/maps');
  const view = new Uint8Array(ab);
  addon.unmap(ab);
  t.equal(ab.byteLength, 0, 'unmap detaches the buffer');
  t.equal(view.length, 0, 'and every view of it: nothing can touch the unmapped pages');
  t.doesNotThrow(() => addon.unmap(ab), 'a second unmap does nothing');
  t.equal(mapsOf(file), 0, 'gone from /proc/self/maps');
  const ro = openSync(file, 'r');
  t.throws(() => addon.map(ro, 0, 10, true), { code: 'EACCES' }, 'a writable mapping of a read-only descriptor: EACCES');
  t.equal(new Uint8Array(addon.map(ro, 5000, 3, false))[2], 3, 'a read-only mapping of it reads');
  closeSync(ro);
  closeSync(fd);
  t.throws(() => addon.map(fd, 0, 10, true), { code: 'EBADF' }, 'a closed descriptor: EBADF');
  const dir = openSync(SHM_DIR, 'r');
  t.throws(() => addon.map(dir, 0, 10, false), { code: 'ENODEV' }, 'a directory: ENODEV');
  closeSync(dir);
  t.throws(() => addon.map(0, -1, 10, true), TypeError, 'a negative offset is refused before mmap');
  t.throws(() => addon.map(0, 0, 0, true), TypeError, 'so is a zero length');
  t.throws(() => addon.unmap(new ArrayBuffer(8)), TypeError, 'unmap takes only what map gave');
});
