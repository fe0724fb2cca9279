// install.sh into a throwaway root: files, default config, unit hardening; re-run upgrades and
// keeps the config; --uninstall removes the install but keeps config and state.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../devkit/paths.js';

const root = mkdtempSync(join(tmpdir(), 'edgefit-root-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const run = (...args: string[]): string => execFileSync('sh', [join(ROOT, 'install.sh'), ...args], { encoding: 'utf8' });

t.test('install, upgrade, uninstall into --root', async (t) => {
  t.match(run('--root', root), /--root mode/);
  t.ok(existsSync(join(root, 'opt/edgefit/dist/src/cli/main.js')));
  t.ok(existsSync(join(root, 'opt/edgefit/assets/probe/coffee.png')), "the latency probe's photos are installed with the package");
  // the agent's default calibration and judge sets, where dist/src/agent/agent.js looks for them (ROOT/assets/calib/det)
  t.ok(existsSync(join(root, 'opt/edgefit/assets/calib/det/calibrate/preprocess.json')), 'package data installed');
  t.ok(existsSync(join(root, 'opt/edgefit/assets/calib/det/calibrate/page-a.jpg')));
  t.ok(existsSync(join(root, 'opt/edgefit/assets/calib/det/judge/page-a.jpg')));
  t.notOk(existsSync(join(root, 'opt/edgefit/test')), 'no test fixtures in the install');
  const cfg = JSON.parse(readFileSync(join(root, 'etc/edgefit/config'), 'utf8'));
  t.equal(cfg.stateDir, '/var/lib/edgefit');
  t.same(cfg.dashboard, { port: 0 }, 'the service runs without the dashboard (idle footprint)');
  const unit = readFileSync(join(root, 'etc/systemd/system/edgefit.service'), 'utf8');
  for (const line of [
    '--max-semi-space-size=1 ',
    'Type=notify',
    'WatchdogSec=',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'StateDirectory=edgefit',
    'Restart=on-failure',
  ])
    t.match(unit, line);
  t.notMatch(unit, /^MemoryDenyWriteExecute/m, 'would break V8');
  t.notMatch(unit, /@PREFIX@|@USER@|@NODE@/, 'template filled');
  // the installed agent's config validates
  const out = execFileSync(process.execPath, [join(root, 'opt/edgefit/dist/src/cli/main.js'), 'agent', '--help'], { encoding: 'utf8' });
  t.match(out, /--state-dir/);

  writeFileSync(join(root, 'etc/edgefit/config'), '{"stateDir": "/var/lib/edgefit", "metricsIntervalS": 30}');
  t.match(run('--root', root), /kept existing config/, 're-run upgrades in place');
  t.match(readFileSync(join(root, 'etc/edgefit/config'), 'utf8'), /metricsIntervalS/);

  t.match(run('--root', root, '--uninstall'), /removed edgefit/);
  t.notOk(existsSync(join(root, 'opt/edgefit')));
  t.ok(existsSync(join(root, 'etc/edgefit/config')), 'config kept');
  t.notOk(existsSync(join(root, 'etc/systemd/system/edgefit.service')));
});

t.test('bad option: one line, exit 2', async (t) => {
  try {
    execFileSync('sh', [join(ROOT, 'install.sh'), '--bogus'], { encoding: 'utf8', stdio: 'pipe' });
    t.fail('should exit non-zero');
  } catch (e) {
    const err = e as { status: number; stderr: string };
    t.equal(err.status, 2);
    t.match(err.stderr, /unknown option '--bogus'/);
  }
});
