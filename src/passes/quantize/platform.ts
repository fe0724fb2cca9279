// Which int8 flavour this CPU runs fast and exactly, following onnxruntime's own guidance
// (docs "Quantize ONNX models", section on data type selection):
// - x86-64 with AVX2/AVX-512 but no VNNI: MLAS uses VPMADDUBSW for u8 activations x s8 weights,
//   which can saturate 16-bit intermediate sums; weights are kept to 7 bits (reduce-range) to make
//   that impossible. Activations u8.
// - x86-64 with VNNI (avx512_vnni / avx_vnni): u8 x s8 without the saturation hazard, full range.
// - arm64 with dot-product (asimddp): s8 x s8 QDQ is the recommended default.
// - arm64 without dot-product (Cortex-A72, Raspberry Pi 4): int8 GEMM is often no faster than
//   float; u8 activations still work, and the measurement step decides whether to keep int8.
import { readFileSync } from 'node:fs';
import { arch } from 'node:os';

export const ACT_TYPES = ['uint8', 'int8'] as const;
export type ActType = (typeof ACT_TYPES)[number];

export interface Int8Platform {
  arch: string;
  /** The CPU feature that decides the int8 path, or 'none'. */
  feature: 'avx512_vnni' | 'avx_vnni' | 'avx2' | 'asimddp' | 'none';
  activation: ActType;
  /** Quantize weights to 7 bits ([-64, 63]) so u8*s8 pair sums cannot saturate int16. */
  reduceRange: boolean;
  why: string;
}

export function cpuFlags(): Set<string> {
  try {
    const txt = readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(txt);
    return new Set((m?.[1] ?? '').split(/\s+/).filter(Boolean));
  } catch {
    return new Set();
  }
}

export function detectPlatform(flags: Set<string> = cpuFlags(), a: string = arch()): Int8Platform {
  if (a === 'x64') {
    if (flags.has('avx512_vnni')) return { arch: a, feature: 'avx512_vnni', activation: 'uint8', reduceRange: false, why: 'x86-64 with AVX512-VNNI: u8 activations x s8 weights, full range' };
    if (flags.has('avx_vnni')) return { arch: a, feature: 'avx_vnni', activation: 'uint8', reduceRange: false, why: 'x86-64 with AVX-VNNI: u8 activations x s8 weights, full range' };
    return { arch: a, feature: flags.has('avx2') ? 'avx2' : 'none', activation: 'uint8', reduceRange: true, why: 'x86-64 without VNNI: u8 activations x s8 weights with 7-bit weights (reduce-range) against VPMADDUBSW saturation' };
  }
  if (a === 'arm64') {
    if (flags.has('asimddp')) return { arch: a, feature: 'asimddp', activation: 'int8', reduceRange: false, why: 'arm64 with dot-product: s8 activations x s8 weights' };
    return { arch: a, feature: 'none', activation: 'uint8', reduceRange: false, why: 'arm64 without dot-product: int8 may be slower than float; measured before keeping' };
  }
  return { arch: a, feature: 'none', activation: 'uint8', reduceRange: false, why: `${a}: onnxruntime default u8 activations` };
}
