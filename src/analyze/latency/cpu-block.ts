// The channel block this CPU's convolution kernels work in, from its features alone: the one rule
// `--round auto` falls back to when no latency tables were measured, and the table builder's
// fallback when its staircase probe is inconclusive. onnxruntime's NCHWc convolutions (MLAS) pack
// channels by the vector width in floats: 16 with AVX-512, 8 with AVX2; its arm64 NEON kernels
// work on 4 floats. Other CPUs: no block (1). Structural argument (not profile/'s CpuFeatures type:
// analyze/ sits below profile/), so a parsed /proc/cpuinfo or a hand-written object both fit.

/** The few CPU features the rule reads. */
export interface BlockFeatures {
  avx512: boolean;
  avx2: boolean;
}

const RULES = [
  { when: (f: BlockFeatures) => f.avx512, block: 16, why: 'AVX-512: 16 floats per vector' },
  { when: (f: BlockFeatures) => f.avx2, block: 8, why: 'AVX2: 8 floats per vector' },
  { when: (_f: BlockFeatures, arch: string) => arch === 'arm64', block: 4, why: 'arm64 NEON: 4 floats per vector' },
] as const;

/** Channel block for a CPU with features `f` on architecture `arch` (Node's process.arch names). */
export function blockForCpu(f: BlockFeatures, arch: string = process.arch): number {
  return RULES.find((r) => r.when(f, arch))?.block ?? 1;
}
