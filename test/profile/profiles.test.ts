// Board profiles: the shipped files validate, selection prefers the most specific match,
// overrides and unknown names behave, and malformed files are reported by path and field.
import t from 'tap';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validate, pointerToPath } from '../../src/config/validate.js';
import { EdgefitError } from '../../src/errors.js';
import { defaultProfilesDir, loadProfiles, parseLatency, ProfileError, selectProfile, specificity } from '../../src/profile/profiles.js';
import type { HardwareProfile } from '../../src/profile/types.js';
import { recommendInt8 } from '../../src/profile/int8.js';
import { featuresFromFlags } from '../../src/profile/cpuinfo.js';

type Hw = Pick<HardwareProfile, 'arch' | 'board' | 'cpu' | 'int8'>;
function hw(arch: string, model: string | null, parts: string[], flags: string[], cores = 4): Hw {
  const features = featuresFromFlags(flags);
  return {
    arch,
    board: { id: null, family: null, model, piRevision: null, l4t: null },
    cpu: {
      vendor: null,
      brand: null,
      cores,
      physicalCores: cores,
      speedMHz: null,
      speedMinMHz: null,
      speedMaxMHz: null,
      governor: null,
      parts,
      coreNames: [],
      features,
    },
    int8: recommendInt8(arch, features),
  };
}

/** A temp profiles folder with the real schema and one good profile; removed by `teardown`. */
function tmpProfiles(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-profiles-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(defaultProfilesDir(), 'schema.json'), join(dir, 'schema.json'));
  copyFileSync(join(defaultProfilesDir(), 'generic-x86_64.json'), join(dir, 'generic-x86_64.json'));
  return dir;
}

const good = JSON.parse(readFileSync(join(defaultProfilesDir(), 'raspberry-pi-4.json'), 'utf8')) as Record<string, unknown>;

t.test('the shipped profiles all validate and cover the required boards', async (t) => {
  const ps = loadProfiles();
  t.same(ps.map((p) => p.name).sort(), [
    'generic-arm64',
    'generic-x86_64',
    'jetson-nano',
    'jetson-orin-nano',
    'raspberry-pi-3',
    'raspberry-pi-4',
    'raspberry-pi-5',
  ]);
  for (const p of ps) {
    t.ok(p.path.endsWith(`${p.name}.json`), `${p.name} knows its file`);
    t.notOk('$schema' in p, 'the $schema key is not part of the profile');
    if (p.name.startsWith('generic-')) t.equal(specificity(p), 1, `${p.name} matches on arch only`);
    else t.ok(specificity(p) > 1, `${p.name} is more specific than the generic profiles`);
  }
});

t.test('selection: board model wins over arch; generic last; cpu part rules hold', async (t) => {
  const ps = loadProfiles();
  const dot = ['fp', 'asimd', 'asimddp'];
  t.equal(selectProfile(hw('arm64', 'Raspberry Pi 5 Model B Rev 1.0', ['0xd0b'], dot), undefined, ps).profile.name, 'raspberry-pi-5');
  const pi4 = selectProfile(hw('arm64', 'Raspberry Pi 4 Model B Rev 1.4', ['0xd08'], ['asimd']), undefined, ps);
  t.equal(pi4.profile.name, 'raspberry-pi-4');
  t.same(pi4.matchedBy, ['boardModel', 'arch']);
  t.same(pi4.budgets, { latencyFactor: 0.5, ramMb: 512, minFidelity: 0.95 }, 'the profile budgets in the one Budgets form');
  t.equal(pi4.int8.source, 'profile');
  // a Nano device tree on a CPU without the A57 part fails the cpuParts rule: fall back to generic
  t.equal(
    selectProfile(hw('arm64', 'NVIDIA Jetson Nano Developer Kit', ['0xd08'], ['asimd']), undefined, ps).profile.name,
    'generic-arm64',
  );
  t.equal(selectProfile(hw('arm64', 'NVIDIA Jetson Nano Developer Kit', ['0xd07'], ['asimd']), undefined, ps).profile.name, 'jetson-nano');
  const x = selectProfile(hw('x64', null, [], ['avx2', 'avx512f', 'avx512_vnni'], 16), undefined, ps);
  t.equal(x.profile.name, 'generic-x86_64');
  t.equal(x.threads, 16, "'auto' threads resolve to physical cores");
  t.match(
    x.int8,
    { activation: 'u8', weight: 's8', reduceRange: false, source: 'detected' },
    "'auto' int8 resolves to the detected VNNI flavour",
  );
  const avx2 = selectProfile(hw('x64', null, [], ['avx2']), undefined, ps);
  t.equal(avx2.int8.reduceRange, true, 'AVX2 without VNNI gets reduce-range');
});

t.test('override by name; unknown names list the valid ones; nothing matching is a clear error', async (t) => {
  const ps = loadProfiles();
  const o = selectProfile(hw('x64', null, [], ['avx2']), 'raspberry-pi-5', ps);
  t.equal(o.profile.name, 'raspberry-pi-5');
  t.equal(o.source, 'override');
  const err = t.throws(() => selectProfile(hw('x64', null, [], []), 'raspberry-pi-9', ps)) as EdgefitError;
  t.equal(err.code, 'CONFIG');
  t.equal(err.exitCode, 2);
  t.match(err.message, /unknown board profile 'raspberry-pi-9'; valid names: generic-arm64, generic-x86_64, jetson-nano/);
  const none = t.throws(() => selectProfile(hw('riscv64', null, [], []), undefined, ps)) as EdgefitError;
  t.match(none.message, /^no board profile matches this machine \(arch riscv64, board unknown\)$/, 'the library names no CLI flag');
  t.same(none.remedy, { option: 'profile', choices: ps.map((p) => p.name) }, 'the remedy: choose one of the profiles');
});

t.test('a malformed profile is reported with its path and every bad field', async (t) => {
  const dir = tmpProfiles(t);
  const bad = {
    ...good,
    name: 'my-board',
    threads: 0,
    colour: 'red',
    match: { arch: ['sparc'], cpuParts: ['d08'] },
    budgets: { latency: '0.5x', ramMb: 'lots' },
    int8: { activation: 'u16', weight: 's8', perChannel: true },
  };
  const file = join(dir, 'my-board.json');
  writeFileSync(file, JSON.stringify(bad, null, 2));
  const err = t.throws(() => loadProfiles(dir)) as ProfileError;
  t.ok(err instanceof ProfileError);
  t.equal(err.code, 'CONFIG');
  t.ok(err.message.includes(file), 'message names the file');
  t.notOk(err.message.includes('\n'), 'one line');
  const paths = err.issues.map((i) => i.path);
  for (const want of [
    'threads',
    'colour',
    'match.arch[0]',
    'match.cpuParts[0]',
    'budgets.ramMb',
    'budgets.minFidelity',
    'int8.activation',
    'int8.reduceRange',
  ]) {
    t.ok(paths.includes(want), `reports ${want}`);
  }
  t.ok(err.issues.every((i) => i.file === file));
  t.match(err.issues.find((i) => i.path === 'budgets.minFidelity')?.message, /required/);
  t.match(err.issues.find((i) => i.path === 'colour')?.message, /not an allowed field/);
  t.match(err.issues.find((i) => i.path === 'match.arch[0]')?.message, /must be one of "x64", "arm64", "arm", "ia32"/);
});

t.test('checks beyond the schema: name vs file, regex, both latencies, JSON syntax, duplicates', async (t) => {
  const dir = tmpProfiles(t);
  writeFileSync(join(dir, 'a.json'), JSON.stringify({ ...good, name: 'b', match: { boardModel: '(unclosed' } }));
  writeFileSync(
    join(dir, 'c.json'),
    JSON.stringify({ ...good, name: 'c', budgets: { latency: '0.5x', latencyMs: 30, ramMb: 64, minFidelity: 0.9 } }),
  );
  writeFileSync(join(dir, 'd.json'), '{ "name": "d", ');
  const err = t.throws(() => loadProfiles(dir)) as ProfileError;
  const by = (f: string): string[] => err.issues.filter((i) => i.file === join(dir, f)).map((i) => `${i.path}: ${i.message}`);
  t.match(by('a.json').join('|'), /name: must equal the file name 'a'/);
  t.match(by('a.json').join('|'), /match\.boardModel: is not a valid regular expression/);
  t.match(by('c.json').join('|'), /budgets: must match exactly one alternative/);
  t.match(by('d.json').join('|'), /not valid JSON/);
  t.notOk(
    err.issues.some((i) => i.file.endsWith('generic-x86_64.json')),
    'the good file is not blamed',
  );

  const dup = tmpProfiles(t);
  writeFileSync(
    join(dup, 'generic-x86_64-copy.json'),
    JSON.stringify({ ...JSON.parse(readFileSync(join(dup, 'generic-x86_64.json'), 'utf8')), name: 'generic-x86_64-copy' }),
  );
  t.equal(loadProfiles(dup).length, 2, 'distinct names load');
});

t.test('latency factors', async (t) => {
  t.equal(parseLatency('0.5x'), 0.5);
  t.equal(parseLatency('.33x'), 0.33);
  t.equal(parseLatency('2x'), 2);
  t.ok(Number.isNaN(parseLatency('x')));
  t.ok(Number.isNaN(parseLatency('0.5')));
});

t.test('generic validate(): all errors with JSON paths', async (t) => {
  const schema = {
    type: 'object',
    required: ['a', 'list'],
    additionalProperties: false,
    properties: {
      a: { type: 'integer' },
      list: { type: 'array', items: { type: 'object', properties: { v: { type: 'number', minimum: 0 } } } },
    },
  };
  t.same(validate(schema, { a: 1, list: [] }), { ok: true, value: { a: 1, list: [] } });
  const r = validate(schema, { a: 'x', list: [{ v: 1 }, { v: -1 }], z: 1 });
  t.equal(r.ok, false);
  if (!r.ok) {
    t.same(r.errors.map((e) => e.path).sort(), ['a', 'list[1].v', 'z']);
  }
  t.equal(pointerToPath('/a~1b/0/c~0d'), 'a/b[0].c~d');
  t.equal(pointerToPath(''), '');
  t.throws(() => validate({ type: 'nonsense' }, 1), { code: 'CONFIG' });
  // an edited copy of a schema keeps its $id: it must be compiled afresh, not served stale
  const v1 = { $id: 'https://example.test/s.json', type: 'integer' };
  const v2 = { $id: 'https://example.test/s.json', type: 'string' };
  t.equal(validate(v1, 3).ok, true);
  t.equal(validate(v2, 3).ok, false);
  t.equal(validate(v2, 'x').ok, true);
});
