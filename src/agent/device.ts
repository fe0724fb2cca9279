// Stable device identity and the live system readings that go into every metrics message.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, hostname, loadavg, totalmem } from 'node:os';
import type { MetricsPayload } from '../telemetry/payloads.js';

/** sha256 of /etc/machine-id (never published raw: it is a secret-ish host identifier). */
export function defaultDeviceId(): string {
  let seed: string;
  try {
    seed = readFileSync('/etc/machine-id', 'utf8').trim();
  } catch {
    seed = `host:${hostname()}`;
  }
  return createHash('sha256').update(`edgefit:${seed}`).digest('hex').slice(0, 16);
}

function readNum(path: string): number | null {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

export function temperatureC(): number | null {
  const milli = readNum('/sys/class/thermal/thermal_zone0/temp');
  return milli === null ? null : Math.round(milli / 100) / 10;
}

export function memAvailableMb(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Math.round(Number(m[1]) / 1024);
  } catch {
    /* not Linux */
  }
  return 0;
}

/** What the metrics payload reports of the box (its schema owns the field list). */
export type SystemReading = MetricsPayload['system'];

export function readSystem(throttled: () => boolean | null): SystemReading {
  const cores = Math.max(1, cpus().length);
  return {
    cpuLoad: Math.round((loadavg()[0]! / cores) * 1000) / 1000,
    cores,
    temperatureC: temperatureC(),
    throttled: throttled(),
    memTotalMb: Math.round(totalmem() / 1048576),
    memAvailableMb: memAvailableMb(),
  };
}

/** Agent CPU% since the previous call (user+system over wall time). */
export class CpuMeter {
  private last = process.cpuUsage();
  private lastT = performance.now();
  read(): number {
    const now = process.cpuUsage();
    const t = performance.now();
    const used = (now.user - this.last.user + now.system - this.last.system) / 1000;
    const pct = t > this.lastT ? (100 * used) / (t - this.lastT) : 0;
    this.last = now;
    this.lastT = t;
    return Math.round(pct * 100) / 100;
  }
}
