// Which int8 flavour onnxruntime's CPU kernels (MLAS) run best here, and whether int8 pays at
// all: the one table of these hardware facts (the profile reports it, quantize follows it).
// Source: onnxruntime "Quantize ONNX models" guidance (data type selection, reduce-range)
// and MLAS's kernel dispatch: x86 VNNI has VPDPBUSD (u8 x s8, no saturation); x86 AVX2/AVX-512
// without VNNI uses VPMADDUBSW, whose int16 pair sums saturate unless weights are 7-bit
// (reduce_range); arm64 with dot-product has SDOT/UDOT kernels for s8 and u8 activations.
import type { CpuFeatures, Int8Flavour } from './types.js';

/** The /proc/cpuinfo flag word that decides a rule, or 'none'. */
export type Int8Feature = 'avx512_vnni' | 'avx_vnni' | 'amx_int8' | 'avx2' | 'avx512f' | 'i8mm' | 'asimddp' | 'none';

export interface Int8Rule extends Int8Flavour {
  feature: Int8Feature;
}

const X86 = ['x64', 'ia32'] as const;
const VNNI = {
  activation: 'u8',
  weight: 's8',
  perChannel: true,
  reduceRange: false,
  benefit: 'yes',
  reason: 'VNNI multiplies u8 activations by s8 weights in one instruction without saturation',
} as const;
const NO_VNNI = {
  activation: 'u8',
  weight: 's8',
  perChannel: true,
  reduceRange: true,
  benefit: 'yes',
  reason: 'without VNNI the u8 x s8 kernels (VPMADDUBSW) saturate 16-bit sums, so weights use 7 bits (reduce_range)',
} as const;
const all = (): boolean => true;

/** First matching row wins: the architecture, then the CPU feature that decides the kernels. */
export const INT8_RULES: readonly { arches: readonly string[]; when: (f: CpuFeatures) => boolean; rule: Int8Rule }[] = [
  { arches: X86, when: (f) => f.avx512Vnni, rule: { feature: 'avx512_vnni', ...VNNI } },
  { arches: X86, when: (f) => f.avxVnni, rule: { feature: 'avx_vnni', ...VNNI } },
  { arches: X86, when: (f) => f.amxInt8, rule: { feature: 'amx_int8', ...VNNI } },
  { arches: X86, when: (f) => f.avx2, rule: { feature: 'avx2', ...NO_VNNI } },
  { arches: X86, when: (f) => f.avx512, rule: { feature: 'avx512f', ...NO_VNNI } },
  {
    arches: X86,
    when: all,
    rule: {
      feature: 'none',
      activation: 'u8',
      weight: 's8',
      perChannel: false,
      reduceRange: true,
      benefit: 'maybe',
      reason: 'SSE-only x86: int8 kernels exist but gain little over fp32; measure',
    },
  },
  {
    arches: ['arm64'],
    when: (f) => f.i8mm,
    rule: {
      feature: 'i8mm',
      activation: 's8',
      weight: 's8',
      perChannel: true,
      reduceRange: false,
      benefit: 'yes',
      reason: 'i8mm (SMMLA) and dot-product kernels run s8 x s8 natively',
    },
  },
  {
    arches: ['arm64'],
    when: (f) => f.dotProd,
    rule: {
      feature: 'asimddp',
      activation: 's8',
      weight: 's8',
      perChannel: true,
      reduceRange: false,
      benefit: 'yes',
      reason: 'dot-product (SDOT/UDOT) kernels run s8 or u8 activations with s8 weights natively',
    },
  },
  {
    arches: ['arm64'],
    when: all,
    rule: {
      feature: 'none',
      activation: 'u8',
      weight: 's8',
      perChannel: true,
      reduceRange: false,
      benefit: 'maybe',
      reason: 'no dot-product: int8 GEMM uses widening NEON multiplies; int8 may not pay beyond the 4x smaller model, measure',
    },
  },
  {
    arches: ['arm'],
    when: all,
    rule: {
      feature: 'none',
      activation: 'u8',
      weight: 's8',
      perChannel: false,
      reduceRange: false,
      benefit: 'unlikely',
      reason: '32-bit arm user space: onnxruntime has few optimised int8 kernels here; prefer fp32 or a 64-bit OS',
    },
  },
];

/** The int8 rule for this architecture (Node's process.arch) and CPU. */
export function int8Rule(arch: string, f: CpuFeatures): Int8Rule {
  const row = INT8_RULES.find((r) => r.arches.includes(arch) && r.when(f));
  if (row) return { ...row.rule };
  return {
    feature: 'none',
    activation: 'u8',
    weight: 's8',
    perChannel: false,
    reduceRange: false,
    benefit: 'maybe',
    reason: `no int8 guidance for ${arch}; measure`,
  };
}

/** The flavour as the hardware profile reports it. */
export function recommendInt8(arch: string, f: CpuFeatures): Int8Flavour {
  const { feature: _, ...flavour } = int8Rule(arch, f);
  return { ...flavour };
}
