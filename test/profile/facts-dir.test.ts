// The facts folder (--facts-dir, hardware.factsDir, EDGEFIT_FACTS_DIR): every hardware fact read
// from captured files, missing files unknown; and `edgefit profile --capture DIR` writing this
// machine's facts in that layout, replayed through --facts-dir as a user would run it.
import t from 'tap';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { profileHardware } from '../../src/agent/hardware.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import { thermalSummary } from '../../src/profile/probe.js';
import { interpretSources } from '../../src/profile/interpret.js';
import { parseThermalTemp, readLiveSources, readSourcesFromDir, redactSerial } from '../../src/profile/sources.js';
import type { HardwareProfile } from '../../src/profile/types.js';

const FIXTURES = join(process.cwd(), 'test', 'profile', 'fixtures');
const MAIN = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');

function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { timeout: 60_000, env }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-facts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('an empty facts folder is all unknown, not an error; a missing folder is an error', async (t) => {
  const dir = tmp(t);
  const raw = readSourcesFromDir(dir);
  t.same(
    {
      cpuinfo: raw.cpuinfo,
      dt: raw.deviceTreeModel,
      l4t: raw.nvTegraRelease,
      thr: raw.throttled,
      m: raw.machine,
      lb: raw.longBit,
      thermal: raw.thermal,
    },
    { cpuinfo: null, dt: null, l4t: null, thr: null, m: null, lb: null, thermal: [] },
  );
  t.same(raw.origin, { factsDir: dir });
  const hw = interpretSources(raw);
  t.equal(hw.board.id, null);
  t.equal(hw.cpuinfo.processors, 0);
  t.throws(() => readSourcesFromDir(join(dir, 'nope')), { code: 'FILE_NOT_FOUND' });
});

t.test('thermal zones: millidegrees parsed, implausible readings dropped, the CPU zone is the main one', async (t) => {
  t.equal(parseThermalTemp('45250\n'), 45.25);
  t.equal(parseThermalTemp('-273000'), null, 'an unplugged sensor');
  t.equal(parseThermalTemp('garbage'), null);
  const dir = tmp(t);
  cpSync(join(FIXTURES, 'jetson-orin-nano'), dir, { recursive: true });
  // Jetson names its zones like this (zone order is not type order)
  const zones: Array<[number, string, string]> = [
    [0, 'cpu-thermal', '48500'],
    [1, 'gpu-thermal', '47000'],
    [2, 'cv0-thermal', '-256000'],
    [10, 'tj-thermal', '51000'],
  ];
  for (const [n, type, temp] of zones) {
    mkdirSync(join(dir, 'thermal', `zone${n}`), { recursive: true });
    writeFileSync(join(dir, 'thermal', `zone${n}`, 'type'), `${type}\n`);
    writeFileSync(join(dir, 'thermal', `zone${n}`, 'temp'), `${temp}\n`);
  }
  const raw = readSourcesFromDir(dir);
  t.same(
    raw.thermal.map((z) => z.zone),
    [0, 1, 2, 10],
    'numeric zone order (zone10 after zone2)',
  );
  t.equal(raw.thermal[2]!.tempC, null);
  t.same(thermalSummary(raw.thermal), { mainC: 48.5, maxC: 51 });
  t.same(thermalSummary([]), { mainC: null, maxC: null });
  const { probeHardware } = await import('../../src/profile/probe.js');
  const hw = await probeHardware({ factsDir: dir });
  t.same(hw.temperature, { mainC: 48.5, maxC: 51 }, 'temperature from the folder, not from this machine');
  t.equal(hw.board.id, 'jetson-orin-nano');
  t.same(hw.cpu.coreNames, ['Cortex-A78AE']);
  t.equal(hw.cpu.vendor, null, 'no CPU vendor invented from this (x86) machine');
  t.equal(hw.cpu.cores, 6, 'cores from the captured cpuinfo');
});

t.test('the serial number is blanked in a capture, nothing else changes', async (t) => {
  const text = readFileSync(join(FIXTURES, 'raspberry-pi-5', 'cpuinfo'), 'latin1');
  const red = redactSerial(text);
  t.match(red, /^Serial\t\t: 0000000000000000$/m);
  t.notMatch(red, /48343bbbe3ae743b/);
  t.equal(red.replace(/^Serial.*$/m, ''), text.replace(/^Serial.*$/m, ''));
  t.same(interpretSources({ ...readSourcesFromDir(join(FIXTURES, 'raspberry-pi-5')), cpuinfo: red }).board.piRevision?.code, 'd04170');
});

t.test('agent config: hardware.factsDir from the file, EDGEFIT_FACTS_DIR, default null', async (t) => {
  t.equal(loadAgentConfig({ env: {} }).hardware.factsDir, null);
  t.equal(loadAgentConfig({ env: { EDGEFIT_FACTS_DIR: '/srv/facts' } }).hardware.factsDir, '/srv/facts');
  t.equal(loadAgentConfig({ env: {}, flags: { hardware: { factsDir: '/a' } } }).hardware.factsDir, '/a');
});

t.test('the agent profiles the board of its facts folder; a missing folder stops it instead of going generic', async (t) => {
  const logs: string[] = [];
  const facts = await profileHardware(null, (l) => logs.push(l), join(FIXTURES, 'raspberry-pi-4'));
  t.equal(facts.profile, 'raspberry-pi-4');
  t.equal(facts.threads, 4);
  t.equal((facts.hardware as { arch?: string }).arch, 'arm64');
  const live = await profileHardware(null, (l) => logs.push(l));
  t.not(facts.hash, live.hash, 'the hardware hash follows the facts (a re-fit when they change)');
  await t.rejects(
    profileHardware(null, (l) => logs.push(l), join(FIXTURES, 'no-such-board')),
    { code: 'FILE_NOT_FOUND' },
  );
  t.same(logs, [], 'nothing was papered over with the generic profile');
});

t.test('edgefit profile --capture DIR, then --facts-dir DIR: the replay reports what the live run does', async (t) => {
  const dir = join(tmp(t), 'facts');
  const cap = await run(['profile', '--capture', dir]);
  t.equal(cap.code, 0, cap.stderr);
  t.match(cap.stdout, /captured \d+ files into/);
  const files = readdirSync(dir);
  t.ok(files.includes('cpuinfo') && files.includes('node_arch') && files.includes('uname_m'), files.join(' '));
  t.equal(readFileSync(join(dir, 'node_arch'), 'utf8').trim(), process.arch);
  const again = await run(['profile', '--capture', dir]);
  t.equal(again.code, 2, 'a folder holding a capture is not overwritten');

  const [live, replay] = await Promise.all([run(['profile', '--json']), run(['profile', '--json', '--facts-dir', dir])]);
  t.equal(live.code, 0, live.stderr);
  t.equal(replay.code, 0, replay.stderr);
  const a = (JSON.parse(live.stdout) as { hardware: HardwareProfile; profile: { name: string } }).hardware;
  const b = JSON.parse(replay.stdout) as { hardware: HardwareProfile; profile: { name: string } };
  t.same(b.hardware.cpu.features, a.cpu.features, 'same CPU features');
  t.same(b.hardware.int8, a.int8, 'same int8 flavour');
  t.same(b.hardware.board, a.board, 'same board');
  t.equal(b.hardware.arch, a.arch);
  t.equal(b.profile.name, (JSON.parse(live.stdout) as { profile: { name: string } }).profile.name, 'same board profile');
  const live2 = await readLiveSources();
  t.same(interpretSources(readSourcesFromDir(dir)).cpuinfo.parts, interpretSources(live2).cpuinfo.parts);
});

t.test('--facts-dir on a board fixture, and EDGEFIT_FACTS_DIR: the Pi 5 as a user would see it', async (t) => {
  const viaFlag = await run(['profile', '--json', '--facts-dir', join(FIXTURES, 'raspberry-pi-5')]);
  t.equal(viaFlag.code, 0, viaFlag.stderr);
  const out = JSON.parse(viaFlag.stdout) as { hardware: HardwareProfile; profile: { name: string } };
  t.equal(out.profile.name, 'raspberry-pi-5');
  t.equal(out.hardware.arch, 'arm64');
  t.equal(out.hardware.int8.activation, 's8');
  const viaEnv = await run(['profile', '--json'], { ...process.env, EDGEFIT_FACTS_DIR: join(FIXTURES, 'jetson-nano') });
  t.equal(viaEnv.code, 0, viaEnv.stderr);
  t.equal((JSON.parse(viaEnv.stdout) as { profile: { name: string } }).profile.name, 'jetson-nano');
  const missing = await run(['profile', '--facts-dir', join(FIXTURES, 'no-such-board')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /facts folder not found/);
  t.equal(missing.stderr.trim().split('\n').length, 1, 'one clear line');
  // the agent checks the folder before it starts a broker: a typo exits at once, it does not hang
  const state = mkdtempSync(join(tmpdir(), 'edgefit-facts-agent-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const agent = await run(['agent', '--no-dashboard', '--no-serve', '--state-dir', state], {
    ...process.env,
    EDGEFIT_FACTS_DIR: join(FIXTURES, 'no-such-board'),
  });
  t.equal(agent.code, 1, agent.stderr);
  t.match(agent.stderr, /facts folder not found: .*no-such-board/);
});
