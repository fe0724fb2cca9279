// The agent's serve config (issue 19): defaults (on, 127.0.0.1:8551, <state>/serve.sock, capture
// off), EDGEFIT_SERVE* overrides, a public host refused without a token, the options the serve
// process gets (socket under the state folder, token read from its file), and the CLI flags.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../../devkit/paths.js';
import { serveOptions } from '../../src/agent/agent.js';
import { DEFAULT_SERVE_PORT, loadAgentConfig } from '../../src/config/agent.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-serve-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('defaults: serving on loopback 8551 and the state socket; capture off', async (t) => {
  const c = loadAgentConfig({});
  t.same(c.serve, {
    enabled: true,
    host: '127.0.0.1',
    port: DEFAULT_SERVE_PORT,
    socket: 'serve.sock',
    tokenFile: null,
    maxBodyMb: 64,
    capture: { enabled: false, maxMb: 256, every: 20 },
  });
  t.equal(DEFAULT_SERVE_PORT, 8551);
  t.same(serveOptions(c.serve, '/var/lib/edgefit'), {
    host: '127.0.0.1',
    port: 8551,
    socket: '/var/lib/edgefit/serve.sock',
    token: null,
    maxBodyMb: 64,
  });
  t.equal(serveOptions({ ...c.serve, socket: '/run/edgefit.sock' }, '/x').socket, '/run/edgefit.sock', 'an absolute socket path stays');
  t.equal(serveOptions({ ...c.serve, socket: null }, '/x').socket, null);
});

t.test('environment overrides', async (t) => {
  const c = loadAgentConfig({ env: { EDGEFIT_SERVE_PORT: '0', EDGEFIT_CAPTURE: '1', EDGEFIT_SERVE_SOCKET: 'none' } });
  t.equal(c.serve.port, 0);
  t.equal(c.serve.socket, null);
  t.equal(c.serve.capture.enabled, true);
  t.equal(c.serve.capture.every, 20, 'the rest keeps its defaults');
  t.equal(loadAgentConfig({ env: { EDGEFIT_SERVE: 'off' } }).serve.enabled, false);
  t.throws(() => loadAgentConfig({ env: { EDGEFIT_SERVE_PORT: 'x' } }), /EDGEFIT_SERVE_PORT='x' is not a number/);
});

t.test('a public host needs a token; the token is read from its file', async (t) => {
  t.throws(
    () => loadAgentConfig({ flags: { serve: { host: '0.0.0.0' } } }),
    /serve\.host: 0\.0\.0\.0 is not loopback, so serve\.tokenFile must be set/,
  );
  const tok = join(dir, 'token');
  writeFileSync(tok, 'a-long-enough-secret-token\n');
  const c = loadAgentConfig({ flags: { serve: { host: '0.0.0.0', tokenFile: tok } } });
  t.equal(serveOptions(c.serve, dir).token, 'a-long-enough-secret-token');
  writeFileSync(tok, 'short');
  t.throws(() => serveOptions(c.serve, dir), /at least 16 characters/);
  t.throws(() => loadAgentConfig({ flags: { serve: { port: 70000 } } }), /serve\/port|serve\.port/);
  t.throws(() => loadAgentConfig({ flags: { serve: { capture: { every: 0 } } } }), /every/);
});

t.test('CLI: a bad --serve-port is one usage line', async (t) => {
  const r = spawnSync(process.execPath, [CLI, 'agent', '--serve-port', '70000'], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stderr, /^edgefit: --serve-port must be an integer 0\.\.65535, got 70000\n$/);
});
