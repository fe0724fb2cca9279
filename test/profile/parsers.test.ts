// Every parser over every board fixture (test/profile/fixtures/<board>/), then the pure
// decoders on edge cases. Fixtures are read from the source tree, not dist/.
import t from 'tap';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { decodePiRevision, parseDeviceTreeModel, parseNvTegraRelease } from '../../src/profile/board.js';
import { featuresFromFlags, parseCpuInfo } from '../../src/profile/cpuinfo.js';
import { interpretSources } from '../../src/profile/interpret.js';
import { int8Rule, recommendInt8 } from '../../src/profile/int8.js';
import { loadProfiles, selectProfile } from '../../src/profile/profiles.js';
import { readSourcesFromDir } from '../../src/profile/sources.js';
import { describeThrottling, parseThrottled } from '../../src/profile/throttle.js';
import { decideUserland, elfClass, parseLongBit } from '../../src/profile/userland.js';

const FIXTURES = join(process.cwd(), 'test', 'profile', 'fixtures');

interface Expect {
  board: string | null;
  family: string | null;
  arch: string;
  processors: number;
  parts: string[];
  cores: string[];
  features: { neon: boolean; dotProd: boolean; i8mm: boolean; sve: boolean; avx2: boolean; avx512: boolean; avx512Vnni: boolean };
  is64: boolean;
  mismatch: boolean;
  int8: { activation: 'u8' | 's8'; reduceRange: boolean; benefit: string };
  profile: string;
  threads: number;
  piMemoryMb?: number;
  l4t?: { version: string; jetpack: string | null; board: string };
  throttled?: { raw: number; nowUnderVoltage: boolean; nowThrottled: boolean; bootSoftTemp: boolean };
}

const ARM = { avx2: false, avx512: false, avx512Vnni: false };
const EXPECT: Record<string, Expect> = {
  // a real capture (64-bit Raspberry Pi OS on a Pi 3 B+): space-aligned keys, as posted
  'raspberry-pi-3': {
    board: 'raspberry-pi-3',
    family: 'raspberry-pi',
    arch: 'arm64',
    processors: 4,
    parts: ['0xd03'],
    cores: ['Cortex-A53'],
    features: { neon: true, dotProd: false, i8mm: false, sve: false, ...ARM },
    is64: true,
    mismatch: false,
    int8: { activation: 'u8', reduceRange: false, benefit: 'maybe' },
    profile: 'raspberry-pi-3',
    threads: 4,
    piMemoryMb: 1024,
    throttled: { raw: 0x50005, nowUnderVoltage: true, nowThrottled: true, bootSoftTemp: false },
  },
  // hand-written: 32-bit Raspberry Pi OS on the 64-bit kernel (compat cpuinfo view)
  'raspberry-pi-3-armhf': {
    board: 'raspberry-pi-3',
    family: 'raspberry-pi',
    arch: 'arm',
    processors: 4,
    parts: ['0xd03'],
    cores: ['Cortex-A53'],
    features: { neon: true, dotProd: false, i8mm: false, sve: false, ...ARM },
    is64: false,
    mismatch: true,
    int8: { activation: 'u8', reduceRange: false, benefit: 'unlikely' },
    profile: 'raspberry-pi-3',
    threads: 4,
    piMemoryMb: 1024,
    throttled: { raw: 0x50005, nowUnderVoltage: true, nowThrottled: true, bootSoftTemp: false },
  },
  'raspberry-pi-4': {
    board: 'raspberry-pi-4',
    family: 'raspberry-pi',
    arch: 'arm64',
    processors: 4,
    parts: ['0xd08'],
    cores: ['Cortex-A72'],
    features: { neon: true, dotProd: false, i8mm: false, sve: false, ...ARM },
    is64: true,
    mismatch: false,
    int8: { activation: 'u8', reduceRange: false, benefit: 'maybe' },
    profile: 'raspberry-pi-4',
    threads: 4,
    piMemoryMb: 8192,
    throttled: { raw: 0, nowUnderVoltage: false, nowThrottled: false, bootSoftTemp: false },
  },
  'raspberry-pi-5': {
    board: 'raspberry-pi-5',
    family: 'raspberry-pi',
    arch: 'arm64',
    processors: 4,
    parts: ['0xd0b'],
    cores: ['Cortex-A76'],
    features: { neon: true, dotProd: true, i8mm: false, sve: false, ...ARM },
    is64: true,
    mismatch: false,
    int8: { activation: 's8', reduceRange: false, benefit: 'yes' },
    profile: 'raspberry-pi-5',
    threads: 4,
    piMemoryMb: 8192,
    throttled: { raw: 0x80000, nowUnderVoltage: false, nowThrottled: false, bootSoftTemp: true },
  },
  'jetson-nano': {
    board: 'jetson-nano',
    family: 'jetson',
    arch: 'arm64',
    processors: 4,
    parts: ['0xd07'],
    cores: ['Cortex-A57'],
    features: { neon: true, dotProd: false, i8mm: false, sve: false, ...ARM },
    is64: true,
    mismatch: false,
    int8: { activation: 'u8', reduceRange: false, benefit: 'maybe' },
    profile: 'jetson-nano',
    threads: 4,
    l4t: { version: 'R32.7.1', jetpack: '4.6.1', board: 't210ref' },
  },
  'jetson-xavier': {
    // no Xavier board profile ships: it falls back to generic-arm64, threads = its cores (the
    // capture holds the first 4 of the AGX Xavier's 8 processor blocks)
    board: 'jetson-xavier',
    family: 'jetson',
    arch: 'arm64',
    processors: 4,
    parts: ['0x004'],
    cores: ['Carmel'],
    features: { neon: true, dotProd: false, i8mm: false, sve: false, ...ARM },
    is64: true,
    mismatch: false,
    int8: { activation: 'u8', reduceRange: false, benefit: 'maybe' },
    profile: 'generic-arm64',
    threads: 4,
    l4t: { version: 'R35.1.0', jetpack: '5.0.2', board: 't186ref' },
  },
  'jetson-orin-nano': {
    board: 'jetson-orin-nano',
    family: 'jetson',
    arch: 'arm64',
    processors: 6,
    parts: ['0xd42'],
    cores: ['Cortex-A78AE'],
    features: { neon: true, dotProd: true, i8mm: false, sve: false, ...ARM },
    is64: true,
    mismatch: false,
    int8: { activation: 's8', reduceRange: false, benefit: 'yes' },
    profile: 'jetson-orin-nano',
    threads: 6,
    l4t: { version: 'R36.3.0', jetpack: '6.0', board: 'generic' },
  },
  'generic-arm64': {
    board: null,
    family: null,
    arch: 'arm64',
    processors: 4,
    parts: ['0xd40'],
    cores: ['Neoverse-V1'],
    features: { neon: true, dotProd: true, i8mm: true, sve: true, ...ARM },
    is64: true,
    mismatch: false,
    int8: { activation: 's8', reduceRange: false, benefit: 'yes' },
    profile: 'generic-arm64',
    threads: 4,
  },
  'generic-x86_64-vnni': {
    board: null,
    family: null,
    arch: 'x64',
    processors: 8,
    parts: [],
    cores: [],
    features: { neon: false, dotProd: false, i8mm: false, sve: false, avx2: true, avx512: true, avx512Vnni: true },
    is64: true,
    mismatch: false,
    int8: { activation: 'u8', reduceRange: false, benefit: 'yes' },
    profile: 'generic-x86_64',
    threads: 4,
  },
  'generic-x86_64-avx2': {
    board: null,
    family: null,
    arch: 'x64',
    processors: 8,
    parts: [],
    cores: [],
    features: { neon: false, dotProd: false, i8mm: false, sve: false, avx2: true, avx512: false, avx512Vnni: false },
    is64: true,
    mismatch: false,
    int8: { activation: 'u8', reduceRange: true, benefit: 'yes' },
    profile: 'generic-x86_64',
    threads: 4,
  },
};

t.test('every fixture folder has expectations and vice versa', async (t) => {
  const dirs = readdirSync(FIXTURES, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  t.same(dirs, Object.keys(EXPECT).sort());
});

const profiles = loadProfiles();

for (const [name, e] of Object.entries(EXPECT)) {
  t.test(`fixture ${name}`, async (t) => {
    const raw = readSourcesFromDir(join(FIXTURES, name));
    const hw = interpretSources(raw);
    t.equal(hw.arch, e.arch, 'arch');
    t.equal(hw.board.id, e.board, 'board id');
    t.equal(hw.board.family, e.family, 'board family');
    t.equal(hw.cpuinfo.processors, e.processors, 'processor count');
    t.same(hw.cpuinfo.parts, e.parts, 'cpu parts');
    t.same(hw.cpuinfo.coreNames, e.cores, 'core names');
    for (const [k, v] of Object.entries(e.features)) t.equal(hw.cpuinfo.features[k as keyof typeof e.features], v, `feature ${k}`);
    t.equal(hw.userland.is64, e.is64, '64-bit user space');
    t.equal(hw.userland.mismatch, e.mismatch, 'kernel/userland mismatch');
    t.equal(hw.int8.activation, e.int8.activation, 'int8 activation');
    t.equal(hw.int8.weight, 's8', 'int8 weights');
    t.equal(hw.int8.reduceRange, e.int8.reduceRange, 'reduce range');
    t.equal(hw.int8.benefit, e.int8.benefit, 'int8 benefit');
    if (e.piMemoryMb !== undefined) t.equal(hw.board.piRevision?.memoryMb, e.piMemoryMb, 'Pi RAM from the revision code');
    else t.equal(hw.board.piRevision, null, 'no Pi revision decoded off a Pi');
    if (e.l4t) t.match(hw.board.l4t, e.l4t, 'L4T release');
    else t.equal(hw.board.l4t, null, 'no L4T');
    if (e.throttled) {
      t.equal(hw.throttling?.raw, e.throttled.raw);
      t.equal(hw.throttling?.now.underVoltage, e.throttled.nowUnderVoltage, 'under-voltage now');
      t.equal(hw.throttling?.now.throttled, e.throttled.nowThrottled, 'throttled now');
      t.equal(hw.throttling?.sinceBoot.softTempLimit, e.throttled.bootSoftTemp, 'soft temp limit since boot');
    } else t.equal(hw.throttling, null, 'no vcgencmd, no throttling info');

    const sel = selectProfile(
      {
        arch: hw.arch,
        board: hw.board,
        cpu: { parts: hw.cpuinfo.parts, cores: e.processors, physicalCores: e.processors } as never,
        int8: hw.int8,
      },
      undefined,
      profiles,
    );
    t.equal(sel.profile.name, e.profile, 'chosen board profile');
    t.equal(sel.threads, e.profile.startsWith('generic') ? e.processors : e.threads, 'threads');
  });
}

// More real captures, inline because no board folder needs them: each has a quirk the parser
// must take as it is (fix the parser, not the text).
const REAL = {
  // Jetson TX2 with its two Denver cores offline: processor numbers 0, 3, 4, 5 (a gap), all A57.
  // github.com/kozyilmaz/nvidia-jetson-rt docs/README.05.results.md ("NVIDIA Jetson TX2 CPU Capabilities")
  tx2DenverOffline:
    'processor\t: 0\nmodel name\t: ARMv8 Processor rev 3 (v8l)\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd07\nCPU revision\t: 3\n\nprocessor\t: 3\nmodel name\t: ARMv8 Processor rev 3 (v8l)\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd07\nCPU revision\t: 3\n\nprocessor\t: 4\nmodel name\t: ARMv8 Processor rev 3 (v8l)\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd07\nCPU revision\t: 3\n\nprocessor\t: 5\nmodel name\t: ARMv8 Processor rev 3 (v8l)\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd07\nCPU revision\t: 3\n',
  // Jetson Xavier NX, space-aligned as posted; its first 3 processor blocks.
  // https://github.com/hrw/arm-socs-table/issues/26 (binarymaster, 2022-11-11)
  xavierNx:
    'processor       : 0\nmodel name      : ARMv8 Processor rev 0 (v8l)\nBogoMIPS        : 62.50\nFeatures        : fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp\nCPU implementer : 0x4e\nCPU architecture: 8\nCPU variant     : 0x0\nCPU part        : 0x004\nCPU revision    : 0\nMTS version     : 51035886\n\nprocessor       : 1\nmodel name      : ARMv8 Processor rev 0 (v8l)\nBogoMIPS        : 62.50\nFeatures        : fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp\nCPU implementer : 0x4e\nCPU architecture: 8\nCPU variant     : 0x0\nCPU part        : 0x004\nCPU revision    : 0\nMTS version     : 51035886\n\nprocessor       : 2\nmodel name      : ARMv8 Processor rev 0 (v8l)\nBogoMIPS        : 62.50\nFeatures        : fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp\nCPU implementer : 0x4e\nCPU architecture: 8\nCPU variant     : 0x0\nCPU part        : 0x004\nCPU revision    : 0\nMTS version     : 51035886\n',
  // Raspberry Pi 4 on a 32-bit kernel (armv7l): CPU architecture 7, a trailing space after the
  // last feature word, 'Hardware : BCM2711'; the serial is left out (truncated in the copy we had).
  // https://github.com/hrw/arm-socs-table/issues/31 (barcik75, 2022-11-14)
  pi4Armv7:
    'processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nBogoMIPS\t: 108.00\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32 \nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\nprocessor\t: 1\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nBogoMIPS\t: 108.00\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32 \nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\nprocessor\t: 2\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nBogoMIPS\t: 108.00\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32 \nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\nprocessor\t: 3\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nBogoMIPS\t: 108.00\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32 \nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\nHardware\t: BCM2711\nRevision\t: c03112\n',
} as const;

t.test('real captures with quirks: offline cores, space alignment, a 32-bit kernel', async (t) => {
  const tx2 = parseCpuInfo(REAL.tx2DenverOffline);
  t.equal(tx2.processors, 4, 'four processor blocks although numbered 0, 3, 4, 5');
  t.same(tx2.coreNames, ['Cortex-A57']);
  t.equal(tx2.features.dotProd, false);
  t.equal(tx2.modelName, 'ARMv8 Processor rev 3 (v8l)');
  const nx = parseCpuInfo(REAL.xavierNx);
  t.equal(nx.processors, 3);
  t.same(nx.coreNames, ['Carmel']);
  t.equal(nx.implementer, '0x4e');
  t.ok(nx.features.fp16 && !nx.features.dotProd, 'asimdhp, no asimddp');
  const pi4 = parseCpuInfo(REAL.pi4Armv7);
  t.equal(pi4.processors, 4);
  t.equal(pi4.armArchitecture, 7);
  t.same(pi4.coreNames, ['Cortex-A72']);
  t.equal(pi4.features.neon, true, "32-bit kernels say 'neon'");
  t.notOk(pi4.features.raw.includes(''), 'the trailing space adds no empty flag word');
  t.equal(pi4.revision, 'c03112');
  t.equal(decodePiRevision(pi4.revision)?.memoryMb, 4096);
  // a Denver 2 core (a TX2 with all cores online) has a name, not 'unknown core'
  t.same(parseCpuInfo('processor\t: 0\nCPU implementer\t: 0x4e\nCPU part\t: 0x003\n').coreNames, ['Denver 2']);
});

t.test('cpuinfo: features are the set common to all cores (big.LITTLE with different Features lines)', async (t) => {
  const text = [
    'processor\t: 0',
    'Features\t: fp asimd asimddp i8mm',
    'CPU implementer\t: 0x41',
    'CPU part\t: 0xd05',
    '',
    'processor\t: 1',
    'Features\t: fp asimd asimddp',
    'CPU implementer\t: 0x41',
    'CPU part\t: 0xd0b',
    '',
  ].join('\n');
  const c = parseCpuInfo(text);
  t.equal(c.processors, 2);
  t.same(c.parts, ['0xd05', '0xd0b']);
  t.same(c.coreNames, ['Cortex-A55', 'Cortex-A76']);
  t.equal(c.features.dotProd, true);
  t.equal(c.features.i8mm, false, 'i8mm on one core only is not usable');
});

t.test('cpuinfo: empty or garbage text gives defaults', async (t) => {
  const c = parseCpuInfo('');
  t.equal(c.processors, 0);
  t.same(c.parts, []);
  t.same(c.features.raw, []);
  t.equal(parseCpuInfo('no colons here\n\n').model, null);
  t.equal(parseCpuInfo('model\t\t: 85\n').model, null, 'x86 numeric model is not a board name');
  t.match(parseCpuInfo('processor\t: 0\nCPU implementer\t: 0x51\nCPU part\t: 0x805\n').coreNames[0], /unknown core 0x51:0x805/);
});

t.test('featuresFromFlags: AVX-VNNI and AMX count as VNNI for int8 advice', async (t) => {
  const alder = featuresFromFlags('sse4_2 avx avx2 fma avx_vnni'.split(' '));
  t.equal(alder.avxVnni, true);
  t.equal(alder.avx512, false);
  t.equal(recommendInt8('x64', alder).reduceRange, false);
  const spr = featuresFromFlags('avx2 avx512f avx512_vnni amx_int8 amx_tile'.split(' '));
  t.equal(spr.amxInt8, true);
  t.equal(recommendInt8('riscv64', featuresFromFlags([])).benefit, 'maybe');
  t.same(int8Rule('x64', spr), { feature: 'avx512_vnni', ...recommendInt8('x64', spr) }, 'the rule names the flag that decided it');
  t.same(int8Rule('x64', featuresFromFlags(['avx2'])).feature, 'avx2');
  t.same(int8Rule('ia32', featuresFromFlags(['avx2'])).reduceRange, true, 'ia32 follows the x86 rows');
  t.same(recommendInt8('arm64', featuresFromFlags(['asimd', 'asimddp'])), {
    activation: 's8',
    weight: 's8',
    perChannel: true,
    reduceRange: false,
    benefit: 'yes',
    reason: 'dot-product (SDOT/UDOT) kernels run s8 or u8 activations with s8 weights natively',
  });
});

t.test('device-tree model strings', async (t) => {
  t.same(parseDeviceTreeModel('Raspberry Pi 4 Model B Rev 1.5\0'), {
    id: 'raspberry-pi-4',
    family: 'raspberry-pi',
    model: 'Raspberry Pi 4 Model B Rev 1.5',
  });
  t.equal(parseDeviceTreeModel('Raspberry Pi Compute Module 4 Rev 1.0\0').id, 'raspberry-pi-4');
  t.equal(parseDeviceTreeModel('Raspberry Pi 3 Model B Rev 1.2').id, 'raspberry-pi-3');
  t.equal(parseDeviceTreeModel('NVIDIA Jetson Xavier NX Developer Kit\0').id, 'jetson-xavier-nx');
  t.equal(parseDeviceTreeModel('NVIDIA Jetson AGX Orin Developer Kit\0').id, 'jetson-agx-orin');
  t.equal(parseDeviceTreeModel('NVIDIA Orin Nano Developer Kit\0').id, 'jetson-orin-nano', 'JetPack 5 spelling without "Jetson"');
  t.same(parseDeviceTreeModel('Pine64 RockPro64 v2.1\0'), { id: null, family: 'other', model: 'Pine64 RockPro64 v2.1' });
  t.same(parseDeviceTreeModel(null), { id: null, family: null, model: null });
  t.same(parseDeviceTreeModel('\0'), { id: null, family: null, model: null });
});

t.test('Raspberry Pi revision codes', async (t) => {
  t.match(decodePiRevision('c03114'), { type: '4B', soc: 'BCM2711', memoryMb: 4096, manufacturer: 'Sony UK', boardRevision: '1.4' });
  t.match(decodePiRevision('d04170'), { type: '5', soc: 'BCM2712', memoryMb: 8192 });
  t.match(decodePiRevision('a020d3'), { type: '3B+', soc: 'BCM2837', memoryMb: 1024, boardRevision: '1.3' });
  t.match(decodePiRevision('902120'), { type: 'Zero 2 W', memoryMb: 512 });
  t.equal(decodePiRevision('000e'), null, 'old-style code has no fields');
  t.equal(decodePiRevision('zz'), null);
  t.equal(decodePiRevision(null), null);
});

t.test('nv_tegra_release', async (t) => {
  t.match(
    parseNvTegraRelease(
      '# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n',
    ),
    {
      version: 'R35.4.1',
      major: 35,
      board: 't186ref',
      jetpack: '5.1.2',
    },
  );
  t.match(parseNvTegraRelease('# R99 (release), REVISION: 1.0, BOARD: x'), { version: 'R99.1.0', jetpack: null });
  t.equal(parseNvTegraRelease('not a release file'), null);
  t.equal(parseNvTegraRelease(null), null);
});

t.test('vcgencmd get_throttled bit field', async (t) => {
  const all = parseThrottled('throttled=0xf000f\n')!;
  t.same(all.now, { underVoltage: true, freqCapped: true, throttled: true, softTempLimit: true });
  t.same(all.sinceBoot, { underVoltage: true, freqCapped: true, throttled: true, softTempLimit: true });
  const past = parseThrottled('throttled=0x20000')!;
  t.same(past.now, { underVoltage: false, freqCapped: false, throttled: false, softTempLimit: false });
  t.equal(past.sinceBoot.freqCapped, true);
  t.equal(past.sinceBoot.underVoltage, false);
  t.equal(describeThrottling(past), 'frequency capped since boot');
  t.equal(describeThrottling(parseThrottled('throttled=0x50005')!), 'under-voltage now; throttled now');
  t.equal(describeThrottling(parseThrottled('throttled=0x0')!), '');
  t.equal(parseThrottled('VCHI initialization failed'), null, 'vcgencmd without /dev/vchiq');
  t.equal(parseThrottled(null), null);
});

t.test('user space width', async (t) => {
  const elf64 = Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 2, 1, 1);
  const elf32 = Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 1, 1, 1);
  t.equal(elfClass(elf64), 64);
  t.equal(elfClass(elf32), 32);
  t.equal(elfClass(Uint8Array.of(0x4d, 0x5a, 0, 0, 0)), null, 'not ELF');
  t.equal(elfClass(null), null);
  t.equal(parseLongBit('64\n'), 64);
  t.equal(parseLongBit('garbage'), null);
  const u = decideUserland({ processArch: 'arm', elfHead: elf32, longBit: '32', machine: 'aarch64' });
  t.match(u, { processBits: 32, elfBits: 32, is64: false, mismatch: true });
  t.match(decideUserland({ processArch: 'arm64', elfHead: elf64, longBit: null, machine: 'aarch64' }), { is64: true, mismatch: false });
  t.match(decideUserland({ processArch: 'arm', elfHead: null, longBit: null, machine: 'armv7l' }), { is64: false, mismatch: false });
});

t.test('probeHardware over a fixture: board facts from the files, warnings for 32-bit user space and under-voltage', async (t) => {
  const { probeHardware } = await import('../../src/profile/probe.js');
  const hw = await probeHardware({ sources: readSourcesFromDir(join(FIXTURES, 'raspberry-pi-3-armhf')) });
  t.equal(hw.arch, 'arm');
  t.equal(hw.board.id, 'raspberry-pi-3');
  t.same(hw.cpu.coreNames, ['Cortex-A53']);
  t.equal(hw.bench, null);
  t.ok(hw.memory.totalMb > 0, 'memory still comes from the live machine');
  t.match(hw.warnings.join('\n'), /64-bit kernel \(aarch64\) with a 32-bit user space/);
  t.match(hw.warnings.join('\n'), /firmware reports under-voltage now; throttled now/);
  const pi4 = await probeHardware({ sources: readSourcesFromDir(join(FIXTURES, 'raspberry-pi-4')) });
  t.same(pi4.warnings, [], 'a healthy 64-bit Pi 4 has nothing to warn about');
});
