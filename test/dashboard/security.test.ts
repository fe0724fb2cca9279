// Issue 20's dashboard attacks, done against the real thing (a real Mosquitto, simulated devices
// that apply what they are asked, the dashboard over HTTP): each is refused and no request
// reaches a device. Then the defences that make the rest possible: the generated token (0600,
// reused on restart), the Host allow-list, the CSRF token and a view-only dashboard's 403.
import t, { type Test } from 'tap';
import { connectAsync } from 'mqtt';
import { request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDashboard, VIEW_ONLY_REASON } from '../../src/dashboard/index.js';
import { HostPolicy, Csrf, loadOrCreateToken } from '../../src/dashboard/auth.js';
import { browserSkipReason, CHROMIUM, CHROMIUM_ARGS, login, operatorKey, startStack, until } from './support.js';

const stack = await startStack({ devices: 2, rate: 2, operator: true });
t.teardown(() => stack.stop());
const dash = stack.dash;
const base = dash.url.replace(/\/$/, '');
const port = dash.port;
const token = new URL(dash.loginUrl).searchParams.get('token')!;
const victim = 'sim-0002';
const budgetOf = (): number => stack.sim.get(victim)!.metricsPayload().budgets.latencyMs!;

// every request that reaches the broker for any device, as the devices would see it
const watcher = await connectAsync(stack.broker.url);
t.teardown(() => watcher.endAsync());
const published: string[] = [];
watcher.on('message', (topic) => published.push(topic));
await watcher.subscribeAsync('edgefit/+/request/+', { qos: 1 });
await until('both devices in the fleet', () => dash.fleet.has('sim-0001') && dash.fleet.has(victim));

/** A request with exactly these headers (fetch would replace Host): the status code. */
function raw(method: string, url: string, headers: Record<string, string>, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** POST set-budget {"latencyMs":1} (the issue's attack) with these headers; the status code. */
async function attack(headers: Record<string, string>, path = `/api/devices/${victim}/actions/set-budget`): Promise<Response> {
  return fetch(`${base}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: '{"latencyMs":1}' });
}

/** After a batch of attacks: nothing was published and the device's budget is what it was. */
async function noEffect(t: Test, before: number): Promise<void> {
  // a request would reach the watcher in milliseconds; wait well beyond that
  await new Promise((r) => setTimeout(r, 500));
  t.same(published, [], 'no request reached the broker');
  t.equal(budgetOf(), before, 'the device budget is unchanged');
}

t.test('a dashboard holding an operator key requires its token on loopback: generated, 0600, reused on restart', async (t) => {
  t.equal(dash.tokenSource, 'file');
  t.match(token, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  const file = join(stack.stateDir, 'token');
  t.equal(readFileSync(file, 'utf8').trim(), token);
  t.equal(statSync(file).mode & 0o777, 0o600, 'token file is 0600');
  t.same(loadOrCreateToken(stack.stateDir), { token, path: file, created: false }, 'a restart reads the same token');
  for (const p of ['/', '/api/fleet', '/api/stream', `/api/devices/${victim}`, '/api/session']) {
    t.equal((await fetch(base + p)).status, 401, `${p} without the token`);
  }
});

t.test("the issue's anonymous POST set-budget {latencyMs:1} is refused and reaches no device", async (t) => {
  const before = budgetOf();
  let r = await attack({});
  t.equal(r.status, 401, 'no credentials: 401');
  r = await attack({ Origin: base });
  t.equal(r.status, 401, 'same-origin header alone: 401');
  await noEffect(t, before);
});

t.test('cross-site POSTs carrying the cookie are refused: Origin null, foreign Origin, no CSRF token, forged CSRF', async (t) => {
  const s = await login(dash);
  const before = budgetOf();
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['Origin: null (sandboxed frame, file: page)', { Cookie: s.cookie, 'X-Edgefit-CSRF': s.csrf, Origin: 'null' }, /cross-origin/],
    ['foreign Origin', { Cookie: s.cookie, 'X-Edgefit-CSRF': s.csrf, Origin: 'http://evil.example' }, /cross-origin/],
    ['foreign Origin on our port', { Cookie: s.cookie, 'X-Edgefit-CSRF': s.csrf, Origin: `http://evil.example:${port}` }, /cross-origin/],
    ['foreign Referer, no Origin', { Cookie: s.cookie, 'X-Edgefit-CSRF': s.csrf, Referer: 'http://evil.example/x' }, /cross-origin/],
    ['no Origin, no Referer, cookie only', { Cookie: s.cookie, 'X-Edgefit-CSRF': s.csrf }, /without Origin/],
    ['our Origin, no CSRF token', { Cookie: s.cookie, Origin: base }, /CSRF/],
    ['our Origin, forged CSRF token', { Cookie: s.cookie, Origin: base, 'X-Edgefit-CSRF': 'AAAA.BBBB' }, /CSRF/],
    [
      'our Origin, a CSRF token minted under another key',
      { Cookie: s.cookie, Origin: base, 'X-Edgefit-CSRF': new Csrf('some-other-dashboard-token').issue() },
      /CSRF/,
    ],
  ];
  for (const [what, headers, msg] of cases) {
    const r = await attack(headers);
    t.equal(r.status, 403, what);
    t.match(await r.json(), { error: { code: 'FORBIDDEN', message: msg } }, `${what}: says why`);
  }
  await noEffect(t, before);
});

t.test('DNS rebinding: a foreign Host is refused (421) on every route, token or not', async (t) => {
  const s = await login(dash);
  const before = budgetOf();
  for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1.nip.io:${port}`, `localhost:${port + 1}`]) {
    t.equal(await raw('GET', `${base}/api/fleet`, { Host: host, Authorization: `Bearer ${token}` }), 421, `GET with Host ${host}`);
    const post = { Host: host, Cookie: s.cookie, 'X-Edgefit-CSRF': s.csrf, Origin: `http://${host}`, 'Content-Type': 'application/json' };
    t.equal(await raw('POST', `${base}/api/devices/${victim}/actions/set-budget`, post, '{"latencyMs":1}'), 421, `POST with Host ${host}`);
  }
  t.equal(await raw('GET', `${base}/healthz`, { Host: 'evil.example' }), 421, 'even /healthz');
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`]) {
    t.equal(await raw('GET', `${base}/api/fleet`, { Host: host, Authorization: `Bearer ${token}` }), 200, host);
  }
  await noEffect(t, before);
});

t.test('the real page and a script get through: cookie + Origin + CSRF, or the bearer token without Origin', async (t) => {
  const s = await login(dash);
  // the page carries its CSRF token in a meta tag
  const html = await (await fetch(`${base}/`, { headers: { Cookie: s.cookie } })).text();
  const csrf = /<meta name="edgefit-csrf" content="([^"]+)">/.exec(html)?.[1];
  t.ok(csrf, 'the page has its CSRF token');
  t.notMatch(html, /edgefit-actions-off/, 'actions are on');
  let r = await attack({ Cookie: s.cookie, Origin: base, 'X-Edgefit-CSRF': csrf! }, `/api/devices/${victim}/actions/set-budget`);
  t.equal(r.status, 202, 'the page');
  await until('the request to reach the device', () => published.length === 1);
  await until('the budget applied', () => budgetOf() === 1);
  r = await fetch(`${base}/api/devices/${victim}/actions/set-budget`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: '{"latencyMs":321}',
  });
  t.equal(r.status, 202, 'a script with the bearer token');
  await until('the budget applied', () => budgetOf() === 321);
  // the requests the dashboard sent are signed (the device would verify them)
  t.same(published, [`edgefit/${victim}/request/set-budget`, `edgefit/${victim}/request/set-budget`]);
  published.length = 0;
});

t.test('a dashboard without an operator key is view-only: actions answer 403 with the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-dash-view-'));
  const view = startDashboard({ broker: stack.broker.url, port: 0, stateDir: dir });
  await view.start();
  t.teardown(async () => {
    await view.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  t.equal(view.tokenSource, 'none', 'view-only on loopback may stay open');
  t.equal(view.viewOnly, true);
  await until('the fleet', () => view.fleet.has(victim));
  const vbase = view.url.replace(/\/$/, '');
  const before = budgetOf();
  const s = (await (await fetch(`${vbase}/api/session`)).json()) as { csrf: string; actions: boolean; reason: string };
  t.match(s, { actions: false, reason: VIEW_ONLY_REASON });
  const r = await fetch(`${vbase}/api/devices/${victim}/actions/set-budget`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: vbase, 'X-Edgefit-CSRF': s.csrf },
    body: '{"latencyMs":1}',
  });
  t.equal(r.status, 403);
  t.same(await r.json(), { error: { code: 'FORBIDDEN', message: 'this dashboard holds no operator key: start it with --operator-key' } });
  const html = await (await fetch(`${vbase}/`)).text();
  t.match(html, /<meta name="edgefit-actions-off" content="this dashboard holds no operator key/);
  // DNS rebinding against the open view-only dashboard: fleet data is not handed to another name
  t.equal(await raw('GET', `${vbase}/api/fleet`, { Host: `rebind.example:${view.port}` }), 421);
  await noEffect(t, before);

  const skip = browserSkipReason();
  if (skip) {
    t.comment(skip);
    return;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${view.url}#/d/${victim}`);
  await page.waitForSelector('#actions-off');
  t.equal(await page.textContent('#actions-off'), VIEW_ONLY_REASON, 'the page says why');
  t.equal(await page.isDisabled('#act-set-budget'), true, 'set-budget disabled');
  t.equal(await page.isDisabled('#act-fit'), true, 're-fit disabled');
  t.equal(await page.isDisabled('input[name=latencyMs]'), true, 'budget inputs disabled');
});

t.test('the Host allow-list: built-in names with our port, --allow-host names, Origins judged the same way', async (t) => {
  const p = new HostPolicy('127.0.0.1', ['dash.example', 'edge.lan:9000']);
  t.ok(p.allows('127.0.0.1:8080', 8080));
  t.ok(p.allows('localhost:8080', 8080));
  t.ok(p.allows('[::1]:8080', 8080));
  t.ok(p.allows('LOCALHOST:8080', 8080), 'case-insensitive');
  t.notOk(p.allows('localhost:8081', 8080), 'another port');
  t.notOk(p.allows('localhost', 8080), 'no port means 80');
  t.ok(p.allows('dash.example', 8080), 'an allowed name without port (reverse proxy)');
  t.ok(p.allows('dash.example:443', 8080));
  t.ok(p.allows('edge.lan:9000', 8080));
  t.notOk(p.allows('edge.lan:9001', 8080), 'name:port is exact');
  for (const h of [undefined, '', 'evil.example:8080', '127.0.0.1.evil.example:8080', 'localhost:8080@evil', '[::1', '127.0.0.1:8080:1'])
    t.notOk(p.allows(h, 8080), `refused: ${h}`);
  t.ok(p.allowsOrigin('http://127.0.0.1:8080', 8080));
  t.ok(p.allowsOrigin('https://dash.example', 8080));
  for (const o of ['null', 'http://evil.example', 'file://', 'chrome-extension://abc', 'http://localhost:8081', 'ftp://127.0.0.1:8080'])
    t.notOk(p.allowsOrigin(o, 8080), `origin refused: ${o}`);
  t.throws(() => new HostPolicy('127.0.0.1', ['bad host/x']), { code: 'USAGE', message: /bad allowed host/ });
  // a named listen address counts; a wildcard one admits this box's addresses
  t.ok(new HostPolicy('edge-7.local').allows('edge-7.local:8080', 8080));
  t.ok(new HostPolicy('0.0.0.0').allows('127.0.0.1:8080', 8080));
});

t.test('a dashboard with an allowed host name answers it, and an Origin of that name may act', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-dash-allow-'));
  const d = startDashboard({
    broker: stack.broker.url,
    port: 0,
    stateDir: dir,
    signingKey: operatorKey().signingKey,
    allowHosts: ['dash.example'],
  });
  await d.start();
  t.teardown(async () => {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await until('the fleet', () => d.fleet.has(victim));
  const s = await login(d);
  const b = d.url.replace(/\/$/, '');
  const headers = { Cookie: s.cookie, 'X-Edgefit-CSRF': s.csrf, 'Content-Type': 'application/json' };
  t.equal(await raw('GET', `${b}/api/fleet`, { ...headers, Host: 'dash.example' }), 200, 'Host dash.example');
  const post = { ...headers, Host: 'dash.example', Origin: 'https://dash.example' };
  t.equal(
    await raw('POST', `${b}/api/devices/${victim}/actions/ping`, post, '{}'),
    202,
    'a POST from https://dash.example (behind a TLS proxy)',
  );
  await until('the ping to reach the device', () => published.includes(`edgefit/${victim}/request/ping`));
  published.length = 0;
});
