// The raw text edgefit reads about the machine, gathered in one place so that interpretation
// (interpret.ts) is a pure function: tests feed it a fixture folder per board, the probe feeds
// it the live files. Every read is optional: a missing file or tool is null, never an error.
import { execFile } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { machine } from 'node:os';
import { join } from 'node:path';

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
}

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
  };
}

/**
 * Read a fixture folder laid out like test/profile/fixtures/<board>/: cpuinfo, device-tree-model,
 * nv_tegra_release, vcgencmd_get_throttled, uname_m, getconf_LONG_BIT, node_arch.
 */
export function readSourcesFromDir(dir: string): RawSources {
  const t = (name: string): string | null => readText(join(dir, name));
  return {
    cpuinfo: t('cpuinfo'),
    deviceTreeModel: t('device-tree-model'),
    nvTegraRelease: t('nv_tegra_release'),
    throttled: t('vcgencmd_get_throttled'),
    machine: t('uname_m')?.trim() ?? null,
    longBit: t('getconf_LONG_BIT'),
    elfHead: null,
    processArch: t('node_arch')?.trim() || process.arch,
  };
}
