// probeHardware(): systeminformation for CPU, clocks, memory, load and temperature, plus
// edgefit's own parsers for what it lacks (board, throttling, CPU features, user space, int8).
// Every part starts from a defaulted value and is filled when its source answers, so a VM
// without sensors or cpufreq still yields a complete profile.
import { availableParallelism, cpus, loadavg, totalmem, freemem } from 'node:os';
import si from 'systeminformation';
import { interpretSources } from './interpret.js';
import { readLiveSources, readSourcesFromDir, type RawSources, type ThermalZone } from './sources.js';
import { describeThrottling } from './throttle.js';
import type { HardwareProfile } from './types.js';

export interface ProbeOptions {
  /** Also run the onnxruntime micro-benchmark (about 8 s). */
  bench?: boolean;
  /** Threads for the benchmark (default: physical cores). */
  benchThreads?: number;
  /** Per-kernel measuring time for the benchmark, ms. */
  benchBudgetMs?: number;
  /** Read these sources instead of the live machine (tests). */
  sources?: RawSources;
  /**
   * Read every hardware fact from this facts folder (the layout of sources.ts FACT_FILES)
   * instead of the live machine; memory and load still describe the running machine.
   */
  factsDir?: string | null;
}

const MB = 1024 * 1024;
const positive = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) && x > 0 ? x : null);

/** Run a systeminformation call; a failure becomes a warning and the default. */
async function attempt<T>(what: string, fn: () => Promise<T>, warnings: string[]): Promise<T | null> {
  try {
    return await fn();
  } catch (e) {
    warnings.push(`${what} unavailable: ${e instanceof Error ? e.message : String(e)}`);
    return null;
  }
}

/** The CPU's zone ('cpu-thermal' on a Pi, 'CPU-therm' on Jetson, 'x86_pkg_temp') else the first; and the hottest. */
export function thermalSummary(zones: readonly ThermalZone[]): { mainC: number | null; maxC: number | null } {
  const known = zones.filter((z) => z.tempC !== null);
  if (known.length === 0) return { mainC: null, maxC: null };
  const cpu = known.find((z) => /cpu|x86_pkg|soc/i.test(z.type ?? '')) ?? known[0]!;
  return { mainC: cpu.tempC, maxC: Math.max(...known.map((z) => z.tempC!)) };
}

export async function probeHardware(opts: ProbeOptions = {}): Promise<HardwareProfile> {
  const warnings: string[] = [];
  const raw = opts.sources ?? (opts.factsDir ? readSourcesFromDir(opts.factsDir) : await readLiveSources());
  // from a facts folder, CPU and temperature facts come from its files only: systeminformation
  // would describe the machine we run on (under emulation: the x86 host), not the captured board
  const live = raw.origin === 'live';
  const hw = interpretSources(raw);
  const [cpu, speed, mem, load, temp] = await Promise.all([
    live ? attempt('cpu', () => si.cpu(), warnings) : null,
    live ? attempt('cpu speed', () => si.cpuCurrentSpeed(), warnings) : null,
    attempt('memory', () => si.mem(), warnings),
    attempt('load', () => si.currentLoad(), warnings),
    live ? attempt('temperature', () => si.cpuTemperature(), warnings) : null,
  ]);
  const zones = thermalSummary(raw.thermal);

  // without cpufreq (VMs) systeminformation reports 0; /proc/cpuinfo's 'cpu MHz' still knows
  const cpuinfoMhz = hw.cpuinfo.mhz !== null ? Math.round(hw.cpuinfo.mhz) : null;
  const osSpeed = live ? (positive(cpus()[0]?.speed) ?? cpuinfoMhz) : cpuinfoMhz;
  const cores = positive(cpu?.cores) ?? (hw.cpuinfo.processors || availableParallelism());
  const profile: HardwareProfile = {
    arch: hw.arch,
    platform: process.platform,
    cpu: {
      vendor: cpu?.manufacturer || hw.cpuinfo.vendorId,
      brand: cpu?.brand || hw.cpuinfo.modelName || hw.cpuinfo.coreNames.join(' + ') || null,
      cores,
      physicalCores: positive(cpu?.physicalCores) ?? cores,
      speedMHz: positive(speed?.avg) !== null ? Math.round(speed!.avg * 1000) : osSpeed,
      speedMinMHz: positive(cpu?.speedMin) !== null ? Math.round(cpu!.speedMin * 1000) : null,
      speedMaxMHz: positive(cpu?.speedMax) !== null ? Math.round(cpu!.speedMax * 1000) : null,
      governor: cpu?.governor || null,
      parts: hw.cpuinfo.parts,
      coreNames: hw.cpuinfo.coreNames,
      features: hw.cpuinfo.features,
    },
    memory: {
      totalMb: Math.round((positive(mem?.total) ?? totalmem()) / MB),
      availableMb: Math.round((positive(mem?.available) ?? freemem()) / MB),
      swapTotalMb: Math.round((mem?.swaptotal ?? 0) / MB),
    },
    load: { avg1: loadavg()[0] ?? null, currentPct: typeof load?.currentLoad === 'number' ? Math.round(load.currentLoad * 10) / 10 : null },
    temperature: { mainC: positive(temp?.main) ?? zones.mainC, maxC: positive(temp?.max) ?? zones.maxC },
    board: hw.board,
    throttling: hw.throttling,
    userland: hw.userland,
    int8: hw.int8,
    bench: null,
    warnings,
  };

  if (hw.cpuinfo.features.raw.length === 0) warnings.push('no CPU feature flags found in /proc/cpuinfo; int8 advice is a guess');
  if (hw.userland.mismatch)
    warnings.push(
      `64-bit kernel (${hw.userland.machine}) with a 32-bit user space: onnxruntime runs its slower arm32 kernels; a 64-bit OS is faster`,
    );
  if (hw.throttling) {
    const d = describeThrottling(hw.throttling);
    if (d) warnings.push(`firmware reports ${d}: measurements on this box may understate its speed`);
  }

  if (opts.bench) {
    // loaded on demand: onnxruntime's native addon costs start-up time every other command would pay
    const { runBench } = await import('./bench.js');
    const bench = await runBench({ threads: opts.benchThreads ?? profile.cpu.physicalCores, budgetMs: opts.benchBudgetMs });
    profile.bench = bench;
    if (bench.fastestInt8Activation !== profile.int8.activation) {
      warnings.push(`benchmark: ${bench.fastestInt8Activation} activations ran faster than the recommended ${profile.int8.activation}`);
    }
  }
  return profile;
}
