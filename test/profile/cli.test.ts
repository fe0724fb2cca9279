// `edgefit profile` on this machine, as a user runs it: a child process of the built CLI.
// The reported CPU features are checked against /proc/cpuinfo read here independently.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, copyFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HardwareProfile } from '../../src/profile/types.js';

const MAIN = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Flag words of the first processor block, read without edgefit's parser. */
function cpuinfoFlags(): Set<string> {
  const text = readFileSync('/proc/cpuinfo', 'utf8');
  const line = text.split('\n').find((l) => /^(flags|Features)\s*:/.test(l)) ?? '';
  return new Set(line.split(':')[1]?.trim().split(/\s+/) ?? []);
}

t.test('profile --json reports this machine: arch, cores, CPU features as /proc/cpuinfo has them', async (t) => {
  const r = await run(['profile', '--json']);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { hardware: HardwareProfile; profile: { name: string; path: string; resolved: { threads: number } } };
  const hw = out.hardware;
  t.equal(hw.arch, process.arch);
  t.equal(hw.platform, 'linux');
  const processors = (readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm) ?? []).length;
  t.equal(hw.cpu.cores, processors, 'logical cores = processor blocks in /proc/cpuinfo');
  const flags = cpuinfoFlags();
  const expect = {
    avx: flags.has('avx'),
    avx2: flags.has('avx2'),
    fma: flags.has('fma'),
    avx512: flags.has('avx512f'),
    avx512Vnni: flags.has('avx512_vnni'),
    avxVnni: flags.has('avx_vnni'),
    amxInt8: flags.has('amx_int8'),
    neon: flags.has('asimd') || flags.has('neon'),
    dotProd: flags.has('asimddp'),
    i8mm: flags.has('i8mm'),
    sve: flags.has('sve'),
  };
  for (const [k, v] of Object.entries(expect)) t.equal(hw.cpu.features[k as keyof typeof expect], v, `${k} = ${v} as in /proc/cpuinfo`);
  t.same(new Set(hw.cpu.features.raw), flags, 'raw flag words are exactly those of /proc/cpuinfo');
  t.ok(hw.memory.totalMb > 0 && hw.memory.availableMb > 0 && hw.memory.availableMb <= hw.memory.totalMb, 'memory');
  t.equal(hw.userland.is64, process.arch === 'x64' || process.arch === 'arm64', 'user space width matches this Node build');
  t.equal(hw.bench, null, 'no benchmark without --bench');
  // the int8 advice follows the features found
  if (process.arch === 'x64') {
    t.equal(hw.int8.activation, 'u8');
    t.equal(hw.int8.reduceRange, !(expect.avx512Vnni || expect.avxVnni || expect.amxInt8));
    t.equal(out.profile.name, 'generic-x86_64');
  }
  t.ok(out.profile.path.endsWith(`${out.profile.name}.json`));
  t.equal(out.profile.resolved.threads, hw.cpu.physicalCores);
});

t.test('profile (text) names the chosen profile; --profile overrides it', async (t) => {
  const r = await run(['profile', '--profile', 'raspberry-pi-5']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^features {3}/m);
  t.match(r.stdout, /^profile {4}raspberry-pi-5 \(chosen with --profile\)/m);
  t.match(r.stdout, /^int8 {7}s8 x s8, per-channel \(profile\)/m);
});

t.test('bad input: one line, non-zero exit, no stack', async (t) => {
  const unknown = await run(['profile', '--profile', 'raspberry-pi-9']);
  t.equal(unknown.code, 2);
  t.equal(unknown.stdout, '');
  t.match(unknown.stderr, /^edgefit: unknown board profile 'raspberry-pi-9'; valid names: generic-arm64, .*raspberry-pi-5\n$/);

  const dir = mkdtempSync(join(tmpdir(), 'edgefit-cli-profiles-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(process.cwd(), 'profiles', 'schema.json'), join(dir, 'schema.json'));
  writeFileSync(
    join(dir, 'broken.json'),
    JSON.stringify({
      name: 'broken',
      description: 'x',
      match: { arch: ['x64'] },
      budgets: { latencyMs: -1, ramMb: 64, minFidelity: 2 },
      threads: 'auto',
      int8: 'auto',
    }),
  );
  const bad = await run(['profile', '--profiles-dir', dir]);
  t.equal(bad.code, 2);
  t.equal(bad.stderr.split('\n').filter(Boolean).length, 1, 'one line');
  t.match(bad.stderr, new RegExp(`broken\\.json: budgets\\.latencyMs: must be > 0; budgets\\.minFidelity: must be <= 1`));
  t.notMatch(bad.stderr, /at .*\.js:\d+/, 'no stack trace');

  const threads = await run(['profile', '--bench', '--threads', '0']);
  t.equal(threads.code, 2);
  t.match(threads.stderr, /--threads must be an integer 1\.\.256/);
});
