// Triton's system shared-memory extension on a real server with real models (issue 19): inputs and
// outputs kept in /dev/shm give the same outputs as the binary body; every bad region, key or
// size gets a 4xx with a one-line reason and the server keeps serving; only local clients.
import t from 'tap';
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, rmSync, symlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { OCR_MODELS } from '../../devkit/paths.js';
import { closeClients, infer, request, ShmClient, type Target } from '../../devkit/serve-client.js';
import { imageInput } from '../../devkit/calib.js';
import { ROOT } from '../../devkit/paths.js';
import { join } from 'node:path';
import { Engine } from '../../src/serve/engine.js';
import { isLocal, ServeServer } from '../../src/serve/http.js';
import { SHM_DIR } from '../../src/serve/shm.js';
import { shmMap } from '../../src/serve/shm-map.js';

if (!existsSync(SHM_DIR)) {
  t.plan(0, `${SHM_DIR} is missing: no POSIX shared memory on this box`);
} else {
  t.teardown(closeClients);
  const tag = `edgefit-test-${process.pid}`;
  const made: string[] = [];
  t.teardown(() => {
    for (const f of made) rmSync(f, { force: true });
  });
  /** A file under /dev/shm of `bytes` bytes; its key. */
  const shmFile = (name: string, bytes: number): string => {
    const file = join(SHM_DIR, `${tag}-${name}`);
    const fd = openSync(file, 'w+', 0o600);
    ftruncateSync(fd, bytes);
    closeSync(fd);
    made.push(file);
    return `/${tag}-${name}`;
  };

  // every test below runs on both paths: regions mapped in the session worker (the addon), and
  // positioned reads and writes (EDGEFIT_SHM_MMAP=0, as on a box where the addon did not build)
  const modes: ('mmap' | 'pread')[] = shmMap() ? ['mmap', 'pread'] : ['pread'];
  for (const mode of modes)
    await t.test(`${mode} path`, async (t) => {
      if (mode === 'pread') process.env.EDGEFIT_SHM_MMAP = '0';
      t.teardown(() => void delete process.env.EDGEFIT_SHM_MMAP);
      const sockDir = mkdtempSync(join(tmpdir(), 'edgefit-shm-'));
      t.teardown(() => rmSync(sockDir, { recursive: true, force: true }));
      const engine = new Engine();
      const server = new ServeServer(engine, {
        host: '127.0.0.1',
        port: 0,
        socket: join(sockDir, 'serve.sock'),
        token: null,
        maxBodyMb: 16,
        name: 'cls',
      });
      const l = await server.listen();
      t.teardown(async () => {
        await server.close();
        await engine.close();
      });
      const tcp: Target = { url: l.url, token: null };
      const unix: Target = { socket: l.socket, token: null };
      await engine.load({
        file: OCR_MODELS.cls.file,
        version: 'v1',
        sha256: 'test',
        level: null,
        label: 'cls',
        threads: 2,
        shapes: { x: [1, 3, 48, 192] },
      });
      const x = imageInput(join(ROOT, 'test/fixtures/ocr/cls/0/page-01.png'), join(ROOT, 'test/fixtures/ocr/cls'));
      const OUT = 'softmax_0.tmp_0';
      const post = (path: string, body: unknown, to: Target = tcp) =>
        request(to, 'POST', path, JSON.stringify(body), { 'content-type': 'application/json' });
      const inferJson = (body: unknown, to: Target = tcp) => post('/v2/models/cls/infer', body, to);
      const reason = (r: { body: Buffer }): string => (JSON.parse(r.body.toString()) as { error: string }).error;

      t.test("inputs and outputs in shared memory give the binary body's outputs, over TCP and the Unix socket", async (t) => {
        const want = await infer(tcp, 'cls', { x });
        for (const to of [tcp, unix]) {
          const c = new ShmClient(to, 'cls', [{ name: 'x', dtype: 'float32', shape: x.shape }], [{ name: OUT, bytes: 8 }]);
          await c.open();
          const st = JSON.parse((await request(to, 'GET', '/v2/systemsharedmemory/status')).body.toString()) as {
            name: string;
            byte_size: number;
          }[];
          t.same(st.map((s) => s.name).sort(), [c.region('in'), c.region('out')].sort(), 'both regions listed');
          t.same(
            st.map((s) => (s as unknown as { access: string }).access),
            [mode, mode],
            `the server is on the ${mode} path`,
          );
          t.equal(c.path, mode === 'mmap' ? 'mmap' : 'file', 'and so is the client');
          const got = await c.infer({ x });
          t.same(
            Array.from(got.outputs[OUT]!.data as Float32Array),
            Array.from(want.outputs[OUT]!.data as Float32Array),
            'bit-identical outputs',
          );
          t.same((got.json.outputs[0] as { parameters?: unknown }).parameters, {
            shared_memory_region: c.region('out'),
            shared_memory_byte_size: 8,
          });
          await c.close();
          t.same(JSON.parse((await request(to, 'GET', '/v2/systemsharedmemory/status')).body.toString()), [], 'unregistered');
        }
        const v2 = JSON.parse((await request(tcp, 'GET', '/v2')).body.toString()) as { extensions: string[] };
        t.ok(v2.extensions.includes('system_shared_memory'));
      });

      t.test('a region file truncated after registration: 400 on the next request, not a crash (SIGBUS on a mapping)', async (t) => {
        const bytes = x.data.byteLength;
        const key = shmFile(`trunc-${mode}`, bytes + 8);
        const file = join(SHM_DIR, key.slice(1));
        const reg = (name: string, offset: number, size: number) =>
          post(`/v2/systemsharedmemory/region/${name}/register`, { key, offset, byte_size: size });
        t.equal((await reg('t-in', 0, bytes)).status, 200);
        t.equal((await reg('t-out', bytes, 8)).status, 200);
        const fd = openSync(file, 'r+');
        writeSync(fd, new Uint8Array(x.data.buffer, x.data.byteOffset, bytes), 0, bytes, 0);
        const body = {
          inputs: [
            { name: 'x', datatype: 'FP32', shape: x.shape, parameters: { shared_memory_region: 't-in', shared_memory_byte_size: bytes } },
          ],
          outputs: [{ name: OUT, parameters: { shared_memory_region: 't-out', shared_memory_byte_size: 8 } }],
        };
        t.equal((await inferJson(body)).status, 200, 'served once (and mapped, on the mmap path)');
        // the output's range is cut off: the input still reads, the output cannot be written
        ftruncateSync(fd, bytes + 4);
        let r = await inferJson(body);
        t.equal(r.status, 400, 'output region truncated: 400');
        t.match(reason(r), /region 't-out': its file is shorter than registered/);
        // and the input's
        ftruncateSync(fd, 100);
        r = await inferJson(body);
        t.equal(r.status, 400, 'input region truncated: 400');
        // the pread path finds it by reading short
        t.match(reason(r), /region 't-in': its file (is shorter than registered|ended \d+ bytes early)/);
        closeSync(fd);
        t.equal((await infer(tcp, 'cls', { x })).outputs[OUT]!.data.length, 2, 'the server keeps serving');
        t.equal((await post('/v2/systemsharedmemory/unregister', {})).status, 200);
      });

      t.test('bad regions, keys and sizes: 4xx with one line, and the server keeps serving', async (t) => {
        const bytes = x.data.byteLength;
        const key = shmFile('in', bytes + 64);
        const reg = (name: string, body: unknown) => post(`/v2/systemsharedmemory/region/${name}/register`, body);
        const cases: [string, Promise<{ status: number; body: Buffer }>, RegExp][] = [
          ['a key with a slash in it', reg('r1', { key: '/../etc/passwd', byte_size: 10 }), /must name a file directly under/],
          ['a key that does not exist', reg('r1', { key: `/${tag}-none`, byte_size: 10 }), /no such file/],
          ['a range past the file', reg('r1', { key, offset: 64, byte_size: bytes + 1 }), /past the end/],
          ['a zero size', reg('r1', { key, byte_size: 0 }), /byte_size must be a positive/],
          ['a bad region name', reg('a%20b', { key, byte_size: 10 }), /region name/],
          ['a name that is not percent-encoding', reg('a%E0', { key, byte_size: 10 }), /not valid percent-encoding/],
          ['not JSON', post('/v2/systemsharedmemory/region/r1/register', 'nope'), /malformed JSON|JSON object/],
          ['unregister an unknown region', post('/v2/systemsharedmemory/region/nope/unregister', {}), /no region 'nope'/],
        ];
        const link = join(SHM_DIR, `${tag}-link-${mode}`);
        symlinkSync('/etc/hostname', link);
        made.push(link);
        cases.push(['a symbolic link', reg('r1', { key: `/${tag}-link-${mode}`, byte_size: 4 }), /symbolic link/]);
        for (const [what, p, re] of cases) {
          const r = await p;
          t.equal(r.status, 400, `${what}: 400`);
          t.match(reason(r), re, what);
          t.notMatch(reason(r), /\n/, 'one line');
        }
        t.equal((await request(tcp, 'GET', '/v2/systemsharedmemory/region/nope/status')).status, 404);
        t.equal((await request(tcp, 'GET', '/v2/systemsharedmemory/region/x/register')).status, 405, 'register is a POST');

        // a good region, then requests that misuse it
        t.equal((await reg('in', { key, byte_size: bytes })).status, 200);
        t.equal((await reg('in', { key, byte_size: bytes })).status, 400, 'registered twice');
        const outKey = shmFile('out', 4);
        t.equal((await reg('small', { key: outKey, byte_size: 4 })).status, 200);
        const input = (p: Record<string, unknown>) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape: x.shape, parameters: p }] });
        const bad: [string, unknown, RegExp][] = [
          ['an unknown region', input({ shared_memory_region: 'nope', shared_memory_byte_size: bytes }), /no shared-memory region "nope"/],
          ["a size that is not the shape's", input({ shared_memory_region: 'in', shared_memory_byte_size: bytes - 4 }), /needs \d+/],
          [
            'a span past the region',
            input({ shared_memory_region: 'in', shared_memory_byte_size: bytes, shared_memory_offset: 4 }),
            /do not fit/,
          ],
          [
            "a datatype that is not the model's",
            {
              inputs: [
                {
                  name: 'x',
                  datatype: 'INT32',
                  shape: x.shape,
                  parameters: { shared_memory_region: 'in', shared_memory_byte_size: bytes },
                },
              ],
            },
            /datatype "INT32"; the model takes FP32/,
          ],
          [
            "a shape that is not the model's",
            {
              inputs: [
                {
                  name: 'x',
                  datatype: 'FP32',
                  shape: [1, 3, 48],
                  parameters: { shared_memory_region: 'in', shared_memory_byte_size: bytes },
                },
              ],
            },
            /has shape \[1,3,48\]/,
          ],
          [
            'a negative offset',
            input({ shared_memory_region: 'in', shared_memory_byte_size: bytes, shared_memory_offset: -1 }),
            /offset must be/,
          ],
          [
            'an output region too small for the output',
            {
              ...input({ shared_memory_region: 'in', shared_memory_byte_size: bytes }),
              outputs: [{ name: OUT, parameters: { shared_memory_region: 'small', shared_memory_byte_size: 4 } }],
            },
            /is 8 bytes; its shared_memory_byte_size is 4/,
          ],
        ];
        for (const [what, body, re] of bad) {
          const r = await inferJson(body);
          t.equal(r.status, 400, `${what}: 400`);
          t.match(reason(r), re, what);
        }
        // an input past the body limit (16 MiB here) is refused before its buffer is allocated
        const bigBytes = 3 * 48 * 4 * 29128;
        t.equal((await reg('big', { key: shmFile('big', bigBytes), byte_size: bigBytes })).status, 200);
        const big = await inferJson({
          inputs: [
            {
              name: 'x',
              datatype: 'FP32',
              shape: [1, 3, 48, 29128],
              parameters: { shared_memory_region: 'big', shared_memory_byte_size: bigBytes },
            },
          ],
        });
        t.equal(big.status, 413, 'an input over the body limit: 413');
        t.match(reason(big), /over the 16 MiB limit/);
        // the regions' sizes added up are bounded (a sparse file: no memory taken)
        const huge = 1.5 * 2 ** 30;
        const hugeKey = shmFile('huge', 2 * huge);
        t.equal((await reg('huge1', { key: hugeKey, byte_size: huge })).status, 200);
        const over = await reg('huge2', { key: hugeKey, offset: huge, byte_size: huge });
        t.equal(over.status, 400, 'past the total: 400');
        t.match(reason(over), /would take the registered regions past/);
        // still serving, binary and from the region
        t.equal((await infer(tcp, 'cls', { x })).outputs[OUT]!.data.length, 2, 'the server keeps serving');
        t.equal((await post('/v2/systemsharedmemory/unregister', {})).status, 200, 'unregister all');
        t.same(JSON.parse((await request(tcp, 'GET', '/v2/systemsharedmemory/status')).body.toString()), []);
      });
    });

  t.test('only clients on this box: loopback and the Unix socket, not the network', async (t) => {
    const fake = (remoteAddress: string | undefined) => ({ socket: { remoteAddress } }) as Parameters<typeof isLocal>[0];
    t.ok(isLocal(fake(undefined)), 'Unix socket');
    t.ok(isLocal(fake('127.0.0.1')));
    t.ok(isLocal(fake('::ffff:127.0.0.1')));
    t.ok(isLocal(fake('::1')));
    t.notOk(isLocal(fake('10.1.2.3')));
    t.notOk(isLocal(fake('::ffff:192.168.1.9')));
  });
}
