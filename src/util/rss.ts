// Resident set size of this process. Under qemu-user emulation process.memoryUsage().rss reads 0
// (libuv asks the kernel for the emulator's view, which it cannot map), while /proc/self/status
// still carries VmRSS: one helper, so every place that reads RSS (agent metrics, probes, trainer
// RAM guard, serving) gets a real number there too.
import { readFileSync } from 'node:fs';

/** VmRSS of a /proc/<pid>/status text, in bytes; null when absent. */
export function parseVmRss(status: string): number | null {
  const m = /^VmRSS:\s*(\d+)\s*kB\s*$/m.exec(status);
  return m ? Number(m[1]) * 1024 : null;
}

/** RSS in bytes: Node's own figure, else /proc/self/status VmRSS, else 0. */
export function rssBytes(fromNode: () => number = () => process.memoryUsage.rss()): number {
  const r = fromNode();
  if (Number.isFinite(r) && r > 0) return r;
  try {
    return parseVmRss(readFileSync('/proc/self/status', 'latin1')) ?? 0;
  } catch {
    return 0;
  }
}

/** RSS in MiB. */
export const rssMb = (): number => rssBytes() / 2 ** 20;
