// Board identification from firmware text: /proc/device-tree/model (Raspberry Pi, Jetson),
// the Raspberry Pi revision code in /proc/cpuinfo, and Jetson's /etc/nv_tegra_release.
// Pure functions over text; probe.ts does the reading.
import type { BoardInfo, L4tRelease, PiRevision } from './types.js';

/** Device-tree model patterns, most specific first. The id names the board profile it maps to. */
export const BOARD_PATTERNS = [
  { id: 'raspberry-pi-5', family: 'raspberry-pi', re: /^Raspberry Pi 5\b/i },
  { id: 'raspberry-pi-4', family: 'raspberry-pi', re: /^Raspberry Pi 4\b|^Raspberry Pi Compute Module 4\b|^Raspberry Pi 400\b/i },
  { id: 'raspberry-pi-3', family: 'raspberry-pi', re: /^Raspberry Pi 3\b|^Raspberry Pi Compute Module 3\b/i },
  { id: 'jetson-orin-nano', family: 'jetson', re: /\bOrin Nano\b/i },
  { id: 'jetson-orin-nx', family: 'jetson', re: /\bOrin NX\b/i },
  { id: 'jetson-agx-orin', family: 'jetson', re: /\bAGX Orin\b/i },
  { id: 'jetson-xavier-nx', family: 'jetson', re: /\bXavier NX\b/i },
  // L4T R32 names the AGX Xavier devkit just 'Jetson-AGX'
  { id: 'jetson-xavier', family: 'jetson', re: /^Jetson-AGX$|\bAGX Xavier\b/i },
  { id: 'jetson-nano', family: 'jetson', re: /\bJetson Nano\b/i },
  { id: 'jetson-tx2', family: 'jetson', re: /\bJetson TX2\b|\bquill\b/i },
] as const;

/** The device-tree string is NUL-terminated; strip that and surrounding whitespace. */
export function cleanDeviceTreeString(text: string): string {
  return text.replace(/\0+/g, '').trim();
}

/** Identify the board from a device-tree model string ('' or null when absent). */
export function parseDeviceTreeModel(text: string | null): Pick<BoardInfo, 'id' | 'family' | 'model'> {
  const model = text === null ? '' : cleanDeviceTreeString(text);
  if (!model) return { id: null, family: null, model: null };
  for (const p of BOARD_PATTERNS) if (p.re.test(model)) return { id: p.id, family: p.family, model };
  return { id: null, family: 'other', model };
}

// Raspberry Pi new-style revision code, bit layout NOQuuuWuFMMMCCCCPPPPTTTTTTTTRRRR
// (Raspberry Pi documentation, "Raspberry Pi revision codes").
const PI_TYPES: Record<number, string> = {
  0x00: 'A',
  0x01: 'B',
  0x02: 'A+',
  0x03: 'B+',
  0x04: '2B',
  0x06: 'CM1',
  0x08: '3B',
  0x09: 'Zero',
  0x0a: 'CM3',
  0x0c: 'Zero W',
  0x0d: '3B+',
  0x0e: '3A+',
  0x10: 'CM3+',
  0x11: '4B',
  0x12: 'Zero 2 W',
  0x13: '400',
  0x14: 'CM4',
  0x15: 'CM4S',
  0x17: '5',
  0x18: 'CM5',
  0x19: '500',
  0x1a: 'CM5 Lite',
};
const PI_SOCS = ['BCM2835', 'BCM2836', 'BCM2837', 'BCM2711', 'BCM2712'] as const;
const PI_MAKERS = ['Sony UK', 'Egoman', 'Embest', 'Sony Japan', 'Embest', 'Stadium'] as const;
const PI_MEMORY_MB = [256, 512, 1024, 2048, 4096, 8192, 16384] as const;

/** Decode a Raspberry Pi revision code ('c03114'); null for old-style codes or garbage. */
export function decodePiRevision(code: string | null): PiRevision | null {
  if (!code) return null;
  const hex = code.trim().toLowerCase().replace(/^0x/, '');
  if (!/^[0-9a-f]{1,8}$/.test(hex)) return null;
  const v = Number.parseInt(hex, 16);
  // bit 23 set = new-style code; old-style codes (Pi 1 era) carry no fields to decode
  if (((v >>> 23) & 1) === 0) return null;
  const type = (v >>> 4) & 0xff;
  const soc = (v >>> 12) & 0xf;
  const maker = (v >>> 16) & 0xf;
  const mem = (v >>> 20) & 0x7;
  return {
    code: hex,
    type: PI_TYPES[type] ?? null,
    soc: PI_SOCS[soc] ?? null,
    memoryMb: PI_MEMORY_MB[mem] ?? null,
    manufacturer: PI_MAKERS[maker] ?? null,
    boardRevision: `1.${v & 0xf}`,
  };
}

/** L4T release -> JetPack release, for the versions Jetson Nano/Xavier/Orin boards ship with. */
const JETPACK: Record<string, string> = {
  'R32.4.3': '4.4',
  'R32.4.4': '4.4.1',
  'R32.5.0': '4.5',
  'R32.5.1': '4.5.1',
  'R32.5.2': '4.5.1',
  'R32.6.1': '4.6',
  'R32.7.1': '4.6.1',
  'R32.7.2': '4.6.2',
  'R32.7.3': '4.6.3',
  'R32.7.4': '4.6.4',
  'R32.7.5': '4.6.5',
  'R32.7.6': '4.6.6',
  'R35.1.0': '5.0.2',
  'R35.2.1': '5.1',
  'R35.3.1': '5.1.1',
  'R35.4.1': '5.1.2',
  'R35.5.0': '5.1.3',
  'R35.6.0': '5.1.4',
  'R36.2.0': '6.0 DP',
  'R36.3.0': '6.0',
  'R36.4.0': '6.1',
  'R36.4.3': '6.2',
};

/** Parse /etc/nv_tegra_release: '# R32 (release), REVISION: 7.1, GCID: ..., BOARD: t210ref, ...'. */
export function parseNvTegraRelease(text: string | null): L4tRelease | null {
  if (!text) return null;
  const m = /#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)/i.exec(text);
  if (!m) return null;
  const major = Number(m[1]);
  const revision = m[2]!.replace(/\.$/, '');
  const version = `R${major}.${revision}`;
  const board = /BOARD:\s*([^,\s]+)/i.exec(text)?.[1] ?? null;
  return { version, major, revision, board, jetpack: JETPACK[version] ?? null };
}

/** Combine the firmware sources into one BoardInfo. */
export function identifyBoard(src: {
  deviceTreeModel: string | null;
  cpuinfoModel: string | null;
  cpuinfoRevision: string | null;
  nvTegraRelease: string | null;
}): BoardInfo {
  // the device tree is authoritative; Raspberry Pi kernels also echo it as cpuinfo 'Model'
  let b = parseDeviceTreeModel(src.deviceTreeModel);
  if (b.id === null && src.cpuinfoModel) {
    const fromCpu = parseDeviceTreeModel(src.cpuinfoModel);
    if (fromCpu.id !== null) b = fromCpu;
  }
  const l4t = parseNvTegraRelease(src.nvTegraRelease);
  // a Jetson whose device tree is hidden (containers) still has nv_tegra_release
  if (b.id === null && l4t) b = { id: null, family: 'jetson', model: b.model };
  return {
    ...b,
    piRevision: b.family === 'raspberry-pi' ? decodePiRevision(src.cpuinfoRevision) : null,
    l4t,
  };
}
