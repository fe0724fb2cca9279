// /proc/cpuinfo parser: a pure function over the text, so every board's layout is testable
// from a fixture. x86 prints 'flags'; arm64 prints 'Features' plus implementer/part ids;
// Raspberry Pi kernels append Hardware/Revision/Serial/Model lines after the last processor.
import type { CpuFeatures, CpuInfo } from './types.js';

/** Arm part ids (implementer 0x41 = Arm Ltd, 0x4e = NVIDIA) to core names. */
export const ARM_PARTS = {
  '0x41:0xd03': 'Cortex-A53',
  '0x41:0xd04': 'Cortex-A35',
  '0x41:0xd05': 'Cortex-A55',
  '0x41:0xd07': 'Cortex-A57',
  '0x41:0xd08': 'Cortex-A72',
  '0x41:0xd09': 'Cortex-A73',
  '0x41:0xd0a': 'Cortex-A75',
  '0x41:0xd0b': 'Cortex-A76',
  '0x41:0xd0c': 'Neoverse-N1',
  '0x41:0xd0d': 'Cortex-A77',
  '0x41:0xd40': 'Neoverse-V1',
  '0x41:0xd41': 'Cortex-A78',
  '0x41:0xd42': 'Cortex-A78AE',
  '0x41:0xd44': 'Cortex-X1',
  '0x41:0xd46': 'Cortex-A510',
  '0x41:0xd47': 'Cortex-A710',
  '0x41:0xd49': 'Neoverse-N2',
  '0x41:0xd4f': 'Neoverse-V2',
  '0x4e:0x003': 'Denver 2',
  '0x4e:0x004': 'Carmel',
} as const;

/** Split into key/value pairs per line; keys keep their inner spaces ('CPU part'). */
function lines(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    out.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
  }
  return out;
}

/** Lower-case hex at the kernel's width: implementers have 2 digits ('0x41'), parts 3 ('0x004'). */
function normHex(v: string, width: number): string | null {
  const m = /^0x([0-9a-f]+)$/i.exec(v.trim());
  if (!m) return null;
  return `0x${m[1]!
    .toLowerCase()
    .replace(/^0+(?=.)/, '')
    .padStart(width, '0')}`;
}

/** Decode the flag words of a 'flags' (x86) or 'Features' (arm) line. */
export function featuresFromFlags(words: Iterable<string>): CpuFeatures {
  const set = new Set<string>();
  for (const w of words) if (w) set.add(w.toLowerCase());
  const has = (w: string): boolean => set.has(w);
  return {
    // arm64 always has Advanced SIMD ('asimd'); 32-bit kernels print 'neon'
    neon: has('asimd') || has('neon'),
    dotProd: has('asimddp'),
    i8mm: has('i8mm'),
    sve: has('sve'),
    fp16: has('asimdhp') || has('fphp'),
    avx: has('avx'),
    avx2: has('avx2'),
    fma: has('fma'),
    avx512: has('avx512f'),
    avx512Vnni: has('avx512_vnni'),
    avxVnni: has('avx_vnni'),
    amxInt8: has('amx_int8'),
    raw: [...set].sort(),
  };
}

/**
 * Parse /proc/cpuinfo. Features are those shared by every processor block: on a
 * heterogeneous CPU the kernel may schedule onto any core, so only the common set is usable.
 */
export function parseCpuInfo(text: string): CpuInfo {
  let processors = 0;
  let modelName: string | null = null;
  let vendorId: string | null = null;
  let implementer: string | null = null;
  let armArchitecture: number | null = null;
  let hardware: string | null = null;
  let mhz: number | null = null;
  let revision: string | null = null;
  let model: string | null = null;
  const parts: string[] = [];
  const implementerOfPart = new Map<string, string>();
  // flag words common to every processor block seen so far (undefined before the first)
  const commonBox: { words?: Set<string> } = {};
  let currentImplementer: string | null = null;

  for (const [key, value] of lines(text)) {
    switch (key.toLowerCase()) {
      case 'processor':
        // arm32 kernels older than 3.8 print 'Processor : ARMv7 ...' once, not a per-CPU index
        if (/^\d+$/.test(value)) processors++;
        else modelName ??= value;
        break;
      case 'model name':
        modelName ??= value;
        break;
      case 'vendor_id':
        vendorId ??= value;
        break;
      case 'flags':
      case 'features': {
        const words = new Set<string>(value.split(/\s+/).filter((w) => w.length > 0));
        const prev = commonBox.words;
        commonBox.words = prev === undefined ? words : new Set([...prev].filter((w) => words.has(w)));
        break;
      }
      case 'cpu implementer':
        currentImplementer = normHex(value, 2);
        implementer ??= currentImplementer;
        break;
      case 'cpu architecture': {
        const n = Number.parseInt(value, 10);
        if (Number.isFinite(n)) armArchitecture ??= n;
        break;
      }
      case 'cpu part': {
        const p = normHex(value, 3);
        if (p && !parts.includes(p)) {
          parts.push(p);
          implementerOfPart.set(p, currentImplementer ?? '0x41');
        }
        break;
      }
      case 'cpu mhz': {
        const f = Number.parseFloat(value);
        if (mhz === null && Number.isFinite(f) && f > 0) mhz = f;
        break;
      }
      case 'hardware':
        hardware = value;
        break;
      case 'revision':
        revision = value.toLowerCase();
        break;
      case 'model':
        // x86 has 'model : 1' (a number); Raspberry Pi kernels put the board name here
        if (!/^\d+$/.test(value)) model = value;
        break;
      default:
        break;
    }
  }
  const coreNames = parts.map((p) => {
    const key = `${implementerOfPart.get(p)}:${p}` as keyof typeof ARM_PARTS;
    return ARM_PARTS[key] ?? `unknown core ${implementerOfPart.get(p)}:${p}`;
  });
  return {
    processors,
    modelName,
    vendorId,
    implementer,
    parts,
    coreNames,
    armArchitecture,
    mhz,
    hardware,
    revision,
    model,
    features: featuresFromFlags(commonBox.words ?? []),
  };
}
