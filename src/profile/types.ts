// The hardware profile: what edgefit knows about the box it runs on. Every field has a
// defined "unknown" value (null, false, []), so consumers never test for missing keys.

/** Node's name for the CPU architecture of this process (process.arch). */
export type NodeArch = 'x64' | 'arm64' | 'arm' | 'ia32' | string;

/** CPU instruction-set features that decide which int8 kernels onnxruntime (MLAS) uses. */
export interface CpuFeatures {
  /** Advanced SIMD: 'asimd' on arm64, 'neon' on 32-bit arm. */
  neon: boolean;
  /** Arm dot product (SDOT/UDOT, 'asimddp'): the int8 GEMM kernels that make int8 pay on arm64. */
  dotProd: boolean;
  /** Arm int8 matrix multiply (SMMLA, 'i8mm'). */
  i8mm: boolean;
  /** Arm scalable vectors ('sve'). */
  sve: boolean;
  /** Arm half-precision arithmetic ('asimdhp'/'fphp'). */
  fp16: boolean;
  avx: boolean;
  avx2: boolean;
  fma: boolean;
  /** AVX-512 foundation ('avx512f'). */
  avx512: boolean;
  /** AVX-512 VNNI ('avx512_vnni'): VPDPBUSD, u8 x s8 without saturation. */
  avx512Vnni: boolean;
  /** AVX-VNNI on 256-bit registers ('avx_vnni', Alder Lake and later). */
  avxVnni: boolean;
  /** AMX int8 tiles ('amx_int8'). */
  amxInt8: boolean;
  /** The raw flag words as the kernel printed them (sorted, deduplicated). */
  raw: string[];
}

/** What /proc/cpuinfo says, parsed (see cpuinfo.ts). */
export interface CpuInfo {
  /** Number of 'processor' blocks (logical CPUs online when the file was read). */
  processors: number;
  /** 'model name' (x86 and some arm kernels), else null. */
  modelName: string | null;
  vendorId: string | null;
  /** Arm 'CPU implementer' (0x41 = Arm, 0x4e = NVIDIA), lower-case hex, else null. */
  implementer: string | null;
  /** Distinct Arm 'CPU part' ids in file order (lower-case hex, e.g. '0xd08'); big.LITTLE gives two. */
  parts: string[];
  /** Arm core names derived from the part ids ('Cortex-A72'), same order as parts. */
  coreNames: string[];
  /** Arm 'CPU architecture' (7 or 8), else null. */
  armArchitecture: number | null;
  /** First 'cpu MHz' line (x86; the clock the kernel last saw), else null. */
  mhz: number | null;
  /** 'Hardware' line (Raspberry Pi kernels: 'BCM2835'), else null. */
  hardware: string | null;
  /** 'Revision' line (Raspberry Pi board revision code, hex), else null. */
  revision: string | null;
  /** 'Model' line (Raspberry Pi kernels print the board name here), else null. */
  model: string | null;
  features: CpuFeatures;
}

export type BoardFamily = 'raspberry-pi' | 'jetson' | 'other';

/** The board, from /proc/device-tree/model and /etc/nv_tegra_release. */
export interface BoardInfo {
  /** Normalised id: 'raspberry-pi-4', 'jetson-orin-nano', ... or null when not a known board. */
  id: string | null;
  family: BoardFamily | null;
  /** The model string as the firmware gives it ('Raspberry Pi 4 Model B Rev 1.4'), else null. */
  model: string | null;
  /** Raspberry Pi: decoded revision code (RAM size, SoC), else null. */
  piRevision: PiRevision | null;
  /** Jetson: the L4T release line, else null. */
  l4t: L4tRelease | null;
}

export interface PiRevision {
  code: string;
  /** Board type name from the revision code ('4B', '5', '3B+'). */
  type: string | null;
  soc: string | null;
  memoryMb: number | null;
  manufacturer: string | null;
  /** Board revision as 1.x. */
  boardRevision: string;
}

export interface L4tRelease {
  /** e.g. 'R32.7.1' */
  version: string;
  major: number;
  revision: string;
  /** 't210ref' (Nano), 't186ref' (Xavier, Orin on R35), 'generic' (R36). */
  board: string | null;
  /** The JetPack release this L4T version ships in, when known. */
  jetpack: string | null;
}

/** Decoded `vcgencmd get_throttled` bit field. */
export interface Throttling {
  raw: number;
  now: ThrottleFlags;
  sinceBoot: ThrottleFlags;
}

export interface ThrottleFlags {
  underVoltage: boolean;
  freqCapped: boolean;
  throttled: boolean;
  softTempLimit: boolean;
}

/** Whether user space is 64-bit: a 64-bit kernel under a 32-bit userland is common on old Pi images. */
export interface Userland {
  /** Bits of this Node process (process.arch). */
  processBits: 32 | 64;
  /** ELF class of /proc/self/exe (the Node binary), else null. */
  elfBits: 32 | 64 | null;
  /** `getconf LONG_BIT`, else null. */
  longBit: 32 | 64 | null;
  /** Machine from uname (kernel architecture: 'aarch64', 'armv7l', 'x86_64'). */
  machine: string | null;
  /** True when the kernel is 64-bit but user space is 32-bit (onnxruntime then runs arm32 kernels). */
  mismatch: boolean;
  is64: boolean;
}

export type Int8Benefit = 'yes' | 'maybe' | 'unlikely';

/**
 * The int8 flavour onnxruntime's CPU kernels prefer on this CPU, following onnxruntime's
 * quantization guidance: VNNI and Arm dot-product run u8/s8 or s8/s8 natively; x86 without
 * VNNI multiplies u8 x s8 with VPMADDUBSW, whose int16 sums can saturate, hence 7-bit weights
 * (reduce_range); Arm without dot-product has only widening NEON multiplies.
 */
export interface Int8Flavour {
  activation: 'u8' | 's8';
  weight: 's8' | 'u8';
  perChannel: boolean;
  reduceRange: boolean;
  benefit: Int8Benefit;
  /** Why, in one sentence. */
  reason: string;
}

export interface Temperatures {
  /** CPU package/main temperature in degrees C, else null (VMs have no sensors). */
  mainC: number | null;
  maxC: number | null;
}

/** int8 throughput of one activation type, and its ratio to fp32 measured in the same run. */
export interface Int8Measure {
  gops: number;
  speedup: number;
}

/** One kernel family measured in fp32 and int8 (both activation types, s8 weights). */
export interface KernelBench {
  /** Problem size, e.g. '128x1024 * 1024x1024'. */
  shape: string;
  fp32Op: string;
  int8Op: string;
  fp32Gops: number;
  int8: { u8: Int8Measure; s8: Int8Measure };
}

/** Micro-benchmark results (see bench.ts). Throughputs in giga-operations per second (multiply-add = 2 ops). */
export interface BenchResult {
  threads: number;
  gemm: KernelBench;
  conv: KernelBench;
  /** The int8 activation type that ran faster here, summed over GEMM and Conv. */
  fastestInt8Activation: 'u8' | 's8';
  /** Best int8 speed-up over fp32 (GEMM and Conv geometric mean, fastest activation type). */
  int8Speedup: number;
  /** Buffer copy bandwidth in GB/s, counting bytes read plus bytes written. */
  memoryGBps: number;
  /** Wall time of the whole benchmark. */
  elapsedMs: number;
}

export interface HardwareProfile {
  /** Node's process.arch. */
  arch: NodeArch;
  platform: string;
  cpu: {
    vendor: string | null;
    brand: string | null;
    /** Logical CPUs. */
    cores: number;
    physicalCores: number;
    /** Current/min/max clock in MHz, null when the kernel does not expose cpufreq (VMs). */
    speedMHz: number | null;
    speedMinMHz: number | null;
    speedMaxMHz: number | null;
    governor: string | null;
    parts: string[];
    coreNames: string[];
    features: CpuFeatures;
  };
  memory: { totalMb: number; availableMb: number; swapTotalMb: number };
  load: { avg1: number | null; currentPct: number | null };
  temperature: Temperatures;
  board: BoardInfo;
  throttling: Throttling | null;
  userland: Userland;
  int8: Int8Flavour;
  bench: BenchResult | null;
  /** Problems met while probing (a missing tool, an unreadable file): informative, never fatal. */
  warnings: string[];
}
