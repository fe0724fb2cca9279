// The raw text edgefit reads about the machine, gathered in one place so that interpretation
// (interpret.ts) is a pure function. Two readers fill it: the live machine, and a "facts folder"
// of captured files in one documented layout (FACT_FILES below; docs/facts-dir.md), which tests,
// emulation (qemu-user needs an arm64 /proc/cpuinfo view) and support ("send us your facts
// folder") use. Every read is optional: a missing file or tool is null ("unknown"), never an error.
import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { machine } from 'node:os';
import { join } from 'node:path';
import { EdgefitError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';

/** One /sys/class/thermal zone: its type ('cpu-thermal', 'CPU-therm', ...) and temperature. */
export interface ThermalZone {
  zone: number;
  type: string | null;
  tempC: number | null;
}

export interface RawSources {
  cpuinfo: string | null;
  /** /proc/device-tree/model (NUL-terminated as the kernel gives it). */
  deviceTreeModel: string | null;
  /** /etc/nv_tegra_release */
  nvTegraRelease: string | null;
  /** output of `vcgencmd get_throttled` */
  throttled: string | null;
  /** `uname -m` (kernel architecture) */
  machine: string | null;
  /** `getconf LONG_BIT` */
  longBit: string | null;
  /** first bytes of /proc/self/exe */
  elfHead: Uint8Array | null;
  /** process.arch of the Node process that will run onnxruntime */
  processArch: string;
  /** /sys/class/thermal/thermal_zone*, in zone order; [] when there are none */
  thermal: ThermalZone[];
  /** where these facts came from: the live machine, or a facts folder (its path) */
  origin: 'live' | { factsDir: string };
}

/**
 * The facts-folder layout: file name in the folder -> what it holds. One table for the reader,
 * the capture and the docs. Thermal zones are the folders thermal/zone<N>/ with files `type`
 * and `temp` (millidegrees Celsius, as in /sys/class/thermal/thermal_zone<N>/).
 */
export const FACT_FILES = {
  cpuinfo: '/proc/cpuinfo',
  'device-tree-model': '/proc/device-tree/model',
  nv_tegra_release: '/etc/nv_tegra_release',
  vcgencmd_get_throttled: 'output of `vcgencmd get_throttled`',
  uname_m: 'output of `uname -m`',
  getconf_LONG_BIT: 'output of `getconf LONG_BIT`',
  node_arch: 'process.arch of the Node that runs edgefit',
} as const;

const SYS_THERMAL = '/sys/class/thermal';
/** Sensors outside this range are unplugged inputs or error codes, not temperatures. */
const PLAUSIBLE_C = { min: -40, max: 150 } as const;

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return null;
  }
}

function readHead(path: string, n: number): Uint8Array | null {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Run a fixed tool with an argument array and a short timeout; null when absent or failing. */
export function runTool(file: string, args: readonly string[], timeoutMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(file, [...args], { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 64 * 1024 }, (err, stdout) => {
      resolve(err ? null : stdout);
    });
  });
}

/** '45250\n' (millidegrees) -> 45.25; null for garbage or implausible readings. */
export function parseThermalTemp(text: string | null): number | null {
  const v = text?.trim();
  if (!v || !/^-?\d+$/.test(v)) return null;
  const c = Number(v) / 1000;
  return c >= PLAUSIBLE_C.min && c <= PLAUSIBLE_C.max ? c : null;
}

/** Zones under `dir` whose entries match `re` (capture group 1 = zone number), in zone order. */
function readZones(dir: string, re: RegExp): ThermalZone[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const zones: ThermalZone[] = [];
  for (const name of names) {
    const m = re.exec(name);
    if (!m) continue;
    const z = join(dir, name);
    zones.push({ zone: Number(m[1]), type: readText(join(z, 'type'))?.trim() || null, tempC: parseThermalTemp(readText(join(z, 'temp'))) });
  }
  return zones.sort((a, b) => a.zone - b.zone);
}

/** Read the live machine. `vcgencmd` only exists on Raspberry Pi OS; elsewhere it is simply null. */
export async function readLiveSources(): Promise<RawSources> {
  const [throttled, longBit] = await Promise.all([runTool('vcgencmd', ['get_throttled']), runTool('getconf', ['LONG_BIT'])]);
  return {
    cpuinfo: readText('/proc/cpuinfo'),
    deviceTreeModel: readText('/proc/device-tree/model') ?? readText('/sys/firmware/devicetree/base/model'),
    nvTegraRelease: readText('/etc/nv_tegra_release'),
    throttled,
    machine: machine(),
    longBit,
    elfHead: readHead('/proc/self/exe', 16),
    processArch: process.arch,
    thermal: readZones(SYS_THERMAL, /^thermal_zone(\d+)$/),
    origin: 'live',
  };
}

/**
 * Read a facts folder laid out as FACT_FILES (test/profile/fixtures/<board>/ are such folders).
 * A missing file is an unknown fact; only a folder that does not exist is an error, because
 * then the user mistyped it and would otherwise get a silently empty profile.
 */
export function readSourcesFromDir(dir: string): RawSources {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new EdgefitError('FILE_NOT_FOUND', `facts folder not found: ${dir} (expected a folder written by a facts capture)`);
  const t = (name: keyof typeof FACT_FILES): string | null => readText(join(dir, name));
  return {
    cpuinfo: t('cpuinfo'),
    deviceTreeModel: t('device-tree-model'),
    nvTegraRelease: t('nv_tegra_release'),
    throttled: t('vcgencmd_get_throttled'),
    machine: t('uname_m')?.trim() || null,
    longBit: t('getconf_LONG_BIT'),
    elfHead: null,
    processArch: t('node_arch')?.trim() || process.arch,
    thermal: readZones(join(dir, 'thermal'), /^zone(\d+)$/),
    origin: { factsDir: dir },
  };
}

/**
 * A Raspberry Pi's cpuinfo ends with its board serial number: a unique id the parsers never
 * read, so a capture meant to be sent to support blanks it (the line stays, as a marker).
 */
export function redactSerial(cpuinfo: string): string {
  return cpuinfo.replace(/^(Serial\s*:\s*)([0-9a-fA-F]+)\s*$/gm, (_, k: string, v: string) => `${k}${'0'.repeat(v.length)}`);
}

/**
 * `edgefit profile --capture DIR`: write this machine's facts into DIR in the FACT_FILES layout,
 * so a user can send the folder and we can run `edgefit profile --facts-dir DIR` on it. Returns
 * the files written (relative to DIR). Refuses a DIR that already holds a capture: facts from two
 * machines mixed in one folder would describe neither.
 */
export async function captureSources(dir: string): Promise<string[]> {
  if (existsSync(join(dir, 'cpuinfo')) || existsSync(join(dir, 'node_arch')))
    throw new EdgefitError('USAGE', `${dir} already holds a facts capture; capture into a new, empty folder`);
  const raw = await readLiveSources();
  const files: Array<[string, string | null]> = [
    ['cpuinfo', raw.cpuinfo === null ? null : redactSerial(raw.cpuinfo)],
    ['device-tree-model', raw.deviceTreeModel],
    ['nv_tegra_release', raw.nvTegraRelease],
    ['vcgencmd_get_throttled', raw.throttled],
    ['uname_m', raw.machine === null ? null : `${raw.machine}\n`],
    ['getconf_LONG_BIT', raw.longBit],
    ['node_arch', `${raw.processArch}\n`],
  ];
  const written: string[] = [];
  for (const [name, text] of files) {
    if (text === null) continue;
    writeFileAtomic(join(dir, name), Buffer.from(text, 'latin1'));
    written.push(name);
  }
  // thermal zones are copied as the kernel prints them (millidegrees), not as parsed
  for (const z of readZoneFiles(SYS_THERMAL)) {
    for (const [f, text] of Object.entries(z.files)) {
      if (text === null) continue;
      const rel = join('thermal', `zone${z.zone}`, f);
      writeFileAtomic(join(dir, rel), Buffer.from(text, 'latin1'));
      written.push(rel);
    }
  }
  return written;
}

function readZoneFiles(dir: string): Array<{ zone: number; files: { type: string | null; temp: string | null } }> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: Array<{ zone: number; files: { type: string | null; temp: string | null } }> = [];
  for (const name of names) {
    const m = /^thermal_zone(\d+)$/.exec(name);
    if (!m) continue;
    out.push({ zone: Number(m[1]), files: { type: readText(join(dir, name, 'type')), temp: readText(join(dir, name, 'temp')) } });
  }
  return out.sort((a, b) => a.zone - b.zone);
}
