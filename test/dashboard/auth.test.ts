// Access control and input validation at the dashboard's HTTP edge.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { authorize, checkListenPolicy, isLoopbackHost, COOKIE } from '../../src/dashboard/auth.js';
import { validateAction } from '../../src/dashboard/validate.js';
import { CLI, runCli } from '../../devkit/paths.js';
import { startBroker } from '../../devkit/broker.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TOKEN = 'test-token-0123456789abcdef';

t.test('listen policy: loopback may run open, anything else needs a long token', async (t) => {
  for (const h of ['127.0.0.1', 'localhost', '::1', '127.8.0.1']) t.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) t.notOk(isLoopbackHost(h), h);
  t.doesNotThrow(() => checkListenPolicy('127.0.0.1', undefined));
  t.throws(() => checkListenPolicy('0.0.0.0', undefined), { code: 'USAGE', message: /without a token/, remedy: { option: 'token' } });
  t.throws(() => checkListenPolicy('0.0.0.0', 'short'), { code: 'USAGE', message: /at least 16/ });
  t.doesNotThrow(() => checkListenPolicy('0.0.0.0', TOKEN));
});

t.test('the CLI refuses to listen beyond localhost without a token: one line, exit 2', async (t) => {
  const r = await runCli(['dashboard', '--host', '0.0.0.0', '--port', '0', '--broker', 'mqtt://127.0.0.1:1'], { timeoutMs: 30_000 });
  t.equal(r.code, 2);
  t.match(r.stderr, /^edgefit: dashboard refuses to listen on 0\.0\.0\.0 without a token .*: give --token/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack without --verbose');
});

t.test('token: bearer, ?token= traded for an HttpOnly cookie, cookie; everything else 401', async (t) => {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x.invalid');
    if (authorize(req, res, url, TOKEN)) {
      res.writeHead(200);
      res.end('in');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const get = (path: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(base + path, { headers, redirect: 'manual' });

  t.equal((await get('/api/fleet')).status, 401, 'no token');
  t.equal((await get('/api/fleet', { Authorization: 'Bearer wrong-token-0123456789' })).status, 401, 'wrong bearer');
  t.equal((await get('/api/fleet', { Authorization: `Bearer ${TOKEN}` })).status, 200, 'bearer');
  t.equal((await get('/?token=nope')).status, 401, 'wrong query token');
  const r = await get(`/?token=${TOKEN}&x=1`);
  t.equal(r.status, 303);
  t.equal(r.headers.get('location'), '/?x=1', 'token stripped from the URL');
  const cookie = r.headers.get('set-cookie') ?? '';
  t.match(cookie, new RegExp(`^${COOKIE}=`));
  t.match(cookie, /HttpOnly/);
  t.match(cookie, /SameSite=Strict/);
  t.equal((await get('/', { Cookie: cookie.split(';')[0]! })).status, 200, 'cookie');
  t.equal((await get('/', { Cookie: `${COOKIE}=forged` })).status, 401, 'forged cookie');
});

t.test("action bodies are checked with the agent's argument schemas before they become MQTT requests", async (t) => {
  t.same(validateAction('set-budget', { latencyMs: 120, minFidelity: 0.98 }), {
    verb: 'set-budget',
    args: { latencyMs: 120, minFidelity: 0.98 },
  });
  t.same(
    validateAction('set-budget', { latencyMs: 120, ramMb: '' }),
    { verb: 'set-budget', args: { latencyMs: 120 } },
    'an empty field leaves that budget alone',
  );
  t.same(validateAction('ping', {}), { verb: 'ping', args: {} });
  t.same(validateAction('rollback', undefined), { verb: 'rollback', args: {} });
  t.throws(() => validateAction('format-disk', {}), { code: 'USAGE', message: /unknown action/ });
  t.throws(
    () => validateAction('deploy', { candidateId: 'x' }),
    { code: 'USAGE', message: /unknown action/ },
    'deploy is not offered from the browser',
  );
  t.throws(() => validateAction('set-budget', {}), { code: 'USAGE', message: /fewer than 1/ });
  t.throws(() => validateAction('set-budget', { latencyMs: -1 }), { code: 'USAGE', message: /latencyMs/ });
  t.throws(() => validateAction('set-budget', { latencyMs: '100' }), { code: 'USAGE', message: /latencyMs must be number/ });
  t.throws(() => validateAction('set-budget', { minFidelity: 1.5 }), { code: 'USAGE', message: /minFidelity/ });
  t.throws(
    () => validateAction('set-budget', { latencyMs: 100, latencyFactor: 2 }),
    { code: 'USAGE' },
    'absolute and relative latency at once',
  );
  t.throws(() => validateAction('set-budget', { latencyMs: 100, model: '/etc/passwd' }), {
    code: 'USAGE',
    message: /additional properties 'model'/,
  });
  t.throws(() => validateAction('set-budget', [1]), { code: 'USAGE' });
  t.throws(() => validateAction('rollback', { path: '/tmp/x.onnx' }), { code: 'USAGE', message: /additional properties/ });
});

t.test('bad --admit patterns and --allow-host names are one-line usage errors (exit 2)', async (t) => {
  const base = ['dashboard', '--port', '0', '--broker', 'mqtt://127.0.0.1:1'];
  let r = await runCli([...base, '--admit', 'pi-*,pi-[0-9]'], { timeoutMs: 30_000 });
  t.equal(r.code, 2);
  t.match(r.stderr, /^edgefit: bad admit pattern 'pi-\[0-9\]'/);
  r = await runCli([...base, '--allow-host', 'dash.example/x'], { timeoutMs: 30_000 });
  t.equal(r.code, 2);
  t.match(r.stderr, /^edgefit: bad allowed host 'dash\.example\/x'/);
});

t.test('edgefit dashboard holding a key prints its login URL once; the token file is 0600 and reused', async (t) => {
  const broker = await startBroker();
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-dash-cli-'));
  t.teardown(async () => {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  /** Start the CLI until its URL line, then stop it; the line. */
  const run = async (): Promise<string> => {
    const c = spawn(process.execPath, [CLI, 'dashboard', '--broker', broker.url, '--port', '0', '--state-dir', dir], {
      env: { ...process.env, EDGEFIT_COMMAND_SECRET: 'legacy-hmac-secret-for-the-test' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const end = Date.now() + 30_000;
    while (!out.includes('\n') && c.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    c.kill('SIGTERM');
    await new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)));
    return out;
  };
  const out = await run();
  t.match(
    out,
    /^edgefit dashboard: http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43} \(broker mqtt:\/\/127\.0\.0\.1:\d+, prefix edgefit; commands signed with the LEGACY shared secret\)\n$/,
  );
  const token = /\?token=([\w-]+)/.exec(out)![1]!;
  t.equal(readFileSync(join(dir, 'token'), 'utf8').trim(), token);
  t.equal(statSync(join(dir, 'token')).mode & 0o777, 0o600);
  t.equal(/\?token=([\w-]+)/.exec(await run())?.[1], token, 'a restart prints the same URL');
});
