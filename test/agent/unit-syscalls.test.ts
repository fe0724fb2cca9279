// The installed unit's system-call filter (SystemCallFilter=@system-service ~@privileged, EPERM
// for the rest; issue 20) with the real agent under it: systemd is not PID 1 in CI, so the same
// allow-list is loaded with seccomp by a small launcher (devkit/seccomp.ts), then the agent runs
// as in agent-mqtt.test.ts: it connects, profiles, deploys, fits, answers a request, reports
// metrics and stops cleanly. A control shows the filter is in force (chown fails with EPERM).
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDir, startBroker } from '../../devkit/broker.js';
import { CLI } from '../../devkit/paths.js';
import { prepareSeccomp, readUnit, seccompSkipReason, unitAllowList } from '../../devkit/seccomp.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';

const skip = seccompSkipReason();
if (skip) {
  t.plan(0, `${skip}: the unit's system-call filter is not checked here`);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-seccomp-'));
  t.teardown(() => cleanupDir(dir));
  const unit = readUnit();
  const prefix = await prepareSeccomp(dir, unit);

  t.test('the allow-list is the unit’s: network and processes in, privileged calls out', async (t) => {
    const allow = await unitAllowList(unit);
    for (const s of ['socket', 'connect', 'execve', 'clone', 'mmap', 'mprotect', 'fsync', 'rename', 'setpriority'])
      t.ok(allow.has(s), `${s} allowed`);
    for (const s of ['chown', 'fchown', 'setuid', 'chroot', 'reboot', 'init_module', 'mount', 'settimeofday'])
      t.notOk(allow.has(s), `${s} filtered`);
  });

  t.test('the filter is in force, and a refused call fails with EPERM rather than killing', async (t) => {
    const f = join(dir, 'owned');
    writeFileSync(f, 'x');
    const js = `try { require('fs').chownSync(${JSON.stringify(f)}, process.getuid(), process.getgid()); console.log('chown ok') } catch (e) { console.log(e.code) }`;
    t.equal(execFileSync(process.execPath, ['-e', js], { encoding: 'utf8' }).trim(), 'chown ok', 'unfiltered: chown of our own file works');
    t.equal(
      execFileSync(prefix[0]!, [...prefix.slice(1), process.execPath, '-e', js], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim(),
      'EPERM',
    );
  });

  t.test('the agent works under the filter: connect, deploy, fit, answer, metrics, clean stop', async (t) => {
    const broker = await startBroker();
    const dev = 'dev-seccomp';
    const pre = `edgefit/${dev}/`;
    const w = await Watcher.connect(broker.url, [`${pre}#`]);
    const args = [
      '--max-semi-space-size=1',
      CLI,
      'agent',
      '--broker',
      broker.url,
      '--device-id',
      dev,
      '--state-dir',
      join(dir, 'state'),
      '--model',
      CLS_MODEL,
      '--shape',
      'x=1x3x48x192',
      '--metrics-interval',
      '0.5',
      '--probe-interval',
      '2',
      '--fitter',
      'reference-only',
      '--serve-port',
      '0',
    ];
    const child = spawn(prefix[0]!, [...prefix.slice(1), process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    t.teardown(async () => {
      child.kill('SIGKILL');
      await w.close();
      await broker.stop();
    });
    const ctx = (): string => `\n${out.slice(-3000)}`;
    await w.waitFor((m) => m.topic === `${pre}status` && m.json().state === 'online', 60_000, 0, `online${ctx()}`);
    const d = await w.waitFor(
      (m) => m.topic === `${pre}events` && m.json().type === 'deployed' && m.json().data.candidateId !== null,
      90_000,
      0,
      `fit deployed${ctx()}`,
    );
    t.equal(d.json().data.candidateId, 'reference', 'the fit ran (measurement in a child process) and deployed');
    const m = await w.waitFor((m) => m.topic === `${pre}metrics` && m.json().model.id === 'reference', 20_000, 0, `metrics${ctx()}`);
    t.ok(m.json().model.latencyP50Ms > 0, 'live latency probes report');
    const from = w.msgs.length;
    await w.publish(`${pre}request/get-frontier`, { txn: 'sc-1' });
    const r = await w.waitFor((m) => m.topic === `${pre}response/get-frontier`, 10_000, from, `response${ctx()}`);
    t.match(r.json(), { ok: true, txn: 'sc-1' });
    t.match(out, /serve-started/, 'the serve process started');
    t.match(out, /seccomp: \d+ syscalls allowed/, 'it ran under the filter');
    t.notMatch(out.replace(/^seccomp: .*$/m, ''), /EPERM|operation not permitted/i, 'nothing it did was refused');
    child.kill('SIGTERM');
    t.equal(await exited, 0, `clean stop${ctx()}`);
    await w.waitFor(
      (m) => m.topic === `${pre}status` && m.json().state === 'offline' && m.json().reason === 'shutdown',
      10_000,
      from,
      'offline on stop',
    );
  });
}
