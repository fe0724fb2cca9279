// Which int8 flavour onnxruntime's CPU kernels (MLAS) run best here, and whether int8 pays at
// all. Source: onnxruntime "Quantize ONNX models" guidance (data type selection, reduce-range)
// and MLAS's kernel dispatch: x86 VNNI has VPDPBUSD (u8 x s8, no saturation); x86 AVX2/AVX-512
// without VNNI uses VPMADDUBSW, whose int16 pair sums saturate unless weights are 7-bit
// (reduce_range); arm64 with dot-product has SDOT/UDOT kernels for s8 and u8 activations.
import type { CpuFeatures, Int8Flavour } from './types.js';

export function recommendInt8(arch: string, f: CpuFeatures): Int8Flavour {
  if (arch === 'x64' || arch === 'ia32') {
    if (f.avx512Vnni || f.avxVnni || f.amxInt8) {
      return { activation: 'u8', weight: 's8', perChannel: true, reduceRange: false, benefit: 'yes', reason: 'VNNI multiplies u8 activations by s8 weights in one instruction without saturation' };
    }
    if (f.avx2 || f.avx512) {
      return { activation: 'u8', weight: 's8', perChannel: true, reduceRange: true, benefit: 'yes', reason: 'without VNNI the u8 x s8 kernels (VPMADDUBSW) saturate 16-bit sums, so weights use 7 bits (reduce_range)' };
    }
    return { activation: 'u8', weight: 's8', perChannel: false, reduceRange: true, benefit: 'maybe', reason: 'SSE-only x86: int8 kernels exist but gain little over fp32; measure' };
  }
  if (arch === 'arm64') {
    if (f.i8mm) {
      return { activation: 's8', weight: 's8', perChannel: true, reduceRange: false, benefit: 'yes', reason: 'i8mm (SMMLA) and dot-product kernels run s8 x s8 natively' };
    }
    if (f.dotProd) {
      return { activation: 's8', weight: 's8', perChannel: true, reduceRange: false, benefit: 'yes', reason: 'dot-product (SDOT/UDOT) kernels run s8 or u8 activations with s8 weights natively' };
    }
    return { activation: 'u8', weight: 's8', perChannel: true, reduceRange: false, benefit: 'maybe', reason: 'no dot-product: int8 GEMM uses widening NEON multiplies; int8 may not pay beyond the 4x smaller model, measure' };
  }
  if (arch === 'arm') {
    return { activation: 'u8', weight: 's8', perChannel: false, reduceRange: false, benefit: 'unlikely', reason: '32-bit arm user space: onnxruntime has few optimised int8 kernels here; prefer fp32 or a 64-bit OS' };
  }
  return { activation: 'u8', weight: 's8', perChannel: false, reduceRange: false, benefit: 'maybe', reason: `no int8 guidance for ${arch}; measure` };
}
