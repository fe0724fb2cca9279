// Is user space 64-bit? Raspberry Pi OS long shipped a 64-bit kernel with a 32-bit user space,
// where uname says aarch64 but Node and onnxruntime are arm32 builds without the arm64 kernels.
import type { Userland } from './types.js';

/** ELF class from the first bytes of an executable: 32, 64, or null if not ELF. */
export function elfClass(head: Uint8Array | null): 32 | 64 | null {
  if (!head || head.length < 5) return null;
  if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return null;
  if (head[4] === 1) return 32;
  if (head[4] === 2) return 64;
  return null;
}

/** `getconf LONG_BIT` output -> 32 | 64 | null. */
export function parseLongBit(text: string | null): 32 | 64 | null {
  const v = text?.trim();
  return v === '32' ? 32 : v === '64' ? 64 : null;
}

const BITS_OF_ARCH: Record<string, 32 | 64> = {
  x64: 64,
  arm64: 64,
  ppc64: 64,
  s390x: 64,
  riscv64: 64,
  loong64: 64,
  mips64el: 64,
  arm: 32,
  ia32: 32,
};
const KERNEL64 = /^(aarch64|arm64|x86_64|amd64|ppc64le|s390x|riscv64)$/;

export function decideUserland(src: {
  processArch: string;
  elfHead: Uint8Array | null;
  longBit: string | null;
  machine: string | null;
}): Userland {
  const processBits = BITS_OF_ARCH[src.processArch] ?? 64;
  const elfBits = elfClass(src.elfHead);
  const longBit = parseLongBit(src.longBit);
  const machine = src.machine?.trim() || null;
  // the process itself is the strongest witness: it is what onnxruntime will run inside
  const userBits = elfBits ?? longBit ?? processBits;
  const kernel64 = machine !== null && KERNEL64.test(machine);
  return { processBits, elfBits, longBit, machine, mismatch: kernel64 && userBits === 32, is64: userBits === 64 };
}
