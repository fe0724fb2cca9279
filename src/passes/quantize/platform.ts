// The int8 flavour quantize writes here: activation type and reduce-range follow the hardware
// facts in src/profile/int8.ts (onnxruntime's guidance per CPU feature), read through the
// profile's /proc/cpuinfo parser; this file only turns them into quantize's terms.
import { readFileSync } from 'node:fs';
import { arch } from 'node:os';
import { featuresFromFlags, parseCpuInfo } from '../../profile/cpuinfo.js';
import { int8Rule, type Int8Feature } from '../../profile/int8.js';

export const ACT_TYPES = ['uint8', 'int8'] as const;
export type ActType = (typeof ACT_TYPES)[number];

export interface Int8Platform {
  arch: string;
  /** The CPU feature that decides the int8 path, or 'none'. */
  feature: Int8Feature;
  activation: ActType;
  /** Quantize weights to 7 bits ([-64, 63]) so u8*s8 pair sums cannot saturate int16. */
  reduceRange: boolean;
  why: string;
}

/** This box's CPU flag words, those every core shares (empty when /proc/cpuinfo is unreadable). */
export function cpuFlags(): Set<string> {
  try {
    return new Set(parseCpuInfo(readFileSync('/proc/cpuinfo', 'utf8')).features.raw);
  } catch {
    return new Set();
  }
}

export function detectPlatform(flags: Iterable<string> = cpuFlags(), a: string = arch()): Int8Platform {
  const r = int8Rule(a, featuresFromFlags(flags));
  return { arch: a, feature: r.feature, activation: r.activation === 's8' ? 'int8' : 'uint8', reduceRange: r.reduceRange, why: r.reason };
}
